"""A run's environment: the moto server, the log file, this process as the worker function."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .stack import Deployment
from .tools import FAKE_CREDENTIALS, DeployError

MOTO_START_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class MotoServer:
    """A moto server running in a process of its own."""

    url: str
    pid: int


@contextmanager
def moto_server(log_path: Path) -> Iterator[MotoServer]:
    """A moto server on 127.0.0.1 in a process (and so on a core) of its own.

    It is moto's own server with sqs_tasks.testing.moto_fixes applied
    (python -m sqs_tasks.testing.moto_fixes),
    so it behaves as aws_stack()'s does. Its URL names it `localhost`: moto reads an IP
    address in the Host header as an S3 bucket name, which `sam package` would trip over.
    """
    if importlib.util.find_spec("moto") is None:
        raise DeployError("moto is not installed: pip install 'sqs-tasks[local]'")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqs_tasks.testing.moto_fixes",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + MOTO_START_TIMEOUT
            while True:
                if process.poll() is not None:
                    raise DeployError(f"the moto server exited ({process.returncode}): {log_path}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise DeployError(
                            f"the moto server did not listen in {MOTO_START_TIMEOUT} s: {log_path}"
                        ) from None
                    time.sleep(0.1)
            yield MotoServer(f"http://localhost:{port}", process.pid)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Modules every run imports, none of which needs Django's settings at import time.
PREIMPORTED = ("boto3", "botocore.session", "django.db.models", "django.tasks", "django.test")


def preimport() -> None:
    """Import what the run will need, while it waits for the moto server."""
    import importlib

    for name in PREIMPORTED:
        try:
            importlib.import_module(name)
        except Exception:  # The run imports it again, and says what is wrong then.
            return


def not_emulated(moto_log: Path) -> list[str]:
    """The resource types moto's CloudFormation said it skipped."""
    found = re.findall(r"No Moto CloudFormation support for (\S+)", moto_log.read_text())
    return sorted(set(found))


def configure_logging(path: Path, level: str, *, append: bool = False) -> None:
    """Every log line (the workers', the tasks') to a file, none on the console.

    Call again after django.setup(): its dictConfig of LOGGING closes the handlers there were.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a" if append else "w")
    formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(threadName)s %(name)s: %(message)s")
    formatter.converter = time.gmtime  # Django sets TZ to its TIME_ZONE: say UTC plainly.
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # The project's LOGGING (Django's own, with DEBUG on, prints django.tasks lines): to the
    # file too, through the root logger, so that the progress display stays readable.
    for logger in logging.root.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and logger.handlers:
            logger.handlers = []
            logger.propagate = True


def configure_django(deployment: Deployment, project: Path) -> dict[str, str]:
    """Make this process what the deployed worker function is: its environment, then Django."""
    from django.apps import apps

    if apps.ready:
        raise RuntimeError("sqs-tasks local configures Django itself, but it is already set up")
    variables = deployment.environment(deployment.outputs["WorkerFunctionName"])
    os.environ.update(variables)
    # What the Lambda runtime provides (credentials, region), pointed at moto.
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.update(
        AWS_DEFAULT_REGION=deployment.region,
        AWS_REGION=deployment.region,
        AWS_ENDPOINT_URL=deployment.endpoint_url,
    )
    # As in the code package: the project's top level is importable.
    sys.path.insert(0, str(project))
    import django

    django.setup()
    return variables


def make_schedule_group(deployment: Deployment) -> str | None:
    """The stack's EventBridge Scheduler group, which moto's CloudFormation does not make."""
    group = deployment.outputs.get("ScheduleGroup")
    if not group:
        return None
    scheduler = deployment.client("scheduler")
    if group in {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}:
        return None
    scheduler.create_schedule_group(Name=group)
    return group
