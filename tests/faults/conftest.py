"""Fixtures of the fault suite: fresh run counts, a shared clock, a faithful embedded AWS."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.sqs.models import Message, SQSBackend

from tests.faults import tasks

# moto's DynamoDB checks a write's condition and applies it without a lock, so two
# concurrent conditional writes to one item can both succeed; DynamoDB never lets them.
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_item_lock = threading.RLock()


def _atomic(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _item_lock:
            return write(*args, **kwargs)

    return locked


def _retained(self: SQSBackend, queue_name: str, message: Message) -> bool:
    # moto computes every queue attribute (three scans of the queue) for each message it
    # returns, only to read MessageRetentionPeriod: same answer, one attribute read.
    queue: Any = self.get_queue(queue_name)  # its attributes are set from a dict, untyped
    retention = int(queue.message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


@pytest.fixture(autouse=True)
def faithful_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto as DynamoDB behaves under concurrency (atomic conditional writes), and fast
    enough to receive from a queue holding thousands of messages."""
    for name in _WRITES:
        monkeypatch.setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
    monkeypatch.setattr(SQSBackend, "is_message_valid_based_on_retention_period", _retained)


@pytest.fixture(autouse=True)
def _fresh_runs() -> Iterator[None]:
    tasks.reset()
    yield
    tasks.reset()


@pytest.fixture
def clock(time_machine: Any) -> Any:
    """The test's clock, ticking from now; moto (in this process) reads the same clock.

    clock.shift(timedelta) moves past SQS visibility timeouts and claim leases at once.
    """
    time_machine.move_to(datetime.now(UTC), tick=True)
    return time_machine
