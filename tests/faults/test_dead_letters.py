"""The dead-letter handler fails a result only when the letter was its last way to run, and
never deletes a letter it cannot settle."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResult, TaskResultStatus
from django.test import override_settings

from lambda_handler import dlq
from sqs_tasks.exceptions import WorkerLost
from sqs_tasks.message import Envelope
from sqs_tasks.testing import QUEUE_ATTRIBUTES, Stack, drain
from tests.faults import tasks
from tests.faults.support import (
    body_of,
    client,
    delete,
    deliver,
    dlq_url,
    queue_depth,
    queue_url,
    receive,
    send,
)

VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))
RETRY_WAIT = timedelta(seconds=61)  # succeed_on_third waits 30 to 60 s between attempts


def _settle_letters() -> tuple[int, int]:
    """Run the DLQ's visible letters through the dead-letter handler: (dropped, kept)."""
    letters = receive(dlq_url())
    kept = deliver(letters, dlq_url(), entry=dlq.handler)
    return len(letters) - len(kept), len(kept)


def _error_classes(result: TaskResult[..., Any]) -> list[type[BaseException]]:
    result.refresh()
    return [e.exception_class for e in result.errors]


@pytest.mark.parametrize("retry_due", [False, True], ids=["retry-waiting", "retry-due"])
def test_a_stale_duplicate_dead_lettered_while_a_retry_is_pending_leaves_it_alone(
    stack: Stack, clock: Any, retry_due: bool
) -> None:
    """A duplicate of the first message, dead-lettered after attempt 1 failed, is dropped:
    the retries run, max_attempts=3 means 3 attempts, SUCCESSFUL, no WorkerLost."""
    result = tasks.succeed_on_third.enqueue()
    send(body_of(result), dlq_url())  # a duplicate delivery, sent with the original
    clock.shift(timedelta(seconds=1))
    drain()  # attempt 1 fails: READY, its retry's message waiting
    assert _error_classes(result) == [ConnectionError]
    assert result.status == TaskResultStatus.READY
    if retry_due:
        clock.shift(RETRY_WAIT)  # due, its message not yet received

    assert _settle_letters() == (1, 0)
    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.READY, 1)

    for _ in range(2):
        clock.shift(RETRY_WAIT)
        drain()
    assert _error_classes(result) == [ConnectionError, ConnectionError]
    assert (result.status, result.attempts) == (TaskResultStatus.SUCCESSFUL, 3)
    assert tasks.runs[result.id] == 3
    assert queue_depth(dlq_url()) == (0, 0)


def test_a_retry_whose_own_message_is_dead_lettered_is_failed(stack: Stack, clock: Any) -> None:
    """The retry's message, sent after attempt 1 started, is its last: FAILED WorkerLost."""
    result = tasks.succeed_on_third.enqueue()
    drain()
    clock.shift(RETRY_WAIT)
    (retry,) = receive()
    send(retry["Body"], dlq_url())  # as SQS moves it after its last receive
    delete([retry])

    assert _settle_letters() == (1, 0)
    assert _error_classes(result) == [ConnectionError, WorkerLost]
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 1)
    assert tasks.runs[result.id] == 1


def test_the_only_message_of_a_deferred_result_is_kept_until_it_is_due(
    stack: Stack, clock: Any
) -> None:
    """Dead-lettered before run_after: kept in the DLQ, result READY; once due and still
    unrun, the letter fails it (WorkerLost)."""
    result = tasks.tally.using(run_after=datetime.now(UTC) + timedelta(minutes=10)).enqueue(1)
    client("sqs").purge_queue(QueueUrl=queue_url())  # its own message is the letter below
    send(body_of(result), dlq_url())

    assert _settle_letters() == (0, 1)
    result.refresh()
    assert result.status == TaskResultStatus.READY

    clock.shift(timedelta(minutes=10) + VISIBILITY)
    assert _settle_letters() == (1, 0)
    assert _error_classes(result) == [WorkerLost]
    assert result.status == TaskResultStatus.FAILED
    assert tasks.runs[result.id] == 0


def test_a_letter_signed_with_another_key_is_kept_and_its_signature_never_logged(
    stack: Stack, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A key rotated on the sender's side first: the letter stays in the DLQ (a batch item
    failure, so the DLQ alarm sees it) for redrive, the result READY, the reason logged."""
    result = tasks.tally.enqueue(1)
    delete(receive())
    with override_settings(SECRET_KEY="the-new-key-only-the-sender-has"):
        body = Envelope.of(result).encode()
    send(body, dlq_url())

    with caplog.at_level(logging.INFO):
        assert _settle_letters() == (0, 1)
    result.refresh()

    assert result.status == TaskResultStatus.READY
    assert queue_depth(dlq_url()) == (0, 1)  # in flight: back after the visibility timeout
    assert "cannot be verified" in caplog.text
    assert json.loads(body)["sig"] not in caplog.text
