"""The load of `--tasks N`: N no-op tasks enqueued in bulk, and their table per queue."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .console import Console, bar
from .expectations import Expected, Tracker, judge, returns

BULK_CHUNK = 100


@dataclass
class Load:
    """The load as enqueued: its result ids, how, and how long after the run's first enqueue."""

    tasks: int
    ids: list[str]
    method: str
    took: float  # seconds

    def throughput(self, finished: int, last_finished: float) -> str:
        """The enqueue rate, and the end-to-end rate of every task finished (the mix's too)."""
        return (
            f"\nthroughput: enqueued {self.tasks} tasks in {self.took:.1f} s "
            f"({self.tasks / max(self.took, 1e-3):.0f} tasks/s, {self.method}); "
            f"{finished} tasks finished {last_finished:.1f} s after the first enqueue "
            f"({finished / max(last_finished, 1e-3):.0f} tasks/s end to end)"
        )


def enqueue_load(n: int, tracker: Tracker, console: Console, started: float) -> Load:
    """Enqueue the load with a progress bar; started: when the run's first enqueue began."""

    def shown(count: int) -> None:
        done = tracker.counts()[0]
        console.progress(f"  enqueue {bar(count, n)} {count}/{n}, {done} finished")

    ids, method = enqueue_bulk(n, tracker, shown)
    return Load(n, ids, method, time.monotonic() - started)


def enqueue_bulk(n: int, tracker: Tracker, shown: Callable[[int], None]) -> tuple[list[str], str]:
    """n no-op tasks across the queues, BULK_CHUNK at a time; their ids and how."""
    from django.tasks import default_task_backend

    from example import tasks

    backend: Any = default_task_backend
    queues = sorted(backend.queues)
    enqueue_many = getattr(backend, "enqueue_many", None)
    ids: list[str] = []
    for start in range(0, n, BULK_CHUNK):
        entries: list[tuple[Any, tuple[int], dict[str, Any]]] = [
            (tasks.noop.using(queue_name=queues[i % len(queues)]), (i,), {})
            for i in range(start, min(n, start + BULK_CHUNK))
        ]
        if enqueue_many is not None:
            results = enqueue_many(entries)
        else:
            results = [task.enqueue(*a, **k) for task, a, k in entries]
        for (_, (i,), _), result in zip(entries, results, strict=True):
            tracker.expect(result.id, Expected(f"noop({i})", "SUCCESSFUL", returns(i)))
            ids.append(result.id)
        shown(len(ids))
    return ids, "enqueue_many" if enqueue_many is not None else "enqueue"


def bulk_table(
    ids: Sequence[str], expected: dict[str, Expected], results: dict[str, Any]
) -> tuple[str, list[str]]:
    """The --tasks load, one line per queue, and what went wrong."""
    from ..ops.tables import format_table

    by_queue: dict[str, list[Any]] = {}
    problems = []
    for result_id in ids:
        result, wanted = results[result_id], expected[result_id]
        by_queue.setdefault(result.task.queue_name, []).append(result)
        problem = judge(result, wanted)
        if problem is not None:
            problems.append(f"{result_id}: {wanted.label} {problem}")
    rows = []
    for queue, found in sorted(by_queue.items()):
        took = sorted(
            (r.finished_at - r.started_at) / timedelta(milliseconds=1)
            for r in found
            if r.started_at and r.finished_at
        )
        statuses: dict[str, int] = {}
        for r in found:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        rows.append(
            [
                queue,
                len(found),
                ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())),
                f"{statistics.median(took):.0f} ms" if took else "",
                f"{took[int(0.95 * (len(took) - 1))]:.0f} ms" if took else "",
                max(r.attempts for r in found),
            ]
        )
    headers = ["queue", "noop tasks", "statuses", "took p50", "took p95", "most tries"]
    return format_table(headers, rows), problems
