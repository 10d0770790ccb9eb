"""The peers, django-tasks-sqs and Celery, in a virtualenv of their own, on the same moto server.

The virtualenv (.venv-bench-peers) is made on first use from benchmarks/peers-requirements.txt
with the same Python as the benchmark. A peer that cannot run says why instead of a number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REQUIREMENTS = Path(__file__).with_name("peers-requirements.txt")


def ensure_venv(root: Path) -> Path:
    """The peers' Python, installing them when the requirements changed."""
    venv = root / ".venv-bench-peers"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = REQUIREMENTS.read_text()
    if not python.exists():
        subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
            check=True,
        )
        stamp.write_text(wanted)
    return python


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            report: dict[str, Any] = json.loads(line)
            return report
    raise RuntimeError(f"no report in output: {text[-500:]!r}")


def django_tasks_sqs(
    python: Path,
    root: Path,
    env: dict[str, str],
    n: int,
    workers: int,
    on_ready: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Its worker (workers threads, 10 messages a receive) running n tasks enqueue_many sent;
    on_ready is called once the worker is ready, before the first task is sent."""
    cmd = [str(python), "-m", "benchmarks.peers.dts_run"]
    worker = subprocess.Popen(
        [*cmd, "work", str(n), str(workers)], cwd=root, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        ready = _json_line(worker.stdout.readline())  # Its client is made.
        if on_ready:
            on_ready()
        produced = subprocess.run(
            [*cmd, "produce", str(n)], cwd=root, env=env, capture_output=True, text=True
        )
        if produced.returncode:
            raise RuntimeError(f"producer failed: {produced.stderr[-800:]}")
        start = _json_line(produced.stdout)["start"]
        out, _ = worker.communicate(timeout=900)
    finally:
        if worker.poll() is None:
            worker.kill()
    done = _json_line(out)
    return {
        "n": n,
        "workers": workers,
        "seconds": done["done"] - start,
        "tasks_per_second": n / (done["done"] - start),
        "maxrss_kb": done["maxrss_kb"],
        "worker_cpu_seconds": done["cpu_seconds"],
        "worker_ready_cpu_seconds": ready["cpu_seconds"],
        "note": "no result store: timed until its worker ran the last task",
    }


def celery(
    python: Path,
    root: Path,
    env: dict[str, str],
    n: int,
    workers: int,
    out: Path,
    on_ready: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Its worker (solo pool, or threads, prefetch 10) running n tasks; until results read.
    on_ready is called once the worker is ready, before the producer starts."""
    log = out / f"celery-worker-{workers}.log"
    celery_bin = python.parent / "celery"
    with log.open("w") as sink:
        worker = subprocess.Popen(
            [
                *(str(celery_bin), "-A", "benchmarks.peers.celery_app", "worker"),
                f"--pool={'solo' if workers == 1 else 'threads'}",
                *(f"--concurrency={workers}", "--loglevel=INFO"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "ready." not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {log.read_text()[-800:]}")
            time.sleep(0.2)
        ready_cpu = process_cpu_seconds(worker.pid)
        if on_ready:
            on_ready()
        produced = subprocess.run(
            [str(python), "-m", "benchmarks.peers.celery_run", "produce", str(n)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if produced.returncode:
            raise RuntimeError(f"producer failed: {produced.stderr[-800:]}")
        report = _json_line(produced.stdout)
        report["worker_cpu_seconds"] = process_cpu_seconds(worker.pid)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return {
        "n": n,
        "workers": workers,
        "seconds": report["done"] - report["start"],
        "tasks_per_second": n / (report["done"] - report["start"]),
        "worker_cpu_seconds": report["worker_cpu_seconds"],
        "worker_ready_cpu_seconds": ready_cpu,
        "note": "SQS transport, DynamoDB result backend; timed until every result was read",
    }


def new_queue(tag: str) -> str:
    """A fresh queue for one peer run (moto's sends slow down as a queue grows)."""
    from benchmarks.ours import backend
    from sqs_tasks.testing import QUEUE_ATTRIBUTES

    name = f"bench-{tag}-{time.monotonic_ns()}"
    url: str = (
        backend()
        .client("sqs")
        .create_queue(QueueName=name, Attributes=dict(QUEUE_ATTRIBUTES))["QueueUrl"]
    )
    return url
