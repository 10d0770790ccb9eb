"""A task that outlives its Lambda invocation: ended TaskTimedOut before Lambda kills the
batch, whose unstarted records go back as fresh messages, so none is dead-lettered unrun."""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus

from sqs_tasks.exceptions import TaskTimedOut
from sqs_tasks.testing import MAX_RECEIVE_COUNT, QUEUE_ATTRIBUTES, Stack
from sqs_tasks.worker.context import LambdaContext
from tests.faults import tasks
from tests.faults.support import Message, delete, dlq_url, invoke, queue_depth, receive_all

VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))
TIMEOUT = 4.0  # seconds: the function's timeout in this test
MATES = 3


class _Invocation(LambdaContext):
    """The context of a Lambda invocation TIMEOUT seconds long, which Lambda kills then."""

    kills_at_deadline = True

    def __init__(self) -> None:
        super().__init__(deadline=time.monotonic() + TIMEOUT)


def _invoke_until_killed(messages: list[Message]) -> set[str] | None:
    """One invocation of messages, killed at its deadline as Lambda does: the ids it wants
    back, or None when it was killed and answered nothing (a hanging task that returns when
    told of the kill lets the batch answer, as if the kill came late)."""
    answered: list[set[str]] = []

    def run() -> None:
        with suppress(KeyboardInterrupt):  # the kill
            answered.append(invoke(messages, context=_Invocation()))

    invocation = threading.Thread(target=run)
    invocation.start()
    invocation.join(timeout=TIMEOUT)  # Lambda's own timer, not a wait for the code under test
    tasks.killed.set()
    invocation.join()
    tasks.killed.clear()
    return answered[0] if answered else None


@pytest.mark.parametrize(
    ("task", "ends"),
    [
        (tasks.hang_until_killed, (TaskResultStatus.FAILED, 1)),
        (tasks.hang_first_attempt, (TaskResultStatus.SUCCESSFUL, 2)),
    ],
    ids=["fails", "retried"],
)
@pytest.mark.parametrize("returns", [False, True], ids=["killed", "returns-late"])
def test_a_hanging_task_dead_letters_none_of_its_batch_mates(
    stack: Stack, clock: Any, returns: bool, task: Any, ends: tuple[TaskResultStatus, int]
) -> None:
    """1 hanging task (first in its batch) and 3 batch-mates, over 6 receives: the hanging
    attempt runs once and ends TaskTimedOut (FAILED, or retried if the task retries), even if
    it returns after all; each mate runs once, SUCCESSFUL; 0 dead letters."""
    hanging = task.enqueue(returns)
    mates = [tasks.tally.enqueue(n) for n in range(MATES)]

    killed = 0
    for _ in range(MAX_RECEIVE_COUNT + 1):
        batch = receive_all()
        if batch:
            failed = _invoke_until_killed(batch)
            if failed is None:
                killed += 1
            else:  # As the event source mapping settles an answered batch.
                delete([m for m in batch if m["MessageId"] not in failed])
        clock.shift(VISIBILITY + timedelta(seconds=1))

    for mate in mates:
        mate.refresh()
        assert (mate.status, mate.attempts) == (TaskResultStatus.SUCCESSFUL, 1)
        assert tasks.runs[mate.id] == 1
    assert queue_depth(dlq_url()) == (0, 0)
    assert queue_depth() == (0, 0)
    hanging.refresh()
    assert killed == (0 if returns else 1)
    assert (hanging.status, hanging.attempts) == ends
    assert [e.exception_class for e in hanging.errors] == [TaskTimedOut]
    assert tasks.runs[hanging.id] == hanging.attempts
