"""Cold start: a fresh process until the worker is ready, against a bare Django + boto3 process.

Each variant runs as its own process, alternating, several times. A process reports the
moment it is ready (time.monotonic, the same clock as the parent's) and the CPU it used up to
then, and leaves with os._exit: interpreter teardown is no part of a cold start.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

_REPORT = (
    "import json, os, resource, time\n"
    "u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(json.dumps({'ready': time.monotonic(), 'cpu': u.ru_utime + u.ru_stime}), flush=True)\n"
    "os._exit(0)\n"
)
LAMBDA_INIT = "import lambda_handler.handler\n"
WITH_SQS = "handler + SQS client (a first retry or enqueue)"
# The handler with its metrics on, as deployed: the first batch's EMF line written.
WITH_METRICS = "handler + metrics (its first EMF line)"
VARIANTS: dict[str, str] = {
    # The reference the target is set against.
    "bare": "import boto3, django\ndjango.setup()\n",
    # The worker's init as Lambda runs it: the handler imported, which sets Django up, turns
    # JSON logging on and makes the DynamoDB client every task uses.
    "handler": LAMBDA_INIT,
    WITH_METRICS: (
        LAMBDA_INIT
        + "from sqs_tasks.worker.metrics import Metric, Recorder\n"
        + "recorder = Recorder()\n"
        + "recorder.count(Metric.STARTED, 'default', 'example.tasks.add')\n"
        + "recorder.flush()\n"
    ),
    # Where the difference goes: what bare lacks of the handler's start, one piece at a time.
    WITH_SQS: (
        LAMBDA_INIT
        + "from django.tasks import task_backends\ntask_backends['default'].client('sqs')\n"
    ),
    "bare + one botocore client": (
        "import boto3, django\ndjango.setup()\nboto3.session.Session().client('dynamodb')\n"
    ),
    "bare + one client of sqs_tasks' session": (
        "import boto3, django\ndjango.setup()\nfrom sqs_tasks.aws.session import new_session\n"
        "new_session().create_client('dynamodb')\n"
    ),
    "bare + Powertools' batch utility": (
        "import boto3, django\ndjango.setup()\nimport aws_lambda_powertools.utilities.batch\n"
    ),
}
# What infra/worker/Makefile's compileall step saves: the same start without shipped bytecode.
NO_BYTECODE = "handler, had the package no bytecode"
# Marks the environment of a run from a copied package: the copy's path, run there with -S.
NO_SITE = "_SQS_TASKS_BENCH_PACKAGE"
PROJECT_PACKAGES = ("sqs_tasks", "lambda_handler", "example")


def child_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a measured process: the example project, no AWS calls made."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    env.update(
        DJANGO_SETTINGS_MODULE="example.settings",
        PYTHONPATH=str(root),
        SQS_TASKS_TABLE="cold-start-results",
        SQS_TASKS_QUEUE_URLS='{"default": "http://127.0.0.1:9/000000000000/cold-start"}',
    )
    return env


def _once(code: str, env: dict[str, str], root: Path) -> tuple[float, float]:
    # -S without site: only the code package copy on PYTHONPATH and the standard library.
    flags = ["-S"] if NO_SITE in env else []
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, *flags, "-c", code + _REPORT],
        env={k: v for k, v in env.items() if k != NO_SITE},
        cwd=env.get(NO_SITE, root),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return report["ready"] - start, report["cpu"]


def _package_without_bytecode(env: dict[str, str], root: Path) -> str:
    """A copy of what the handler imports from the project and site-packages, bytecode left
    out, as a code package that ships none; the standard library keeps its own, as Lambda's."""
    listing = (
        "import json, sys, sysconfig\n"
        "lib = sysconfig.get_paths()['purelib']\n"
        "names = {m.__file__[len(lib) + 1:].split('/')[0] for m in list(sys.modules.values())\n"
        "         if (getattr(m, '__file__', None) or '').startswith(lib)}\n"
        "print(json.dumps(sorted(names)))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", VARIANTS[WITH_SQS] + listing],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lib = Path(sysconfig.get_paths()["purelib"])
    target = Path(tempfile.mkdtemp(prefix="sqs-tasks-no-bytecode-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    sources = [lib / name for name in json.loads(found.strip().splitlines()[-1])]
    for source in [*sources, *(root / package for package in PROJECT_PACKAGES)]:
        if source.is_dir():
            shutil.copytree(source, target / source.name, ignore=skip)
        else:
            shutil.copy2(source, target / source.name)
    return str(target)


def measure(root: Path, rounds: int, extra_env: dict[str, str]) -> dict[str, Any]:
    """Median wall and CPU seconds to ready of each variant, and their ratios to bare."""
    # What infra/worker/Makefile adds to the package: botocore's endpoints for our services,
    # next to the sqs_tasks the measured processes import (and gone afterwards if new).
    from sqs_tasks.aws.session import trimmed_endpoints, write_endpoints

    trimmed = trimmed_endpoints(root / "sqs_tasks" / "aws" / "_botocore_data")
    made = not trimmed.exists()
    write_endpoints(trimmed.parent)
    env = child_env(root, extra_env)
    lambda_env = {**env, "AWS_LAMBDA_FUNCTION_NAME": "sqs-tasks-benchmark"}
    # A package without __pycache__ on Lambda's read-only disk: every module compiled at start.
    package = _package_without_bytecode(lambda_env, root)
    no_bytecode = {**lambda_env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": package}
    no_bytecode[NO_SITE] = package
    variants = {**VARIANTS, NO_BYTECODE: LAMBDA_INIT}
    envs = {name: lambda_env if name.startswith("handler") else env for name in variants}
    envs[NO_BYTECODE] = no_bytecode
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for name, code in variants.items():  # Bytecode written once, as a deployment ships it.
            _once(code, envs[name], root)
        for i in range(rounds):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                wall, cpu = _once(variants[name], envs[name], root)
                walls[name].append(wall)
                cpus[name].append(cpu)
    finally:
        shutil.rmtree(package, ignore_errors=True)
        if made:
            trimmed.unlink()
    result: dict[str, Any] = {}
    for name in variants:
        result[name] = {
            "wall_ms": statistics.median(walls[name]) * 1000,
            "cpu_ms": statistics.median(cpus[name]) * 1000,
        }
    for name in variants:
        result[name]["wall_ratio"] = result[name]["wall_ms"] / result["bare"]["wall_ms"]
        result[name]["cpu_ratio"] = result[name]["cpu_ms"] / result["bare"]["cpu_ms"]
    return result
