"""Figures under the latency model: every request goes through benchmarks/latency_proxy.py.

What a user on AWS feels is round trips on the critical path; on one moto server every
request also costs moto's CPU, so each figure comes with moto's CPU per task beside it.
Ratios within one run are what count: the machine is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import ours
from benchmarks.peer_runs import _json_line, process_cpu_seconds
from benchmarks.tasks import noop

# The operations an SQS consumer pays per task to get and settle its messages.
RECEIVE_AND_DELETE = ("sqs.ReceiveMessage", "sqs.DeleteMessageBatch", "sqs.DeleteMessage")


class Proxy:
    """The latency proxy in a process of its own, in front of upstream."""

    def __init__(self, root: Path, upstream: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.latency_proxy", upstream],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.close()
            raise RuntimeError("the latency proxy did not start")

    def _call(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/__proxy__/{path}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            found: dict[str, Any] = json.load(response)
            return found

    def stats(self) -> dict[str, Any]:
        """Counts and moto's times since the last reset."""
        return self._call("stats")

    def reset(self) -> None:
        """Count from zero."""
        self._call("reset")

    @contextlib.contextmanager
    def unheld(self) -> Iterator[None]:
        """No request is held for its latency meanwhile: set-up that is not measured."""
        self._call("latency?on=0")
        try:
            yield
        finally:
            self._call("latency?on=1")

    def cpu_seconds(self) -> float:
        """CPU the proxy has used."""
        return process_cpu_seconds(self.process.pid)

    def close(self) -> None:
        """Stop the proxy."""
        self.process.terminate()
        self.process.wait(timeout=10)


class Meter:
    """Requests by operation and moto's CPU while one measured thing runs."""

    def __init__(self, proxy: Proxy, server_pid: int) -> None:
        self.proxy = proxy
        self.server_pid = server_pid

    def __enter__(self) -> Meter:
        self.proxy.reset()
        self._cpu = process_cpu_seconds(self.server_pid)
        self._proxy_cpu = self.proxy.cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.moto_cpu = process_cpu_seconds(self.server_pid) - self._cpu
        self.proxy_cpu = self.proxy.cpu_seconds() - self._proxy_cpu
        self.snapshot = self.proxy.stats()

    def per_task(self, n: int, seconds: float) -> dict[str, Any]:
        """Requests per task by operation, and moto's share: its CPU per task and of a core."""
        count: dict[str, int] = self.snapshot["count"]
        upstream: dict[str, float] = self.snapshot["upstream_seconds"]
        held: dict[str, float] = self.snapshot["held_seconds"]
        requests = sum(count.values())
        # A long poll's time is mostly its wait: moto's time per request leaves them out.
        answered = {op: t for op, t in upstream.items() if op != "sqs.ReceiveMessage"}
        answered_count = sum(c for op, c in count.items() if op in answered)
        return {
            "requests_per_task": {op: c / n for op, c in sorted(count.items())},
            "requests_total_per_task": requests / n,
            "receive_delete_per_task": sum(count.get(op, 0) for op in RECEIVE_AND_DELETE) / n,
            "moto_cpu_ms_per_task": self.moto_cpu * 1000 / n,
            "moto_core_share": self.moto_cpu / seconds if seconds else 0.0,
            "moto_ms_per_request": (
                sum(answered.values()) * 1000 / answered_count if answered_count else 0.0
            ),
            "proxy_cpu_ms_per_task": self.proxy_cpu * 1000 / n,
            # Time a task took while moto answered nothing (the model's latency, the client, the
            # proxy): what is left of the figure with moto answering at once.
            "moto_busy_ms_per_task": self.snapshot["busy_seconds"] * 1000 / n,
            "outside_moto_ms_per_task": (seconds - self.snapshot["busy_seconds"]) * 1000 / n,
            # One request of each operation through the proxy: the time held, and moto's answer.
            "held_ms": {op: held.get(op, 0.0) * 1000 / c for op, c in sorted(count.items()) if c},
            "moto_ms": {
                op: upstream.get(op, 0.0) * 1000 / c for op, c in sorted(count.items()) if c
            },
        }


def enqueue_figures(n_single: int, n_bulk: int, rounds: int, meter: Meter) -> dict[str, Any]:
    """enqueue() and enqueue_many() against their raw requests, through the proxy; moto's
    time per request of each (its share of the figures)."""
    found: dict[str, Any] = {}
    for kind, measure, n in (
        ("single", ours.enqueue_single, n_single),
        ("bulk", ours.enqueue_bulk, n_bulk),
    ):
        with meter:
            found[kind] = measure(n=n, rounds=rounds)
        stats = meter.snapshot
        found[kind]["moto_ms_per_request"] = {
            op: stats["upstream_seconds"][op] * 1000 / count
            for op, count in sorted(stats["count"].items())
            if count
        }
    return found


AENQUEUE_KINDS = ("one_by_one", "aenqueue", "django_default", "floor")


