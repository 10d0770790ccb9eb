"""django-tasks-sqs in its own virtualenv: `produce N` bulk-enqueues, `work N` runs its worker.

Each prints one JSON line with wall-clock times (time.time(), comparable across processes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peers.dts_settings")

import django

django.setup()

from django.tasks import default_task_backend  # noqa: E402

from benchmarks.esm import peak_rss_kb  # noqa: E402
from benchmarks.peers.dts_tasks import noop  # noqa: E402


def produce(n: int) -> dict[str, Any]:
    """Enqueue n no-op tasks with the peer's own SendMessageBatch bulk API."""
    start = time.time()
    default_task_backend.enqueue_many((noop, [], {}) for _ in range(n))  # type: ignore[attr-defined]
    return {"start": start, "enqueued": time.time()}


def work(n: int, threads: int) -> dict[str, Any]:
    """Run the peer's worker (10 messages a receive) until n tasks succeeded."""
    from django_tasks_sqs import Worker, WorkerOptions
    from django_tasks_sqs.signals import message_processed

    options = WorkerOptions(wait_time_seconds=1, max_messages=10)
    worker = Worker(concurrency=threads, options=options)
    seen = {"succeeded": 0, "done": 0.0}

    def count(sender: Any, outcome: str, **kwargs: Any) -> None:
        if outcome == "succeeded":
            seen["succeeded"] += 1
            if seen["succeeded"] >= n:
                seen["done"] = time.time()
                worker.stop()

    message_processed.connect(count, weak=False)
    worker.backend.get_queue_url("default")  # Client made before "ready", as ours is.
    print(json.dumps({"ready": time.time(), "cpu_seconds": sum(os.times()[:2])}), flush=True)
    worker.run()
    return {
        "done": seen["done"],
        "handled": seen["succeeded"],
        "maxrss_kb": peak_rss_kb(),
        "cpu_seconds": sum(os.times()[:2]),
    }


if __name__ == "__main__":
    mode, count = sys.argv[1], int(sys.argv[2])
    report = produce(count) if mode == "produce" else work(count, int(sys.argv[3]))
    print(json.dumps(report), flush=True)
