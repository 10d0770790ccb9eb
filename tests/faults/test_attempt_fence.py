"""The attempt fence: only the attempt holding a result's claim writes to it, and a claim is
leased for the invocation's time left plus LEASE_MARGIN, so no duplicate runs in between."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus

from sqs_tasks.aws.store import ResultStore
from sqs_tasks.results import Item, task_error, timestamp
from sqs_tasks.testing import Stack
from sqs_tasks.worker.attempt import Attempt
from tests.faults import tasks
from tests.faults.support import backend, invoke, item, receive

Write = Callable[[ResultStore, Item, datetime], bool]
WRITES: dict[str, Write] = {
    "finish SUCCESSFUL": lambda store, held, now: store.finish(held, now=now, return_json="2"),
    "finish FAILED": lambda store, held, now: store.finish(
        held, now=now, error=task_error(ValueError("failed"))
    ),
    "retry": lambda store, held, now: store.retry(
        held, now=now, error=task_error(ValueError("failed")), run_after=now
    ),
    "extend lease": lambda store, held, now: store.extend_lease(
        held["id"]["S"], held["attempts"], now + timedelta(hours=1)
    ),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_stale_attempt_cannot_write_while_the_newer_attempt_runs(
    stack: Stack, write: str
) -> None:
    """Attempt 1's lease lapsed and attempt 2 holds the result, RUNNING: attempt 1's write is
    refused and changes nothing; attempt 2's own is accepted."""
    result = tasks.tally.enqueue(1)
    store: ResultStore = backend().store
    now = datetime.now(UTC)
    stale = store.claim(result.id, "stale", now - timedelta(hours=1), now - timedelta(minutes=1))
    newer = store.claim(result.id, "newer", now, now + timedelta(minutes=5))
    assert stale.item is not None and newer.item is not None and newer.claimed

    assert WRITES[write](store, stale.item, now) is False
    assert item(result.id) == newer.item
    assert WRITES[write](store, newer.item, now) is True


def test_a_duplicate_delivered_just_after_the_deadline_waits_for_the_lease(
    stack: Stack, time_machine: Any
) -> None:
    """Claimed with 60 s left: leased 60 s + LEASE_MARGIN. A duplicate just after the
    deadline is left for redelivery, unrun; once the lease lapses it runs, attempt 2."""
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=False)
    result = tasks.tally.enqueue(1)
    (message,) = receive()
    Attempt.start(
        message["Body"], worker_id="killed-at-its-deadline", remaining=timedelta(seconds=60)
    )
    claimed = item(result.id)
    assert claimed is not None
    assert claimed["lease_until"]["S"] == timestamp(start + timedelta(seconds=90))

    time_machine.move_to(start + timedelta(seconds=61))
    assert invoke([message]) == {message["MessageId"]}
    assert item(result.id) == claimed
    assert tasks.runs[result.id] == 0

    time_machine.move_to(start + timedelta(seconds=91))
    assert invoke([message]) == set()
    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.SUCCESSFUL, 2)
    assert tasks.runs[result.id] == 1
