"""Run one SQS message: claim its result, execute the Task as Django does, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import close_old_connections
from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask
from django.tasks.signals import task_finished, task_started
from django.utils.json import normalize_json

from ..aws.store import READY, RUNNING, TERMINAL, Claim, ResultStore
from ..exceptions import InvalidTaskPath, ResultTooLarge, TamperedArguments
from ..message import Envelope, args_digest, decode
from ..results import (
    MAX_ITEM_BYTES,
    Item,
    dumps,
    item_size,
    load_task,
    parse_timestamp,
    task_error,
    to_result,
)
from ..task import SQSTask

logger = logging.getLogger("sqs_tasks.runner")

# Lambda kills the invocation at its deadline; the lease outlives it by this much.
LEASE_MARGIN = timedelta(seconds=30)

current_task: ContextVar[tuple[str, str] | None] = ContextVar("sqs_tasks_task", default=None)


@dataclass(frozen=True, slots=True)
class Running:
    """The attempt a worker id is running: what its lease extensions are conditional on."""

    store: ResultStore  # the runner's: its client serves the heartbeat's thread too
    result_id: str
    attempts: dict[str, str]  # the claimed item's attempts value, as DynamoDB holds it


# By worker id, while the attempt runs: sqs_tasks_worker's heartbeat reads it from its thread.
_running: dict[str, Running] = {}


def running(worker_id: str) -> Running | None:
    """The attempt worker_id is running now, if any."""
    return _running.get(worker_id)


class Redeliver(Exception):
    """Leave the message for SQS to deliver again later."""


class TaskLogFilter(logging.Filter):
    """Adds task_id and task_path to every log record made while a task runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        running = current_task.get()
        if running is not None:
            record.task_id, record.task_path = running
        return True


@dataclass(frozen=True, slots=True)
class Claiming:
    """A message's claim, made or on its way: what run_message() goes on from."""

    envelope: Envelope
    backend: Any  # the SQSBackend of the thread that started the claim
    now: datetime
    claim: Future[Claim]


def start_claim(
    body: str, *, worker_id: str, remaining: timedelta | None, pool: Executor | None = None
) -> Claiming:
    """Decode body and claim its result, on pool if given (else now); MessageError if forged."""
    envelope = decode(body)
    backend: Any = task_backends[envelope.backend]
    now = datetime.now(UTC)
    lease = remaining + LEASE_MARGIN if remaining is not None else backend.config.lease
    store: ResultStore = backend.store
    if pool is not None:
        claim = pool.submit(store.claim, envelope.result_id, worker_id, now, now + lease)
        return Claiming(envelope, backend, now, claim)
    made: Future[Claim] = Future()
    made.set_result(store.claim(envelope.result_id, worker_id, now, now + lease))
    return Claiming(envelope, backend, now, made)


def run_message(
    body: str,
    *,
    worker_id: str,
    remaining: timedelta | None = None,
    claiming: Claiming | None = None,
    before_finish: Callable[[], None] | None = None,
) -> None:
    """Process one message body; return to delete it, raise to have it delivered again.

    claiming is the claim start_claim() made ahead of time; before_finish runs just before
    the outcome is written (the handler starts the next record's claim there).
    """
    if claiming is None:
        claiming = start_claim(body, worker_id=worker_id, remaining=remaining)
    envelope, backend, now = claiming.envelope, claiming.backend, claiming.now
    store = backend.store
    claim = claiming.claim.result()
    if not claim.claimed:
        _not_claimed(backend, envelope, claim.item, now)
        return
    item: Item | None = claim.item
    assert item is not None  # A claim returns the item it made (ALL_NEW).
    token = current_task.set((envelope.result_id, item["task_path"]["S"]))
    _running[worker_id] = Running(store, envelope.result_id, item["attempts"])
    try:
        try:
            if item["task_path"]["S"] != envelope.task_path:
                raise InvalidTaskPath(
                    f"message names {envelope.task_path!r} but the result is for "
                    f"{item['task_path']['S']!r}"
                )
            digest = envelope.args_digest
            if digest is not None and digest != args_digest(item["args"]["S"], item["kwargs"]["S"]):
                raise TamperedArguments(
                    "the result's arguments are not those its signed message was sent for "
                    "(changed in the table since): not run"
                )
            result = to_result(item, load_task(item["task_path"]["S"]))
        except InvalidTask as e:
            # Never run what is not a valid Task here (InvalidTaskPath: not a Task at all;
            # else e.g. a queue this worker's QUEUES no longer lists): say so in the result.
            logger.error("Refused result %s: %s", envelope.result_id, e)
            store.finish(item, now=datetime.now(UTC), error=task_error(e))
            return
        _execute(backend, envelope, result, item, before_finish)
    finally:
        _running.pop(worker_id, None)
        current_task.reset(token)


