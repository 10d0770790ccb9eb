"""The sam tool venv (the sam CLI and aws-sam-translator), and running its tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
# moto's fixed account id: the ARNs of whatever the stack makes.
ACCOUNT = "123456789012"
TOOL_TIMEOUT = 900
# In a sam tool venv: the pinned versions it was made with (bin/check-infra writes it too).
MARKER = ".check-infra"
ENV_SAM_VENV = "SQS_TASKS_SAM_VENV"
# What `sqs-tasks local` installs when it finds no sam tools: bin/_env's pins (a test checks).
SAM_CLI_VERSION = "1.170.0"
SAM_TRANSLATOR_VERSION = "1.115.0"
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

    @property
    def usable(self) -> bool:
        """Whether the venv has both tools."""
        return self.sam.exists() and self.python.exists()

    @classmethod
    def find(cls, project: Path, *, install: bool = False, log: Log | None = None) -> SamTools:
        """The sam tools, looked for in this order; ToolsMissing says how to get them.

        $SQS_TASKS_SAM_VENV; project/.venv-sam (sqs-tasks' repository); the venv of a `sam` on
        PATH installed with pip or pipx (it has aws-sam-translator); the per-user cache
        (sam_cache_dir()), made there once with the pinned versions when install is true.
        """
        configured = os.environ.get(ENV_SAM_VENV)
        if configured:
            tools = cls(Path(configured))
            if not tools.usable:
                raise ToolsMissing(
                    f"${ENV_SAM_VENV}={configured} is not a venv with aws-sam-cli and "
                    "aws-sam-translator (bin/sam and bin/python): fix or unset it."
                )
            return tools
        for candidate in (project / ".venv-sam", _venv_of_sam_on_path()):
            if candidate is not None and cls(candidate).usable:
                return cls(candidate)
        cached = cls(sam_cache_dir())
        if cached.usable and (cached.venv / MARKER).exists():
            return cached
        if install:
            with locked(cached.venv.with_name(cached.venv.name + ".lock")):
                # Another run may have made it while this one waited.
                if cached.usable and (cached.venv / MARKER).exists():
                    return cached
                return cls.install(cached.venv, log or (lambda _: None))
        raise ToolsMissing(
            f"No sam tools: neither ${ENV_SAM_VENV}, {project / '.venv-sam'}, a pip-installed "
            f"`sam` on PATH, nor {sam_cache_dir()}. `sqs-tasks local` installs them there "
            "(bin/check-infra in sqs-tasks' repository), or point "
            f"{ENV_SAM_VENV} at a venv with aws-sam-cli and aws-sam-translator."
        )

    @classmethod
    def install(cls, venv: Path, log: Log) -> SamTools:
        """Make venv with the pinned aws-sam-cli and aws-sam-translator (a minute or two)."""
        python = find_python313() or sys.executable
        pins = [f"aws-sam-cli=={SAM_CLI_VERSION}", f"aws-sam-translator=={SAM_TRANSLATOR_VERSION}"]
        log(
            f"installing {' and '.join(pins)} once, into {venv} with {python} (a minute or "
            f"two; set {ENV_SAM_VENV} to use a venv of your own)"
        )
        started = time.monotonic()
        # Made in place (its scripts name its interpreter by path); the marker, written last,
        # says it is complete.
        shutil.rmtree(venv, ignore_errors=True)
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        run_tool([python, "-m", "venv", venv], cwd=Path.cwd(), env=env, what="python -m venv")
        # uv, when there is one, installs the sam CLI's hundred packages several times faster.
        uv = shutil.which("uv")
        installer: list[str | Path] = (
            [uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python"]
            if uv
            else [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
        )
        run_tool([*installer, *pins], cwd=Path.cwd(), env=env, what=f"installing {' '.join(pins)}")
        (venv / MARKER).write_text(f"sam={SAM_CLI_VERSION} translator={SAM_TRANSLATOR_VERSION}\n")
        log(f"installed the sam tools in {since(started)}")
        return cls(venv)

    def builds_bytecode(self) -> bool:
        """Whether `sam build` finds a Python 3.13 (the runtime's) to compile bytecode with."""
        path = f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        found = shutil.which("python3.13", path=path) or shutil.which("python3", path=path)
        return bool(found) and _is_python313(Path(found or ""))

    def version(self) -> str:
        """What bin/check-infra pinned in the venv (its marker file), or ''."""
        marker = self.venv / MARKER
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


def run_tool(command: list[str | Path], *, cwd: Path, env: dict[str, str], what: str) -> None:
    """Run a tool; DeployError with its output when it fails or runs past TOOL_TIMEOUT."""
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
    except OSError as e:
        raise DeployError(f"{what} could not start: {e}") from e
    if done.returncode:
        raise DeployError(
            f"{what} failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """One process at a time past this (another run may be building or installing)."""
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


def sam_cache_dir() -> Path:
    """Where `sqs-tasks local` keeps the sam tools it installs: one venv per pinned version."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sqs-tasks" / f"sam-{SAM_CLI_VERSION}"


def _venv_of_sam_on_path() -> Path | None:
    """The venv of the `sam` on PATH when pip or pipx installed it (it holds its interpreter)."""
    found = shutil.which("sam")
    return Path(found).resolve().parent.parent if found else None


def _is_python313(python: Path) -> bool:
    try:
        done = subprocess.run(
            [str(python), "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def find_python313() -> str | None:
    """A Python 3.13 on PATH (the runtime's: `sam build` compiles the bytecode with it)."""
    for name in ("python3.13", "python3"):
        found = shutil.which(name)
        if found and _is_python313(Path(found)):
            return found
    return None


def since(started: float) -> str:
    """The time since started (a time.monotonic()), as the pipeline's steps report it."""
    return f"{time.monotonic() - started:.1f} s"
