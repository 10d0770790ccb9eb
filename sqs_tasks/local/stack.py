"""Deploy a SAM template into a moto server: the pipeline of `sam deploy`, minus AWS.

1. `sam build` (the template's own build: Makefile, pinned requirements), reused while no
   file of the project changed;
2. `sam package` against the moto server: the code zips and nested templates go to moto's
   S3 and the template's CodeUri/Location become S3 URLs;
3. the SAM transform (aws-sam-translator, run with the sam tool venv's interpreter), as
   CloudFormation applies it;
4. CloudFormation `create_stack` on moto, with the parameters given.

The tools come from the sam tool venv: `$SQS_TASKS_SAM_VENV`, else `.venv-sam` next to the
template (bin/check-infra and bin/demo create it). The infrastructure tests and
`sqs-tasks local` both deploy through `deploy()`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
# moto's fixed account id: the ARNs of whatever the stack makes.
ACCOUNT = "123456789012"
TOOL_TIMEOUT = 900
ENV_SAM_VENV = "SQS_TASKS_SAM_VENV"
# Files in the build directory that say what it was built from.
FINGERPRINT_FILE = ".sqs-tasks-fingerprint"
TRANSLATE_SCRIPT = Path(__file__).with_name("sam_translate.py")
# Credentials moto accepts; never real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

Log = Callable[[str], None]


class DeployError(RuntimeError):
    """A step of the pipeline failed; the message says which and shows its output."""


class ToolsMissing(DeployError):
    """The sam tool venv is not there."""


@dataclass(frozen=True)
class SamTools:
    """The sam CLI and aws-sam-translator, in their own virtualenv."""

    venv: Path

    @property
    def sam(self) -> Path:
        """The sam executable."""
        return self.venv / "bin" / "sam"

    @property
    def python(self) -> Path:
        """The venv's interpreter (it has aws-sam-translator)."""
        return self.venv / "bin" / "python"

    @classmethod
    def find(cls, project: Path) -> SamTools:
        """$SQS_TASKS_SAM_VENV, else project/.venv-sam; ToolsMissing says how to get them."""
        configured = os.environ.get(ENV_SAM_VENV)
        tools = cls(Path(configured) if configured else project / ".venv-sam")
        if not (tools.sam.exists() and tools.python.exists()):
            source = f"${ENV_SAM_VENV}" if configured else "the project"
            raise ToolsMissing(
                f"The sam tool venv ({tools.venv}, from {source}) is missing or incomplete: "
                "run bin/check-infra (or bin/demo), which creates it with aws-sam-cli and "
                f"aws-sam-translator, or point {ENV_SAM_VENV} at a venv that has both."
            )
        return tools

    def version(self) -> str:
        """What bin/check-infra pinned in the venv (its marker file), or ''."""
        marker = self.venv / ".check-infra"
        return marker.read_text().strip() if marker.exists() else ""

    def env(self, region: str = REGION, **extra: str) -> dict[str, str]:
        """The environment of the tool subprocesses: the venv first on PATH, fake credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            FAKE_CREDENTIALS,
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            AWS_DEFAULT_REGION=region,
            AWS_REGION=region,
            SAM_CLI_TELEMETRY="0",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        env.update(extra)
        return env


def _run(command: list[str | Path], *, cwd: Path, env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(
            [str(c) for c in command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise DeployError(f"{what} did not finish in {TOOL_TIMEOUT} s") from e
    if done.returncode:
        raise DeployError(
            f"{what} failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


# ----------------------------------------------------------------- 1. sam build
def project_files(project: Path) -> list[Path]:
    """The project's files as git sees them (tracked or not ignored), else every file."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(project), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        names = sorted({n for n in listed.split("\0") if n})
    except (OSError, subprocess.SubprocessError):
        names = sorted(
            str(p.relative_to(project))
            for p in project.rglob("*")
            if p.is_file()
            and not any(
                part.startswith(".") or part == "__pycache__"
                for part in p.relative_to(project).parts
            )
        )
    return [project / n for n in names if (project / n).is_file()]


