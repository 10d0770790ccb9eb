"""A task's own error is recorded whatever its text: the body runs once per attempt, never again
for a failed write, and the result ends FAILED with that error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus

from sqs_tasks.testing import MAX_RECEIVE_COUNT, QUEUE_ATTRIBUTES, Stack, drain
from tests.faults import tasks
from tests.faults.support import dlq_url, queue_depth

VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))
ESCAPED = {"file name": "report-\\udcff.csv", "half an emoji": "\\ud83d"}


@pytest.mark.parametrize("shape", sorted(tasks.UNENCODABLE))
@pytest.mark.parametrize(
    ("task", "attempts"),
    [(tasks.fail_unencodably, 1), (tasks.fail_unencodably_twice, 2)],
    ids=["once", "retried"],
)
def test_an_error_text_utf8_cannot_carry_is_recorded_once_per_attempt(
    stack: Stack, clock: Any, shape: str, task: Any, attempts: int
) -> None:
    """Each attempt runs once and records its ValueError, the surrogate escaped; no message
    multiplies, none is dead-lettered."""
    result = task.enqueue(shape)

    for _ in range(MAX_RECEIVE_COUNT + 1):  # every redelivery, and the retry, come due
        drain()
        clock.shift(VISIBILITY + timedelta(seconds=1))
    result.refresh()

    assert tasks.runs[result.id] == attempts
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, attempts)
    assert [e.exception_class for e in result.errors] == [ValueError] * attempts
    assert all(f"cannot open {ESCAPED[shape]}" in e.traceback for e in result.errors)
    assert queue_depth() == (0, 0)
    assert queue_depth(dlq_url()) == (0, 0)
