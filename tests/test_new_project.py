"""A brand-new Django project, as a user makes it, deployed and run with sqs-tasks.

`django-admin startproject` and `startapp` in a temporary folder, settings changed only as
the quick start says, a requirements.txt naming a wheel of this checkout; then `sqs-tasks
init`, cfn-lint of what it wrote, `sqs-tasks local --keep-running --env-file` (sam build of
that project, the stack deployed into moto, the emulated mappings running its code), and
the project's own `manage.py shell` enqueueing its tasks with that environment.

Needs the sam tool venv (`.venv-sam`, made by bin/check-infra, which CI runs first) and
PyPI (the code package's dependencies, for arm64): skipped without the venv.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sqs_tasks.local.tools import SamTools

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Building the code package installs its dependencies for arm64 (from pip's cache once warm).
START_TIMEOUT = 600

pytestmark = pytest.mark.slow

TASKS_PY = """from django.tasks import task


@task
def add(a, b):
    return a + b


@task
def refuse(reason):
    raise ValueError(reason)
"""
# What the quick start asks of settings.py: nothing else (the rest comes from the environment).
SETTINGS_ADDED = """
INSTALLED_APPS += ["sqs_tasks", "shop"]
TASKS = {"default": {"BACKEND": "sqs_tasks.SQSBackend", "QUEUES": ["default"]}}
"""
# Run by the project's manage.py shell: enqueue, wait for the workers, print what came back.
SHELL_CODE = """
import json, time
from shop.tasks import add, refuse
results = [add.enqueue(2, 3), refuse.enqueue("no stock")]
deadline = time.monotonic() + 120
while not all(r.is_finished for r in results) and time.monotonic() < deadline:
    time.sleep(0.2)
    for r in results:
        r.refresh()
print(json.dumps([
    {
        "status": r.status,
        "value": r.return_value if r.status == "SUCCESSFUL" else None,
        "errors": [e.exception_class_path for e in r.errors],
    }
    for r in results
]))
"""


def clean_environment() -> dict[str, str]:
    """This process's environment without what would point anything at AWS or a project."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SQS_TASKS_")) and k != "DJANGO_SETTINGS_MODULE"
    }


def run(command: list[str | Path], cwd: Path, **kwargs: object) -> str:
    """Run a command to completion; its output, or a failure showing it."""
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """startproject mysite + startapp shop, the quick start's settings, a requirements.txt."""
    base = tmp_path_factory.mktemp("new-project")
    wheels = base / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, REPO], base)
    (wheel,) = wheels.glob("sqs_tasks-*.whl")
    root = base / "mysite"
    root.mkdir()
    run([BIN / "django-admin", "startproject", "mysite", root], base)
    run([sys.executable, "manage.py", "startapp", "shop"], root)
    (root / "shop" / "tasks.py").write_text(TASKS_PY)
    with (root / "mysite" / "settings.py").open("a") as settings:
        settings.write(SETTINGS_ADDED)
    # sqs-tasks from this checkout; the versions sqs-tasks' own stack pins for the rest.
    pins = (REPO / "infra" / "worker" / "requirements.txt").read_text()
    (root / "requirements.txt").write_text(f"sqs-tasks @ {wheel.as_uri()}\n{pins}")
    return root


@pytest.fixture(scope="module")
def initialised(project: Path, sam_tools: SamTools) -> Path:
    """`sqs-tasks init` in the project's root, and cfn-lint of what it wrote."""
    out = run([BIN / "sqs-tasks", "init"], project, env=clean_environment())
    assert "template.yaml             missing  -> written" in out
    template = (project / "template.yaml").read_text()
    assert "DJANGO_SETTINGS_MODULE: mysite.settings\n" in template
    cfn_lint = sam_tools.venv / "bin" / "cfn-lint"
    if not cfn_lint.exists():
        pytest.skip(f"no cfn-lint in {sam_tools.venv} (bin/check-infra installs it)")
    run([cfn_lint, "--", "template.yaml", "infra/queue.yaml", "infra/results-table.yaml"], project)
    assert (
        run([BIN / "sqs-tasks", "init", "--check"], project)
        .rstrip()
        .endswith("up to date for mysite.settings")
    )
    return project