def fingerprint(template: Path, tools: SamTools) -> str:
    """A digest of what `sam build` reads: the project's files and the tool versions."""
    digest = hashlib.sha256()
    digest.update(f"{template.name}\0{tools.version()}\0".encode())
    project = template.parent
    for path in project_files(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """One builder at a time per build directory (another run may be building it)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # Not POSIX: no concurrent runs to guard against.
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(
    template: Path,
    build_dir: Path,
    tools: SamTools,
    *,
    region: str = REGION,
    reuse: bool = True,
    log: Log | None = None,
) -> Path:
    """`sam build` of template into build_dir; returns the built template.

    With reuse, a build made from the same project files and tools is kept as it is.
    """
    say = log or (lambda _: None)
    template, build_dir = template.resolve(), build_dir.resolve()
    with _locked(build_dir.with_name(build_dir.name + ".lock")):
        wanted = fingerprint(template, tools) if reuse else ""
        stamp = build_dir / FINGERPRINT_FILE
        built = build_dir / "template.yaml"
        if reuse and built.exists() and stamp.exists() and stamp.read_text() == wanted:
            say(f"sam build: reused {build_dir} (no project file changed)")
            return built
        started = time.monotonic()
        scratch = build_dir.with_name(f"{build_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        _run(
            [
                tools.sam,
                "build",
                "--template-file",
                template,
                "--build-dir",
                scratch,
                "--parallel",
            ],
            cwd=template.parent,
            env=tools.env(region),
            what="sam build",
        )
        shutil.rmtree(build_dir, ignore_errors=True)
        scratch.rename(build_dir)
        if reuse:
            stamp.write_text(wanted)
        say(f"sam build: built {build_dir} in {time.monotonic() - started:.1f} s")
        return built


# ----------------------------------------------------------------- 2-4. package, transform, create
@dataclass
class Deployment:
    """A stack created in moto: what CloudFormation was given and what it made."""

    endpoint_url: str
    region: str
    stack_name: str
    parameters: dict[str, str]
    template: dict[str, Any]  # after the SAM transform
    outputs: dict[str, str] = field(default_factory=dict)
    # What moto's CloudFormation did not create (resource types it does not emulate).
    skipped: list[str] = field(default_factory=list)

    def client(self, service: str) -> Any:
        """A boto3 client of the moto server, with fake credentials."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        ).client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def function(self, name: str) -> dict[str, Any]:
        """A deployed function's configuration (lambda:GetFunctionConfiguration)."""
        configuration: dict[str, Any] = self.client("lambda").get_function_configuration(
            FunctionName=name
        )
        return configuration

    def environment(self, name: str) -> dict[str, str]:
        """The environment variables a deployed function runs with."""
        variables = self.function(name).get("Environment", {}).get("Variables", {})
        return {key: str(value) for key, value in variables.items()}

    def event_source_mappings(self, name: str) -> list[dict[str, Any]]:
        """The event source mappings of a deployed function."""
        mappings: list[dict[str, Any]] = self.client("lambda").list_event_source_mappings(
            FunctionName=name
        )["EventSourceMappings"]
        return mappings


def package(
    built_template: Path,
    *,
    endpoint_url: str,
    bucket: str,
    output: Path,
    tools: SamTools,
    region: str = REGION,
) -> Path:
    """`sam package` into moto's S3: uploads code and nested templates, rewrites their URIs."""
    _run(
        [
            tools.sam,
            "package",
            "--template-file",
            built_template,
            "--s3-bucket",
            bucket,
            "--output-template-file",
            output,
            "--region",
            region,
        ],
        cwd=built_template.parent,
        env=tools.env(region, AWS_ENDPOINT_URL=endpoint_url),
        what="sam package",
    )
    return output


def translate(
    packaged: Path, parameters: Mapping[str, str], workdir: Path, tools: SamTools
) -> dict[str, Any]:
    """The SAM transform of a packaged template, as CloudFormation would apply it."""
    parameters_file = workdir / "parameters.json"
    parameters_file.write_text(json.dumps(dict(parameters)))
    translated = workdir / "translated.json"
    _run(
        [tools.python, TRANSLATE_SCRIPT, packaged, parameters_file, translated],
        cwd=workdir,
        env=tools.env(),
        what="the SAM transform (aws-sam-translator)",
    )
    template: dict[str, Any] = json.loads(translated.read_text())
    return template


def deploy(
    template: Path,
    endpoint_url: str,
    parameters: Mapping[str, str],
    workdir: Path,
    *,
    stack_name: str = "sqs-tasks",
    built_template: Path | None = None,
    build_dir: Path | None = None,
    tools: SamTools | None = None,
    region: str = REGION,
    log: Log | None = None,
) -> Deployment:
    """Build (unless built_template is given), package, transform and create the stack.

    endpoint_url must name the moto server as `localhost`: moto reads an IP address in
    the Host header as an S3 bucket name. The build goes to build_dir (reused while the
    project is unchanged; default workdir/build), the other artefacts to workdir.
    """
    say = log or (lambda _: None)
    template = template.resolve()
    tools = tools or SamTools.find(template.parent)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if built_template is None:
        built_template = build(
            template, build_dir or workdir / "build", tools, region=region, log=log
        )
    built_template = built_template.resolve()
    deployment = Deployment(
        endpoint_url=endpoint_url,
        region=region,
        stack_name=stack_name,
        parameters=dict(parameters),
        template={},
    )
    started = time.monotonic()
    bucket = f"{stack_name}-artifacts"
    deployment.client("s3").create_bucket(Bucket=bucket)
    packaged = package(
        built_template,
        endpoint_url=endpoint_url,
        bucket=bucket,
        output=workdir / "packaged.yaml",
        tools=tools,
        region=region,
    )
    say(f"sam package: code and nested templates in s3://{bucket} ({_since(started)})")
    started = time.monotonic()
    deployment.template = translate(packaged, parameters, workdir, tools)
    say(f"SAM transform: {len(deployment.template['Resources'])} resources ({_since(started)})")
    started = time.monotonic()
    cloudformation = deployment.client("cloudformation")
    with warnings.catch_warnings(record=True) as caught:
        # moto warns about, and skips, the resource types it does not emulate.
        warnings.simplefilter("always")
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(deployment.template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    for warning in caught:
        text = str(warning.message)
        if text.startswith("Tried to parse AWS::"):
            deployment.skipped.append(text.split()[3])
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        reason = stack.get("StackStatusReason", "")
        raise DeployError(f"create_stack {stack_name}: {stack['StackStatus']} {reason}")
    deployment.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    deployment.skipped = sorted(set(deployment.skipped))
    say(f"CloudFormation: stack {stack_name} CREATE_COMPLETE ({_since(started)})")
    return deployment


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
