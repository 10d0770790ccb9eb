"""Bulk enqueue and read: BatchWriteItem 25, SendMessageBatch 10, BatchGetItem 100 at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.tasks import Task, TaskResult
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from . import offload
from .arguments import check_arguments
from .aws.store import ResultStore, check_id
from .exceptions import BulkEnqueueError
from .message import Envelope, delay_seconds
from .producer import Producer
from .results import Item, aware_run_after, ready_result, to_result

logger = logging.getLogger("sqs_tasks.bulk")

# Lazily evaluated: django.tasks.Task is generic only to type checkers.
type BulkEntry = tuple[Task[..., Any], Sequence[Any], Mapping[str, Any]]
type Validate = Callable[[Task[..., Any]], None]
# A message to send: (result id, signed body, run_after).
type _Message = tuple[str, str, datetime | None]
# How many failed entries an exception message spells out; the rest are in .failures.
LISTED_FAILURES = 10
# SendMessageBatch's limit.
SEND_BATCH = 10


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    result: TaskResult[..., Any]
    item: Item
    envelope: Envelope


def enqueue_many(
    producer: Producer,
    entries: Iterable[BulkEntry],
    validate_task: Validate,
    *,
    sender: type,
    announce: Callable[[TaskResult[..., Any]], None] | None = None,
) -> list[TaskResult[..., Any]]:
    """Enqueue (task, args, kwargs) entries in input order; raise BulkEnqueueError if any fail.

    validate_task is the backend's; each result enqueued is sent task_enqueued by sender, as
    enqueue() sends it, or given to announce instead.
    """
    now = datetime.now(UTC)
    # Everything is checked before the first write, so a bad entry leaves no trace.
    prepared = [_prepare(producer, validate_task, i, entry, now) for i, entry in enumerate(entries)]
    failures: dict[int, str] = {}
    abandon: list[_Prepared] = []
    # Each write's messages go while the next items are written: no message before its item,
    # and a write that fails sends nothing. A schedule is made after all the writes.
    messages: dict[str, tuple[str, _Message]] = {}
    for p in prepared:
        if not producer.needs_schedule(p.result.task.run_after, now):
            body = p.envelope.encode()  # Here: signing keys are this thread's backend's.
            messages[p.result.id] = (
                p.result.task.queue_name,
                (p.result.id, body, p.result.task.run_after),
            )
    sends = _Sends(producer, messages)
    try:
        unwritten = producer.store.put_many([p.item for p in prepared], written=sends.written)
    except Exception as e:
        went = len(sends.handed) - len(sends.finish())
        if went:
            e.add_note(f"{went} of the {len(prepared)} tasks were stored and sent before it.")
        raise
    if len(unwritten) < len(prepared):
        producer.table_found = True
    unsent = sends.finish()
    for p in prepared:
        missing = unwritten.get(p.result.id)
        if missing is not None:
            failures[p.index] = f"not stored: {missing.reason}"
            if missing.uncertain:
                abandon.append(p)  # It may have landed after all: it must not stay READY.
        elif p.result.id in unsent:
            failures[p.index] = f"not sent: {unsent[p.result.id]}"
            abandon.append(p)
        elif p.result.id not in messages:
            _dispatch_one(producer, p, failures, abandon)
    for p in abandon:
        _abandon(producer, p, failures)
    for p in prepared:
        if p.index not in failures:
            if announce is None:
                task_enqueued.send(sender, task_result=p.result)
            else:
                announce(p.result)
    if failures:
        raise _error(prepared, failures)
    return [p.result for p in prepared]


def _prepare(
    producer: Producer, validate_task: Validate, index: int, entry: Any, now: datetime
) -> _Prepared:
    """Validate one entry as enqueue() does and build its item and envelope, writing nothing."""
    where = f"enqueue_many() entries[{index}]"
    if not isinstance(entry, tuple | list) or len(entry) != 3:
        raise TypeError(f"{where} is not a (task, args, kwargs) triple: nothing was enqueued")
    task, args, kwargs = entry
    try:
        if not isinstance(task, Task):
            raise TypeError(f"expected a Task, got {type(task).__name__}")
        if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping):
            raise TypeError("args must be a list or tuple and kwargs a mapping")
        if task.backend != producer.alias:
            raise InvalidTask(
                f"Task {task.module_path} uses backend {task.backend!r}, not {producer.alias!r}"
            )
        validate_task(task)
        check_arguments(task.module_path, args, kwargs)
        task = aware_run_after(task)
        # As given, as enqueue() takes them: building the result normalises them.
        result: TaskResult[..., Any] = ready_result(
            task, list(args), dict(kwargs), backend=producer.alias, now=now
        )
        item = producer.new_item(result, now)
        producer.queue.url(task.queue_name)  # An unmapped queue fails here, before any write.
        producer.signing_ready()
    except Exception as e:
        e.add_note(f"{where}: nothing was enqueued")
        raise
    return _Prepared(index, result, item, Envelope.of(result))


class _Sends:
    """The messages of written items, sent 10 a SendMessageBatch while the rest are written."""

    def __init__(self, producer: Producer, messages: dict[str, tuple[str, _Message]]) -> None:
        self._producer = producer
        self._messages = messages  # by result id: its queue and message
        self._waiting: dict[str, list[_Message]] = {}
        self._sending: list[tuple[list[str], Future[dict[str, str]]]] = []
        self.handed: set[str] = set()  # result ids whose messages were handed to a send

    def written(self, result_ids: list[str]) -> None:
        """Items now stored: send their messages, a batch as soon as one is full."""
        for result_id in result_ids:
            found = self._messages.get(result_id)
            if found is None:
                continue  # Scheduled after the writes.
            queue_name, message = found
            waiting = self._waiting.setdefault(queue_name, [])
            waiting.append(message)
            if len(waiting) == SEND_BATCH:
                self._send(queue_name, self._waiting.pop(queue_name))

    def finish(self) -> dict[str, str]:
        """Send what is left and wait for every send; why each message not sent was not."""
        for queue_name, waiting in self._waiting.items():
            self._send(queue_name, waiting)
        self._waiting.clear()
        unsent: dict[str, str] = {}
        for keys, sending in self._sending:
            error = sending.exception()
            if error is None:
                unsent.update(sending.result())
            else:
                logger.error("enqueue_many: sending failed: %s", error)
                unsent.update(dict.fromkeys(keys, f"sending failed: {error}"))
        self._sending.clear()
        return unsent

    def _send(self, queue_name: str, group: list[_Message]) -> None:
        keys = [key for key, _, _ in group]
        self.handed.update(keys)
        producer = self._producer
        sending = offload.start(
            producer.alias, producer.width, _send_group, producer, queue_name, group
        )
        self._sending.append((keys, sending))


def _send_group(producer: Producer, queue_name: str, group: list[_Message]) -> dict[str, str]:
    """Send one queue's messages; returns why each one not sent was not, by result id."""
    sent_at = datetime.now(UTC)  # Delays count from the send, so nothing arrives early.
    return producer.queue.send_many(
        queue_name, [(key, body, delay_seconds(due, sent_at)) for key, body, due in group]
    )