@contextmanager
def local_running(
    project: Path, *args: str, env: dict[str, str]
) -> Iterator[tuple[dict[str, str], Path]]:
    """`sqs-tasks local ARGS --keep-running --env-file` in project; its environment and log."""
    name = "local" + "".join(args)  # Each kind of run its own files: two may be up at once.
    # Hidden, as a .env is: the build's fingerprint skips it (it changes on every start).
    env_file = project / f".{name}.env"
    env_file.unlink(missing_ok=True)
    log = project.parent / f"{name}.log"
    process = subprocess.Popen(
        [BIN / "sqs-tasks", "local", *args, "--keep-running", "--env-file", env_file],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Its output goes to the log as it comes; "(also written to ...)" says the env file is
    # there, and the end of the output that the run is over.
    up_or_over = threading.Event()

    def copy_output() -> None:
        assert process.stdout is not None
        with log.open("w") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()
                if line.strip().startswith("(also written to"):
                    up_or_over.set()
        up_or_over.set()

    copier = threading.Thread(target=copy_output, daemon=True)
    copier.start()
    try:
        if not up_or_over.wait(START_TIMEOUT) or not env_file.exists():
            pytest.fail(f"sqs-tasks local did not come up:\n{log.read_text()}")
        pairs = (line.partition("=") for line in env_file.read_text().splitlines())
        yield {key: value for key, _, value in pairs}, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        copier.join(10)


def enqueue_from_the_projects_shell(project: Path, env: dict[str, str]) -> None:
    """The project's manage.py shell enqueues add() and refuse(); they end as they should."""
    out = run(
        [sys.executable, "manage.py", "shell", "-c", SHELL_CODE],
        project,
        env={**clean_environment(), **env},
    )
    added, refused = json.loads(out.strip().splitlines()[-1])
    assert added == {"status": "SUCCESSFUL", "value": 5, "errors": []}
    assert refused["status"] == "FAILED"
    assert refused["errors"] == ["builtins.ValueError"]


@pytest.fixture(scope="module")
def running(initialised: Path, sam_tools: SamTools) -> Iterator[tuple[dict[str, str], Path]]:
    """`sqs-tasks local --keep-running --env-file` in the project: the SAM stack in moto."""
    env = {**clean_environment(), "SQS_TASKS_SAM_VENV": str(sam_tools.venv)}
    with local_running(initialised, env=env) as started:
        yield started


def test_sam_build_packages_the_project_with_sqs_tasks_from_its_requirements(
    running: tuple[dict[str, str], Path], initialised: Path
) -> None:
    # What bin/check-infra checks of the repository's packages (it leaves this build to here).
    for function in ("WorkerFunction", "DeadLetterFunction"):
        package = initialised / ".aws-sam" / "local" / "build" / function
        for path in (
            "mysite/settings.py",
            "shop/tasks.py",
            "sqs_tasks/backend.py",
            "lambda_handler/handler.py",
            "lambda_handler/dlq.py",
            "django/__init__.py",
            "aws_lambda_powertools/__init__.py",
            "boto3/__init__.py",
            "django/__pycache__/__init__.cpython-313.pyc",
            "sqs_tasks/worker/__pycache__/attempt.cpython-313.pyc",
        ):
            assert (package / path).is_file(), (function, path)
        botocore = re.search(
            r"^__version__ = '(.+)'$", (package / "botocore/__init__.py").read_text(), re.M
        )
        assert botocore is not None, function
        trimmed = package / "sqs_tasks/aws/_botocore_data"
        assert list(trimmed.glob(f"endpoints-{botocore[1]}-*.json")), (function, "endpoints")
        for unwanted in (
            ".venv",
            "tests",
            "template.yaml",
            "bin",
            "example",
            "sqs_tasks/local",
            "sqs_tasks/testing",
            "sqs_tasks/cli",
        ):
            assert not (package / unwanted).exists(), (function, unwanted)


def test_local_runs_the_projects_settings_and_a_smoke_check(
    running: tuple[dict[str, str], Path],
) -> None:
    env, log = running
    assert env["DJANGO_SETTINGS_MODULE"] == "mysite.settings"
    assert env["SQS_TASKS_TABLE"] == "local-task-results"
    assert env["AWS_ENDPOINT_URL"].startswith("http://localhost:")
    output = log.read_text()
    assert "mysite.settings set up with the environment of local-task-worker" in output
    # The smoke check's row: ping() on the default queue, SUCCESSFUL, as it should.
    assert re.search(r"ping\(\) on default +default +0 +SUCCESSFUL +1 .* ok\n", output), output
    assert "export " in output and "DJANGO_SETTINGS_MODULE=mysite.settings" in output


def test_the_projects_own_shell_enqueues_and_reads_back(
    running: tuple[dict[str, str], Path], initialised: Path
) -> None:
    enqueue_from_the_projects_shell(initialised, running[0])


def test_a_second_start_reuses_the_build_and_the_package(
    running: tuple[dict[str, str], Path], initialised: Path, sam_tools: SamTools
) -> None:
    """Nothing changed: no sam build, no sam package, the kept transform (a few seconds)."""
    env = {**clean_environment(), "SQS_TASKS_SAM_VENV": str(sam_tools.venv)}
    out = run([BIN / "sqs-tasks", "local"], initialised, env=env)
    assert "sam build: reused" in out
    assert "sam package: reused" in out
    assert "SAM transform: reused" in out
    assert "All 1 tasks reached the state they should" in out


def test_without_sam_the_projects_shell_enqueues_and_reads_back(project: Path) -> None:
    """`--no-sam`: no template, no sam tools; the TASKS queues made directly in moto."""
    with local_running(project, "--no-sam", env=clean_environment()) as (env, log):
        assert env["DJANGO_SETTINGS_MODULE"] == "mysite.settings"
        assert "[2/2] ping() on default: SUCCESSFUL ok" in log.read_text()
        enqueue_from_the_projects_shell(project, env)