def send_again(body: str) -> None:
    """Put an unstarted message back on its queue as a fresh one, due now."""
    envelope = decode(body)  # Only a genuine message goes back.
    backend: Any = task_backends[envelope.backend]
    backend.queue.send(envelope.queue_name, body)


def _not_claimed(backend: Any, envelope: Envelope, item: Item | None, now: datetime) -> None:
    if item is None:
        logger.warning("No result %s: message dropped, nothing run", envelope.result_id)
        return
    status = item["status"]["S"]
    if status in TERMINAL:
        logger.info(
            "Result %s is already %s: duplicate delivery dropped", envelope.result_id, status
        )
        return
    if status == RUNNING:
        raise Redeliver(f"result {envelope.result_id} is running under a live lease")
    if status == READY and "run_after" in item:
        run_after = parse_timestamp(item["run_after"]["S"])
        if run_after > now:
            # Early: hand the wait to a fresh message (or schedule), so this one can go.
            backend.dispatch(envelope, run_after, now)
            logger.info("Result %s not due until %s: deferred again", envelope.result_id, run_after)
            return
    raise Redeliver(f"result {envelope.result_id} could not be claimed ({status})")


def _execute(
    backend: Any,
    envelope: Envelope,
    result: TaskResult[..., Any],
    item: Item,
    before_finish: Callable[[], None] | None,
) -> None:
    """Run the task like django.tasks' ImmediateBackend, recording the outcome first."""
    task = result.task
    close_old_connections()
    try:
        # Inside the try: a raising receiver ends this attempt truthfully, not RUNNING.
        task_started.send(sender=type(backend), task_result=result)
        if task.takes_context:
            raw = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            raw = task.call(*result.args, **result.kwargs)
    except KeyboardInterrupt:
        # If the user tried to terminate, let them; the lease lets another worker retry.
        raise
    except BaseException as e:
        if isinstance(task, SQSTask) and task.should_retry(e, result.attempts):
            _retry(backend, envelope, result, item, task_error(e))
        else:
            _finish(backend, result, item, before_finish, error=task_error(e))
        return
    else:
        try:
            return_value = normalize_json(raw)
            return_json = dumps(return_value)
            size = item_size(item) + len(return_json.encode()) + 64
            if size > MAX_ITEM_BYTES:
                raise ResultTooLarge(
                    f"return value makes the result {size:,} bytes; the limit is {MAX_ITEM_BYTES:,}"
                )
        except Exception as e:
            # The body did run: a return value that cannot be stored fails it, never retried.
            _finish(backend, result, item, before_finish, error=task_error(e))
            return
        object.__setattr__(result, "_return_value", return_value)
        _finish(backend, result, item, before_finish, return_json=return_json)
    finally:
        close_old_connections()


def _finish(
    backend: Any,
    result: TaskResult[..., Any],
    item: Item,
    before_finish: Callable[[], None] | None,
    *,
    return_json: str | None = None,
    error: TaskError | None = None,
) -> None:
    """Record the attempt's outcome, then tell task_finished's receivers as Django does."""
    finished = datetime.now(UTC)
    if before_finish is not None:
        before_finish()
    recorded = backend.store.finish(item, now=finished, return_json=return_json, error=error)
    object.__setattr__(result, "finished_at", finished)
    if error is None:
        object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    else:
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        result.errors.append(error)
    _warn_superseded(result, recorded)
    task_finished.send(type(backend), task_result=result)


def _retry(
    backend: Any, envelope: Envelope, result: TaskResult[..., Any], item: Item, error: TaskError
) -> None:
    """Schedule the next attempt, then put the result back to READY with this error kept."""
    task: SQSTask = result.task  # type: ignore[assignment]
    now = datetime.now(UTC)
    run_after = now + task.retry_delay(result.attempts)
    # Message first: if the update then fails, the lease lapses and the message still runs it.
    backend.dispatch(envelope, run_after, now)
    recorded = backend.store.retry(item, now=now, error=error, run_after=run_after)
    object.__setattr__(result, "status", TaskResultStatus.READY)
    result.errors.append(error)
    _warn_superseded(result, recorded)
    logger.warning(
        "Result %s attempt %s of %s failed: retrying after %s",
        result.id,
        result.attempts,
        task.max_attempts,
        run_after,
    )


def _warn_superseded(result: TaskResult[..., Any], recorded: bool) -> None:
    if not recorded:
        logger.warning(
            "Result %s attempt %s outlived its lease; a newer attempt owns the result",
            result.id,
            result.attempts,
        )
