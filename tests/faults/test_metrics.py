"""The worker and the dead-letter function write what happened as EMF lines: exact counts of
a scripted run on the embedded AWS, and the queue delay of a deferred task."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus

from lambda_handler import dlq
from sqs_tasks.testing import Stack, drain
from sqs_tasks.worker.metrics import DEFAULT_NAMESPACE, UNITS, Metric
from tests.faults import tasks
from tests.faults.support import body_of, delete, deliver, dlq_url, receive, send

DEFERRAL = timedelta(seconds=20)  # + LATE: under succeed_on_third's least retry wait, 30 s
LATE = timedelta(seconds=7)


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF objects among the lines of text."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            found.append(json.loads(line))
    return found


def totals(lines: list[dict[str, Any]]) -> tuple[Counter[str], dict[str, list[float]]]:
    """Counts summed and timings listed, per metric name, over EMF lines."""
    counts: Counter[str] = Counter()
    timings: dict[str, list[float]] = {}
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            name, value = metric["Name"], line[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            if metric["Unit"] == "Count":
                counts[name] += int(sum(values))
            else:
                timings.setdefault(name, []).extend(values)
    return counts, timings


def test_a_scripted_run_writes_exact_counts(
    stack: Stack, clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    lost = tasks.tally.enqueue(0)
    (message,) = receive()
    send(message["Body"], dlq_url())  # as SQS moves it after its last receive
    delete([message])
    assert deliver(receive(dlq_url()), dlq_url(), entry=dlq.handler) == set()

    done = [tasks.tally.enqueue(n) for n in range(9)]
    failed = [tasks.fail_on_purpose.enqueue("on purpose") for _ in range(2)]
    retried = tasks.succeed_on_third.enqueue()
    deferred = tasks.tally.using(run_after=datetime.now(UTC) + DEFERRAL).enqueue(99)
    drain()
    send(body_of(done[0]))  # a duplicate delivery of a finished task
    drain()
    clock.shift(DEFERRAL + LATE)
    drain()

    for result in [lost, *done, *failed, retried, deferred]:
        result.refresh()
    assert lost.status == TaskResultStatus.FAILED
    assert [r.status for r in failed] == [TaskResultStatus.FAILED] * 2
    assert retried.status == TaskResultStatus.READY
    assert deferred.status == TaskResultStatus.SUCCESSFUL

    lines = emf_lines(capsys.readouterr().out)
    counts, timings = totals(lines)
    assert counts == {
        Metric.STARTED: 13,
        Metric.SUCCEEDED: 10,
        Metric.FAILED: 2,
        Metric.RETRIED: 1,
        Metric.DUPLICATES_DROPPED: 1,
        Metric.DEAD_LETTERED: 1,
    }
    assert len(timings[Metric.RUN_TIME]) == 13  # one per body run
    assert len(timings[Metric.QUEUE_DELAY]) == 13
    # The deferred task ran LATE after its run_after: its wait before that is not delay.
    deferred_delay = timings[Metric.QUEUE_DELAY][-1]
    assert LATE.total_seconds() * 1000 <= deferred_delay < (LATE.total_seconds() + 5) * 1000
    # One line per handler invocation and queue, each with only the dimension "queue".
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == DEFAULT_NAMESPACE
        assert directive["Dimensions"] == [["queue"]]
        assert line["queue"] == "default"
        assert {m["Name"]: m["Unit"] for m in directive["Metrics"]}.items() <= {
            m.value: u for m, u in UNITS.items()
        }.items()
