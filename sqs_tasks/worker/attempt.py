"""One attempt at one SQS message: claim its result, execute the Task as Django's
ImmediateBackend does, and record the outcome (finish, retry or refuse)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db import close_old_connections
from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils.json import normalize_json

from ..aws.store import READY, RUNNING, TERMINAL, Claim
from ..backend import SQSBackend
from ..exceptions import InvalidTaskPath, ResultTooLarge, TamperedArguments, TaskTimedOut
from ..message import Envelope, MessageError, args_digest, decode
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
from .firing import claim_firing
from .metrics import Metric, current

logger = logging.getLogger("sqs_tasks.runner")

# Lambda kills the invocation at its deadline; the lease outlives it by this much.
LEASE_MARGIN = timedelta(seconds=30)

_OUTCOMES = {
    Metric.SUCCEEDED: "succeeded",
    Metric.FAILED: "failed",
    Metric.RETRIED: "retried",
    Metric.DUPLICATES_DROPPED: "duplicate",
}

current_task: ContextVar[tuple[str, str] | None] = ContextVar("sqs_tasks_task", default=None)


class Redeliver(Exception):
    """Leave the message for SQS to deliver again later."""


class NotStored(Redeliver):
    """The message's result is not in the table: its write is late, or failed."""


class TaskLogFilter(logging.Filter):
    """Adds task_id and task_path to every log record made while a task runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        running = current_task.get()
        if running is not None:
            record.task_id, record.task_path = running
        return True


def backend_of(alias: str) -> SQSBackend:
    """The SQSBackend a message names."""
    backend = task_backends[alias]
    if not isinstance(backend, SQSBackend):
        raise MessageError(f"backend {alias!r} is not an SQSBackend")
    return backend


def send_again(body: str) -> None:
    """Put an unstarted message back on its queue as a fresh one, due now."""
    envelope = decode(body)  # Only a genuine message goes back.
    backend_of(envelope.backend).queue.send(envelope.queue_name, body)


class Attempt:
    """One delivery of one message, from its claim to the outcome it records.

    run() is the whole attempt; the steps are its methods. The claim may be started ahead of
    time on a pool (start(pool=...)); run() waits for it.
    """

    def __init__(
        self,
        envelope: Envelope,
        backend: SQSBackend,
        worker_id: str,
        now: datetime,
        claim: Future[Claim],
    ) -> None:
        self.envelope = envelope
        self.backend = backend
        self.worker_id = worker_id
        self.now = now
        self._claim = claim
        # The claimed item while the attempt holds it: what lease extensions are fenced on.
        self._held: Item | None = None
        self._before_finish: Callable[[], None] | None = None
        # What time_out() (another thread) and execute() agree on under the lock: the running
        # body's claim and result, and the error it timed out with, if it did.
        self._lock = threading.Lock()
        self._running: tuple[Item, TaskResult[..., Any]] | None = None
        self._timed_out: TaskTimedOut | None = None
        # The batch's metrics (None outside a handler), and when the task body started.
        self._metrics = current()
        self._started: datetime | None = None
        # How the attempt ended, for its trace: succeeded, failed, retried or duplicate.
        self.outcome: str | None = None

    @classmethod
    def start(
        cls,
        body: str,
        *,
        worker_id: str,
        remaining: timedelta | None,
        pool: Executor | None = None,
    ) -> Attempt:
        """Decode body and claim its result, on pool if given (else now); MessageError if forged."""
        envelope = decode(body)
        backend = backend_of(envelope.backend)
        now = datetime.now(UTC)
        lease = remaining + LEASE_MARGIN if remaining is not None else backend.config.lease
        claim: Callable[[], Claim]
        if envelope.periodic is not None:
            claim = partial(claim_firing, backend, envelope, worker_id, now, now + lease)
        else:
            claim = partial(backend.store.claim, envelope.result_id, worker_id, now, now + lease)
        if pool is not None:
            return cls(envelope, backend, worker_id, now, pool.submit(claim))
        made: Future[Claim] = Future()
        made.set_result(claim())
        return cls(envelope, backend, worker_id, now, made)

    def run(self, before_finish: Callable[[], None] | None = None) -> None:
        """Process the message; return to delete it, raise to have it delivered again.

        before_finish runs just before the outcome is written (the handler starts the next
        record's claim there).
        """
        self._before_finish = before_finish
        item = self.claim()
        if item is None:
            return
        token = current_task.set((self.envelope.result_id, item["task_path"]["S"]))
        self._held = item
        try:
            try:
                result = self.rebuild(item)
            except Exception as e:
                # Never run what cannot be rebuilt as a valid Task here, nor redeliver it: the
                # same item fails the same way on every receive (RecursionError included).
                self.refuse(item, e)
                return
            self.execute(item, result)
        finally:
            self._held = None
            current_task.reset(token)

    def claim(self) -> Item | None:
        """The claimed item; None when the message is to be dropped, Redeliver to keep it."""
        claim = self._claim.result()
        if claim.claimed:
            assert claim.item is not None  # A claim returns the item it made (ALL_NEW).
            return claim.item
        self._not_claimed(claim.item)
        return None

    def extend_lease(self, until: datetime) -> bool:
        """Push the lease of the claim this attempt holds to until; False if it holds none."""
        item = self._held
        if item is None:
            return False
        return self.backend.store.extend_lease(item["id"]["S"], item["attempts"], until)

    def rebuild(self, item: Item) -> TaskResult[..., Any]:
        """The TaskResult the claimed item describes, its Task checked against the message."""
        if item["task_path"]["S"] != self.envelope.task_path:
            raise InvalidTaskPath(
                f"message names {self.envelope.task_path!r} but the result is for "
                f"{item['task_path']['S']!r}"
            )
        digest = self.envelope.args_digest
        if digest is not None and digest != args_digest(item["args"]["S"], item["kwargs"]["S"]):
            raise TamperedArguments(
                "the result's arguments are not those its signed message was sent for "
                "(changed in the table since): not run"
            )
        return to_result(item, load_task(item["task_path"]["S"]))

    def refuse(self, item: Item, error: Exception) -> None:
        """End the claimed result FAILED with error, its task never run."""
        # InvalidTaskPath: not a Task at all; InvalidTask: e.g. a queue this worker no longer
        # lists; else arguments that cannot be rebuilt (nested too deep to normalise).
        logger.error("Refused result %s: %s", self.envelope.result_id, error)
        self._count(Metric.FAILED)
        self.backend.store.finish(item, now=datetime.now(UTC), error=task_error(error))

    def time_out(self, error: TaskTimedOut) -> None:
        """From another thread, before the invocation is killed: end this attempt with error.

        A running body's claim is failed (or retried, if the task retries on error) now; a body
        not started yet never starts; a body that returns after all records nothing.
        """
        with self._lock:
            self._timed_out = error
            running, self._running = self._running, None
        if running is not None:
            self._end_timed_out(*running, error)

    def execute(self, item: Item, result: TaskResult[..., Any]) -> None:
        """Run the task like django.tasks' ImmediateBackend, recording the outcome first."""
        with self._lock:
            timed_out = self._timed_out
            self._running = (item, result) if timed_out is None else None
        if timed_out is not None:
            self._end_timed_out(item, result, timed_out)
            return
        task = result.task
        self._note_start(item)
        close_old_connections()
        try:
            # Inside the try: a raising receiver ends this attempt truthfully, not RUNNING.
            task_started.send(sender=type(self.backend), task_result=result)
            if task.takes_context:
                raw = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
            else:
                raw = task.call(*result.args, **result.kwargs)
        except KeyboardInterrupt:
            # If the user tried to terminate, let them; the lease lets another worker retry.
            raise
        except BaseException as e:
            if not self._body_returned():
                return
            if isinstance(task, SQSTask) and task.should_retry(e, result.attempts):
                self.retry(item, result, task_error(e))
            else:
                self.finish(item, result, error=task_error(e))
            return
        else:
            if not self._body_returned():
                return
            try:
                return_value = normalize_json(raw)
                return_json = dumps(return_value)
                size = item_size(item) + len(return_json.encode()) + 64
                if size > MAX_ITEM_BYTES:
                    raise ResultTooLarge(
                        f"return value makes the result {size:,} bytes; "
                        f"the limit is {MAX_ITEM_BYTES:,}"
                    )
            except Exception as e:
                # The body did run: a return value that cannot be stored fails it, never retried.
                self.finish(item, result, error=task_error(e))
                return
            object.__setattr__(result, "_return_value", return_value)
            self.finish(item, result, return_json=return_json)
        finally:
            close_old_connections()

    def finish(
        self,
        item: Item,
        result: TaskResult[..., Any],
        *,
        return_json: str | None = None,
        error: TaskError | None = None,
    ) -> None:
        """Record the attempt's outcome, then tell task_finished's receivers as Django does."""
        finished = datetime.now(UTC)
        if self._before_finish is not None:
            self._before_finish()
        recorded = self.backend.store.finish(
            item, now=finished, return_json=return_json, error=error
        )
        object.__setattr__(result, "finished_at", finished)
        self._count(Metric.SUCCEEDED if error is None else Metric.FAILED, finished)
        if error is None:
            object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
        else:
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            result.errors.append(error)
        _warn_superseded(result, recorded)
        task_finished.send(type(self.backend), task_result=result)

    def retry(self, item: Item, result: TaskResult[..., Any], error: TaskError) -> None:
        """Schedule the next attempt, then put the result back to READY with this error kept."""
        task: SQSTask = result.task  # type: ignore[assignment]
        now = datetime.now(UTC)
        run_after = now + task.retry_delay(result.attempts)
        # Message first: if the update then fails, the lease lapses and the message still runs it.
        self.backend.dispatch(self.envelope, run_after, now)
        recorded = self.backend.store.retry(item, now=now, error=error, run_after=run_after)
        self._count(Metric.RETRIED, now)
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

    def _body_returned(self) -> bool:
        """Whether this thread records the outcome: False if time_out() took the attempt over."""
        with self._lock:
            running, self._running = self._running, None
        if running is None:
            logger.warning("Result %s returned after it timed out", self.envelope.result_id)
        return running is not None

    def _end_timed_out(self, item: Item, result: TaskResult[..., Any], error: TaskTimedOut) -> None:
        task = result.task
        logger.error("Result %s attempt %s: %s", result.id, result.attempts, error)
        if isinstance(task, SQSTask) and task.should_retry(error, result.attempts):
            self.retry(item, result, task_error(error))
            return
        finished = datetime.now(UTC)
        recorded = self.backend.store.finish(item, now=finished, error=task_error(error))
        self._count(Metric.FAILED, finished)
        _warn_superseded(result, recorded)

    def _note_start(self, item: Item) -> None:
        """Count the start, and how long the task waited after it was due."""
        self._started = datetime.now(UTC)
        if self._metrics is None:
            return
        self._count(Metric.STARTED)
        # Due at the later of enqueue and run_after; a periodic firing when it was scheduled.
        # (A firing's result is made as it is claimed: its enqueue is the scheduled time.)
        made = "enqueued_at" if self.envelope.scheduled is None else None
        times = [parse_timestamp(item[k]["S"]) for k in (made, "run_after") if k and k in item]
        if self.envelope.scheduled is not None:
            times.append(self.envelope.scheduled)
        due = max(times, default=self._started)
        queue, task_path = self.envelope.queue_name, self.envelope.task_path
        self._metrics.timing(Metric.QUEUE_DELAY, queue, task_path, due, self._started)

    def _count(self, metric: Metric, ended: datetime | None = None) -> None:
        """Count metric for this task; with ended, also the body's run time up to then."""
        self.outcome = _OUTCOMES.get(metric, self.outcome)
        if self._metrics is None:
            return
        queue, task_path = self.envelope.queue_name, self.envelope.task_path
        self._metrics.count(metric, queue, task_path)
        if ended is not None and self._started is not None:
            self._metrics.timing(Metric.RUN_TIME, queue, task_path, self._started, ended)

    def _not_claimed(self, item: Item | None) -> None:
        result_id = self.envelope.result_id
        if item is None and self.envelope.periodic is not None:
            logger.warning("No result %s: message dropped, nothing run", result_id)
            return
        if item is None:
            # enqueue() writes the item while it sends the message: it may land any moment.
            raise NotStored(f"result {result_id} is not stored (yet)")
        status = item["status"]["S"]
        if status in TERMINAL:
            logger.info("Result %s is already %s: duplicate delivery dropped", result_id, status)
            self._count(Metric.DUPLICATES_DROPPED)
            return
        if status == RUNNING:
            raise Redeliver(f"result {result_id} is running under a live lease")
        if status == READY and "run_after" in item:
            run_after = parse_timestamp(item["run_after"]["S"])
            if run_after > self.now:
                # Early: hand the wait to a fresh message (or schedule), so this one can go.
                self.backend.dispatch(self.envelope, run_after, self.now)
                logger.info("Result %s not due until %s: deferred again", result_id, run_after)
                return
        raise Redeliver(f"result {result_id} could not be claimed ({status})")


def _warn_superseded(result: TaskResult[..., Any], recorded: bool) -> None:
    if not recorded:
        logger.warning(
            "Result %s attempt %s outlived its lease; a newer attempt owns the result",
            result.id,
            result.attempts,
        )
