"""moto as AWS behaves: atomic writes and deletes, and no cost that grows with queue depth."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# moto checks a DynamoDB write's condition and applies it without a lock, so two concurrent
# conditional writes to one item can both succeed, which DynamoDB never allows.
_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_write_lock = threading.RLock()

# moto's Queue.attributes counts the queue's messages three ways (a scan of the queue each);
# SendMessage reads it only for ContentBasedDeduplication, once per message sent.
_QUEUE_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)
_sending = threading.local()


def _atomic(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _write_lock:
            return write(*args, **kwargs)

    return locked


def _serialised_delete(delete: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(delete)
    def deleting(self: Any, receipt_handle: str) -> None:
        lock = getattr(self, "_messages_lock", None)
        if lock is None:
            raise _changed(type(self), "_messages_lock", "Condition (an instance attribute)")
        with lock:
            delete(self, receipt_handle)

    return deleting


def _retained(self: Any, queue_name: str, message: Any) -> bool:
    # moto computes every queue attribute for each message it returns, only to read
    # MessageRetentionPeriod: same answer, one attribute read.
    from moto.core.utils import unix_time

    retention = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention + message.sent_timestamp / 1000 > unix_time())


def _uncounted_send(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    def sending(*args: Any, **kwargs: Any) -> Any:
        outer = getattr(_sending, "active", False)
        _sending.active = True
        try:
            return send(*args, **kwargs)
        finally:
            _sending.active = outer

    return sending


def _count_unless_sending(count: property) -> property:
    def counted(self: Any) -> int:
        return 0 if getattr(_sending, "active", False) else int(count.fget(self))  # type: ignore[misc]

    return property(counted)


class MotoChanged(RuntimeError):
    """A moto internal these fixes patch is gone or changed shape: update the fixes."""


def _changed(owner: type, name: str, kind: str) -> MotoChanged:
    from moto import __version__

    return MotoChanged(
        f"moto {__version__}: {owner.__module__}.{owner.__qualname__}.{name} is not the "
        f"{kind} sqs_tasks.testing.moto_fixes patches; update the fixes "
        "for this moto (or pin moto to a version they support)."
    )


def _require(owner: type, name: str, kind: type | None = None) -> Any:
    value = owner.__dict__.get(name)
    if value is None or (kind is not None and not isinstance(value, kind)):
        raise _changed(owner, name, (kind or object).__name__)
    return value


def planned_patches() -> list[tuple[Any, str, Any]]:
    """Every (owner, attribute, replacement) faithful_moto() applies; MotoChanged if one is gone."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.sqs.models import Queue, SQSBackend

    # getmoto/moto#7164: moto's backends are not thread-safe (documented since #7166), and
    # server mode serves requests on threads, so conditional writes are checked and applied
    # without a lock.
    patches: list[tuple[Any, str, Any]] = [
        (DynamoDBBackend, name, _atomic(_require(DynamoDBBackend, name)))
        for name in _DYNAMODB_WRITES
    ]
    # The same issue for SQS: Queue.delete_message rebuilds the queue's message list without
    # the queue's lock, so of two concurrent deletes one can put the other's message back,
    # and a deleted message is delivered again, which SQS never does.
    delete = _require(Queue, "delete_message")
    patches.append((Queue, "delete_message", _serialised_delete(delete)))
    # No upstream issue yet: moto computes every queue attribute (three scans of the queue)
    # for each message it returns and for each message sent, so cost grows with queue depth.
    _require(SQSBackend, "is_message_valid_based_on_retention_period")
    patches.append((SQSBackend, "is_message_valid_based_on_retention_period", _retained))
    send = _require(SQSBackend, "send_message")
    patches.append((SQSBackend, "send_message", _uncounted_send(send)))
    patches += [
        (Queue, name, _count_unless_sending(_require(Queue, name, property)))
        for name in _QUEUE_COUNTS
    ]
    return patches


@contextmanager
def faithful_moto() -> Iterator[None]:
    """moto as AWS behaves under concurrency, and fast with thousands of queued messages."""
    patches = planned_patches()
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    for owner, name, patched in patches:
        setattr(owner, name, patched)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


if __name__ == "__main__":
    # python -m sqs_tasks.testing.moto_fixes [moto_server options]: moto's server, fixed.
    import sys

    from moto.server import main

    with faithful_moto():
        main(sys.argv[1:])
