"""The sam tool venv (the sam CLI and aws-sam-translator), and running its tools."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
# moto's fixed account id: the ARNs of whatever the stack makes.
ACCOUNT = "123456789012"
TOOL_TIMEOUT = 900
ENV_SAM_VENV = "SQS_TASKS_SAM_VENV"
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
    if done.returncode:
        raise DeployError(
            f"{what} failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


def since(started: float) -> str:
    """The time since started (a time.monotonic()), as the pipeline's steps report it."""
    return f"{time.monotonic() - started:.1f} s"
