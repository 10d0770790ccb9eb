"""Task metrics in CloudWatch embedded metric format: log lines, one per batch and queue.

The names and units here are the only list: the stack's dashboard and alarms name the same
metrics (tests/infra/test_template.py checks they match). Every metric has the dimension
`queue` (the Django queue name), and with SQS_TASKS_METRICS_TASK_DIMENSION=true also `task`
(the task's path; each distinct path is one more metric to pay for). Without it the paths
are metadata.
The namespace is POWERTOOLS_METRICS_NAMESPACE (the stack sets SqsTasks/<Prefix>), else
DEFAULT_NAMESPACE; POWERTOOLS_METRICS_DISABLED=true turns the lines off.

Lines go to stdout: in Lambda, CloudWatch Logs turns them into metrics; outside Lambda
(sqs_tasks_worker), the CloudWatch agent does, or they are just lines in the log.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from enum import StrEnum

DEFAULT_NAMESPACE = "sqs-tasks"
TASK_DIMENSION_ENV = "SQS_TASKS_METRICS_TASK_DIMENSION"


class Metric(StrEnum):
    """The metrics the worker and the dead-letter function emit."""

    STARTED = "TasksStarted"
    SUCCEEDED = "TasksSucceeded"
    FAILED = "TasksFailed"
    RETRIED = "TasksRetried"
    DUPLICATES_DROPPED = "DuplicatesDropped"
    DEAD_LETTERED = "TasksDeadLettered"
    RUN_TIME = "RunTime"
    QUEUE_DELAY = "QueueDelay"


# Unit of each metric (CloudWatch's names); the timings are one value per task, for percentiles.
UNITS: dict[Metric, str] = {
    Metric.STARTED: "Count",
    Metric.SUCCEEDED: "Count",
    Metric.FAILED: "Count",
    Metric.RETRIED: "Count",
    Metric.DUPLICATES_DROPPED: "Count",
    Metric.DEAD_LETTERED: "Count",
    Metric.RUN_TIME: "Milliseconds",
    Metric.QUEUE_DELAY: "Milliseconds",
}
TIMINGS = frozenset({Metric.RUN_TIME, Metric.QUEUE_DELAY})


class Recorder:
    """What one batch did, per queue (and task), until flush() writes it as EMF lines."""

    def __init__(self, *, task_dimension: bool | None = None) -> None:
        if task_dimension is None:
            task_dimension = os.environ.get(TASK_DIMENSION_ENV, "").lower() == "true"
        self.task_dimension = task_dimension
        # Attempts timed out by the deadline record from its thread.
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], dict[Metric, int]] = defaultdict(dict)
        self._timings: dict[tuple[str, str], dict[Metric, list[float]]] = defaultdict(dict)

    def count(self, metric: Metric, queue: str, task_path: str) -> None:
        """Add one to a count."""
        with self._lock:
            counts = self._counts[queue, task_path]
            counts[metric] = counts.get(metric, 0) + 1

    def timing(
        self, metric: Metric, queue: str, task_path: str, since: datetime, now: datetime
    ) -> None:
        """Add one timing: now - since, in milliseconds (never below 0)."""
        milliseconds = max(0.0, (now - since).total_seconds() * 1000)
        with self._lock:
            self._timings[queue, task_path].setdefault(metric, []).append(round(milliseconds, 3))

    def totals(self) -> dict[tuple[str, str], dict[Metric, int]]:
        """The counts so far, per (queue, task path)."""
        with self._lock:
            return {key: dict(counts) for key, counts in self._counts.items()}

    def flush(self) -> None:
        """Print the EMF lines of everything recorded (one per dimension set), then forget it."""
        with self._lock:
            counts, self._counts = self._counts, defaultdict(dict)
            timings, self._timings = self._timings, defaultdict(dict)
        if not counts and not timings:
            return
        # Imported at the first flush: a container that runs nothing never loads it.
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )

        groups: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
        for key in {*counts, *timings}:
            queue, task_path = key
            groups[(queue, task_path) if self.task_dimension else (queue,)].append(key)
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "")
        for dimensions, keys in sorted(groups.items()):
            # service="": the dimensions are the queue's alone, the same in and out of Lambda.
            emf = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
            emf.add_dimension("queue", dimensions[0])
            if self.task_dimension:
                emf.add_dimension("task", dimensions[1])
            else:
                emf.add_metadata("tasks", sorted({task_path for _, task_path in keys}))
            if service:
                emf.add_metadata("service", service)
            summed: dict[Metric, int] = {}
            for key in keys:
                for metric, n in counts.get(key, {}).items():
                    summed[metric] = summed.get(metric, 0) + n
            for metric, n in sorted(summed.items()):
                emf.add_metric(name=metric.value, unit=UNITS[metric], value=n)
            for key in keys:
                for metric, values in sorted(timings.get(key, {}).items()):
                    for value in values:
                        emf.add_metric(name=metric.value, unit=UNITS[metric], value=value)
            if emf.metric_set:  # None left if exactly 100 values were just written.
                emf.flush_metrics()


_current: ContextVar[Recorder | None] = ContextVar("sqs_tasks_metrics", default=None)


def current() -> Recorder | None:
    """The recorder of the batch this thread is running, if any."""
    return _current.get()


@contextmanager
def recording() -> Iterator[Recorder]:
    """Record what the block does, and flush it at the end whatever happens."""
    recorder = Recorder()
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)
        recorder.flush()