def _dispatch_one(
    producer: Producer, p: _Prepared, failures: dict[int, str], abandon: list[_Prepared]
) -> None:
    try:
        producer.dispatch(p.envelope, p.result.task.run_after, datetime.now(UTC))
    except Exception as e:
        failures[p.index] = f"not scheduled: {e}"
        abandon.append(p)


def _abandon(producer: Producer, p: _Prepared, failures: dict[int, str]) -> None:
    """Mark a stored result nobody will run FAILED, as enqueue() does when its send fails."""
    why = f"enqueue_many() could not enqueue this task: {failures[p.index]}"
    failures[p.index] += f" ({producer.abandon(p.result, why)})"


def _error(prepared: list[_Prepared], failures: dict[int, str]) -> BulkEnqueueError:
    listed = [
        f"entries[{i}] {prepared[i].result.task.module_path} result {prepared[i].result.id}: {why}"
        for i, why in sorted(failures.items())[:LISTED_FAILURES]
    ]
    more = len(failures) - len(listed)
    logger.error("enqueue_many: %s of %s entries failed", len(failures), len(prepared))
    return BulkEnqueueError(
        f"enqueue_many(): {len(failures)} of {len(prepared)} entries failed "
        f"({len(prepared) - len(failures)} enqueued, in .results):\n"
        + "\n".join(listed)
        + (f"\n... and {more} more (see .failures)" if more else ""),
        results=[None if p.index in failures else p.result for p in prepared],
        failures=dict(sorted(failures.items())),
    )


def get_results(store: ResultStore, result_ids: Iterable[str]) -> list[TaskResult[..., Any]]:
    """Read results in input order; raise TaskResultDoesNotExist naming those that are absent."""
    if isinstance(result_ids, str):
        raise TypeError("get_results() takes an iterable of result ids, not one id.")
    ids = list(result_ids)
    storable = [result_id for result_id in ids if check_id(result_id)]  # All checked first.
    items = store.get_many(storable)
    unique = list(dict.fromkeys(ids))
    missing = [result_id for result_id in unique if result_id not in items]
    if missing:
        shown = ", ".join(missing[:LISTED_FAILURES])
        more = ", ..." if len(missing) > LISTED_FAILURES else ""
        raise TaskResultDoesNotExist(
            f"{len(missing)} of {len(unique)} results do not exist: {shown}{more}"
        )
    return [to_result(items[result_id]) for result_id in ids]