def aenqueue_concurrency(n: int, rounds: int, meter: Meter) -> dict[str, Any]:
    """n concurrent aenqueue() from one event loop against n enqueue() one after another,
    Django's default aenqueue (one thread-sensitive thread) and the floor: the same PutItem +
    SendMessage pairs made concurrently, as many at once as aenqueue makes them."""
    from django.tasks.backends.base import BaseTaskBackend

    b, ddb, sqs, _ = ours._on_fresh_queue("aenqueue")
    with ours.capturing(ddb, "PutItem") as puts, ours.capturing(sqs, "SendMessage") as sends:
        noop.enqueue()
    template, send = puts[0], sends[0]
    width = b.async_width
    seconds: dict[str, list[float]] = {kind: [] for kind in AENQUEUE_KINDS}
    moto_cpu: dict[str, list[float]] = {kind: [] for kind in AENQUEUE_KINDS}

    def raw_pair(ddb: Any, sqs: Any, url: str) -> None:
        ddb.put_item(**{**template, "Item": ours._fresh(template["Item"])})
        sqs.send_message(**{**send, "QueueUrl": url})

    async def concurrently(backend: Any, default: bool) -> None:
        if default:
            calls = [BaseTaskBackend.aenqueue(backend, noop, [], {}) for _ in range(n)]
        else:
            calls = [noop.aenqueue() for _ in range(n)]
        await asyncio.gather(*calls)

    for r in range(rounds):
        for kind in AENQUEUE_KINDS if r % 2 == 0 else tuple(reversed(AENQUEUE_KINDS)):
            b, ddb, sqs, url = ours._on_fresh_queue("aenqueue")
            with meter:
                start = time.perf_counter()
                if kind == "one_by_one":
                    for _ in range(n):
                        noop.enqueue()
                elif kind == "floor":
                    with ThreadPoolExecutor(width) as pool:
                        for done in [pool.submit(raw_pair, ddb, sqs, url) for _ in range(n)]:
                            done.result()
                else:
                    asyncio.run(concurrently(b, default=kind == "django_default"))
                seconds[kind].append(time.perf_counter() - start)
            moto_cpu[kind].append(meter.moto_cpu * 1000 / n)
    medians = {kind: statistics.median(s) for kind, s in seconds.items()}
    return {
        "n": n,
        "rounds": rounds,
        "width": width,
        "seconds": medians,
        "moto_cpu_ms_per_task": {k: statistics.median(v) for k, v in moto_cpu.items()},
        "vs_one_by_one": statistics.median(
            a / o for a, o in zip(seconds["aenqueue"], seconds["one_by_one"], strict=True)
        ),
        "vs_floor": statistics.median(
            a / f for a, f in zip(seconds["aenqueue"], seconds["floor"], strict=True)
        ),
        "django_default_vs_one_by_one": statistics.median(
            d / o for d, o in zip(seconds["django_default"], seconds["one_by_one"], strict=True)
        ),
    }


def moto_ceiling(meter: Meter, n: int = 600, threads: int = 16) -> dict[str, Any]:
    """The most of a core moto's process gives on this machine, now: n claims (the worker's
    conditional UpdateItem, its heaviest request) from threads at once, through the proxy.

    moto serves requests on threads of one Python process, so its CPU share stays under a core
    whatever the load; the drains' and end-to-end runs' shares are judged against this one."""
    import boto3
    from botocore.config import Config

    ours.fresh_queue("ceiling")
    b = ours.backend()
    with meter.proxy.unheld():
        ids = [r.id for r in b.enqueue_many([(noop, [], {}) for _ in range(n + 1)])]
        ddb = b.client("dynamodb")
        now = datetime.now(UTC)
        with ours.capturing(ddb, "UpdateItem") as claims:
            b.store.claim(ids.pop(), "ceiling", now, now + timedelta(minutes=15))
    template = claims[0]
    client = boto3.session.Session(region_name=ddb.meta.region_name).client(
        "dynamodb",
        endpoint_url=meter.proxy.url,
        config=Config(max_pool_connections=threads),
    )
    with meter:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for done in [
                pool.submit(client.update_item, **{**template, "Key": {"id": {"S": i}}})
                for i in ids
            ]:
                done.result()
        seconds = time.perf_counter() - start
    return {
        "threads": threads,
        "requests": len(ids),
        "requests_per_second": len(ids) / seconds,
        "moto_ms_per_request": meter.moto_cpu * 1000 / len(ids),
        "moto_core_share": meter.moto_cpu / seconds,
    }


def prefill(proxy: Proxy, n: int, tag: str) -> str:
    """A fresh queue with n noop tasks waiting (enqueued with the latency off: not measured)."""
    url = ours.fresh_queue(tag)
    with proxy.unheld():
        for start in range(0, n, 500):
            ours.backend().enqueue_many([(noop, [], {}) for _ in range(min(500, n - start))])
    return url


