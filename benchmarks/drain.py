"""sqs_tasks_worker draining a queue, for the benchmark's latency model.

Run by latency.py as its own process (python -m benchmarks.drain CONCURRENCY EXPECTED): a
Worker with the management command's defaults but CONCURRENCY, stopped once EXPECTED messages
were deleted. Prints `{"ready": ...}` once its clients are made, then one JSON line: seconds
from the first receive to the last delete, when that was (`done`), counts, and CPU (in all,
and at ready).
BENCH_CLAIM_AHEAD=0 turns claim ahead off, to measure what it saves; BENCH_BATCH_WINDOW sets
the worker's batch window.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any


def claim_ahead_off() -> None:
    """No record is claimed ahead: each is claimed in its turn."""
    from sqs_tasks.worker.claim_ahead import ClaimAhead

    ClaimAhead.after = lambda self, receipt_handle: None  # type: ignore[method-assign]


def main(concurrency: int, expected: int) -> dict[str, Any]:
    """Run a worker until expected messages were deleted; what it took."""
    import django

    django.setup()
    from django.tasks import task_backends

    from benchmarks.esm import peak_rss_kb
    from sqs_tasks.worker.poller import BATCH_WINDOW, Worker

    if os.environ.get("BENCH_CLAIM_AHEAD") == "0":
        claim_ahead_off()
    window = os.environ.get("BENCH_BATCH_WINDOW")
    worker = Worker(concurrency=concurrency, batch_window=float(window or BATCH_WINDOW))
    backend: Any = task_backends["default"]
    backend.client("sqs"), backend.client("dynamodb")  # Made before "ready", as a booted worker's.
    ready_cpu = sum(os.times()[:2])
    print(json.dumps({"ready": time.time()}), file=sys.__stdout__, flush=True)
    thread = threading.Thread(target=worker.run)
    start = time.perf_counter()
    thread.start()
    done = threading.Event()
    # Polls a counter in this process every 5 ms: the stop adds at most that to the figure.
    while worker.stats.deleted < expected and thread.is_alive():
        done.wait(0.005)
    seconds, done_at = time.perf_counter() - start, time.time()
    worker.stop()
    thread.join()
    return {
        "concurrency": concurrency,
        "handled": worker.stats.deleted,
        "batches": worker.stats.batches,
        "seconds": seconds,
        "done": done_at,  # when the last message was deleted, before the worker's stop
        "maxrss_kb": peak_rss_kb(),
        "cpu_seconds": sum(os.times()[:2]),
        "ready_cpu_seconds": ready_cpu,
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    # The handler's EMF lines (one per batch, as in Lambda's log) must not fill the pipe the
    # parent reads only this process's report lines from.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))), file=sys.__stdout__, flush=True)
