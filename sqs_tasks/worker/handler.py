"""The worker: SQS batches in, partial batch responses out, one Django boot per container."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..message import peek_priority
from . import metrics
from .attempt import Attempt, NotStored, Redeliver, send_again
from .boot import batch_processor
from .claim_ahead import ClaimAhead
from .context import LambdaContext
from .deadline import Deadline
from .tracing import traced
from .unstored import hand_back

logger = logging.getLogger("sqs_tasks.handler")

# Below this much time left, a record is not started: it goes back to its queue as a fresh
# message, so the receives that dead-letter a message count only attempts that ran. In Lambda,
# the attempt still running then is ended TaskTimedOut, before Lambda kills the batch.
MIN_REMAINING = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class _Batch:
    """The batch handler() is running: its records' claims made ahead, and its deadline."""

    ahead: ClaimAhead
    deadline: Deadline | None  # None outside Lambda, where nothing kills a batch at its deadline


_batch: ContextVar[_Batch | None] = ContextVar("sqs_tasks_batch", default=None)


def record_handler(record: SQSRecord, lambda_context: Any) -> None:
    """Run one record; raising reports it in batchItemFailures for redelivery."""
    remaining = timedelta(milliseconds=lambda_context.get_remaining_time_in_millis())
    batch = _batch.get()
    ahead = batch.ahead if batch is not None else None
    deadline = batch.deadline if batch is not None else None
    attempt = ahead.take(record.receipt_handle) if ahead is not None else None
    try:
        if deadline is not None and not deadline.begin(record.receipt_handle):
            logger.info("Record %s not started, out of time: sent again", record.message_id)
            return
        if attempt is None and remaining < MIN_REMAINING:
            send_again(record.body)
            logger.info("Record %s not started, %s left: sent again", record.message_id, remaining)
            if isinstance(lambda_context, LambdaContext):
                lambda_context.record_sent_again()
            return
        if attempt is None:
            attempt = Attempt.start(
                record.body, worker_id=lambda_context.aws_request_id, remaining=remaining
            )
        # Claimed ahead, it runs with its lease counted from then.
        before_finish = ahead.after(record.receipt_handle) if ahead is not None else None
        header = record.attributes.aws_trace_header
        with _running(attempt, lambda_context, deadline), traced(attempt, header):
            attempt.run(before_finish)
    except NotStored as e:
        assert attempt is not None  # Raised by its claim.
        if not hand_back(record, attempt.envelope, attempt.backend, lambda_context):
            return  # Deleted: its write failed long ago.
        logger.info("Record %s left for redelivery: %s", record.message_id, e)
        raise
    except Redeliver as e:
        logger.info("Record %s left for redelivery: %s", record.message_id, e)
        raise
    except Exception:
        # Infrastructure trouble (DynamoDB, a forged body): SQS delivers it again.
        logger.exception("Record %s failed; left for redelivery", record.message_id)
        raise


@contextmanager
def _running(attempt: Attempt, context: Any, deadline: Deadline | None) -> Iterator[None]:
    """Make attempt known, while it runs, to the heartbeat outside Lambda or the deadline in it."""
    if isinstance(context, LambdaContext):
        context.running = attempt
    if deadline is not None:
        deadline.track(attempt)
    try:
        yield
    finally:
        if deadline is not None:
            deadline.track(None)
        if isinstance(context, LambdaContext):
            context.running = None


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the SQS event source mappings."""
    # Higher priority first within the batch; sorted() is stable, so FIFO within a priority.
    records = sorted(event.get("Records", []), key=lambda r: -peek_priority(r["body"]))
    event["Records"] = records
    with ExitStack() as stack:
        # Flushed last, once the batch and its deadline are done: one EMF line per queue.
        stack.enter_context(metrics.recording())
        deadline = None
        if getattr(context, "kills_at_deadline", True):  # Lambda's own context does.
            deadline = stack.enter_context(Deadline(records, context, MIN_REMAINING))
        token = _batch.set(_Batch(ClaimAhead(records, context, MIN_REMAINING), deadline))
        try:
            return process_partial_response(
                event=event,
                record_handler=record_handler,
                processor=batch_processor(),
                context=context,
            )
        finally:
            _batch.reset(token)