def drain(
    root: Path,
    env: dict[str, str],
    meter: Meter,
    path: str,
    concurrency: int,
    n: int,
    claim_ahead: bool = True,
) -> dict[str, Any]:
    """The drain rate of a backlog of n: sqs_tasks_worker (path "worker") or the Lambda path
    (the mapping emulator, "lambda") at concurrency; requests per task by operation."""
    url = prefill(meter.proxy, n, f"drain-{path}-{concurrency}")
    child_env = {
        **env,
        "AWS_ENDPOINT_URL": meter.proxy.url,
        "SQS_TASKS_QUEUE_URLS": json.dumps({"default": url}),
        "BENCH_CLAIM_AHEAD": "1" if claim_ahead else "0",
    }
    if path == "worker":
        cmd = [sys.executable, "-m", "benchmarks.drain", str(concurrency), str(n)]
    else:
        cmd = [sys.executable, "-m", "benchmarks.esm", "10", str(n), str(concurrency)]
    with meter:
        proc = subprocess.run(
            cmd, cwd=root, env=child_env, capture_output=True, text=True, timeout=900
        )
    if proc.returncode:
        raise RuntimeError(f"{path} drain failed: {proc.stderr[-800:]}")
    report = _json_line(proc.stdout)
    seconds = float(report["seconds"])
    return {
        "path": path,
        "concurrency": concurrency,
        "claim_ahead": claim_ahead,
        "n": n,
        "handled": report["handled"],
        "seconds": seconds,
        "tasks_per_second": report["handled"] / seconds,
        # From its ready: the Lambda path's is the container's and the mapping emulator's.
        "worker_cpu_ms_per_task": (report["cpu_seconds"] - report["ready_cpu_seconds"]) * 1000 / n,
        **meter.per_task(n, seconds),
    }


def end_to_end_worker(
    root: Path,
    env: dict[str, str],
    meter: Meter,
    n: int,
    concurrency: int = 1,
    batch_window: float | None = None,
    bulk: bool = True,
) -> dict[str, Any]:
    """enqueue_many(n) (or n enqueue()) while sqs_tasks_worker runs them, until it has deleted
    the last message (as django-tasks-sqs is timed): a message is deleted once its result is
    stored, so every result is readable then. They are read afterwards, not timed, to check.

    The worker's CPU is its process's from ready (Django set up, clients made) to its stop."""
    url = ours.fresh_queue("e2e-worker")
    child_env = {
        **env,
        "AWS_ENDPOINT_URL": meter.proxy.url,
        "SQS_TASKS_QUEUE_URLS": json.dumps({"default": url}),
    }
    if batch_window is not None:
        child_env["BENCH_BATCH_WINDOW"] = str(batch_window)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.drain", str(concurrency), str(n)],
        cwd=root,
        env=child_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        _json_line(proc.stdout.readline())  # ready
        b = ours.backend()
        b.client("dynamodb"), b.client("sqs")
        with meter:
            start = time.time()  # The worker's "done" is its clock's, this machine's.
            if bulk:
                results = b.enqueue_many([(noop, [], {}) for _ in range(n)])
            else:
                results = [noop.enqueue() for _ in range(n)]
            out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode:
        raise RuntimeError(f"sqs_tasks_worker exited with {proc.returncode}")
    report = _json_line(out)
    seconds = report["done"] - start
    ours._wait_finished([r.id for r in results], timeout=60)
    return {
        "system": "sqs-tasks",
        "workers": concurrency,
        "n": n,
        "seconds": seconds,
        "tasks_per_second": n / seconds,
        "worker_cpu_ms_per_task": (report["cpu_seconds"] - report["ready_cpu_seconds"]) * 1000 / n,
        **meter.per_task(n, seconds),
    }


def peer(
    name: str,
    python: Path,
    root: Path,
    env: dict[str, str],
    meter: Meter,
    n: int,
    workers: int,
    out: Path,
) -> dict[str, Any]:
    """A peer's end-to-end run through the proxy, with its requests and worker CPU per task
    (the worker's process from ready to done, as ours)."""
    from benchmarks import peer_runs

    queue = peer_runs.new_queue(f"latency-{name}")
    peer_env = {**env, "PEER_QUEUE_URL": queue, "AWS_ENDPOINT_URL": meter.proxy.url}
    peer_env.pop("DJANGO_SETTINGS_MODULE", None)
    # Metered from the worker's ready, as ours: its start-up's requests are not the tasks'.
    with contextlib.ExitStack() as metered:
        start_meter = partial(metered.enter_context, meter)
        if name == "celery":
            run = peer_runs.celery(python, root, peer_env, n, workers, out, start_meter)
        else:
            run = peer_runs.django_tasks_sqs(python, root, peer_env, n, workers, start_meter)
    cpu = run["worker_cpu_seconds"] - run["worker_ready_cpu_seconds"]
    return {
        "system": name,
        **run,
        "worker_cpu_ms_per_task": cpu * 1000 / n,
        **meter.per_task(n, run["seconds"]),
    }
