"""The worker: SQS batches in, partial batch responses out, one Django boot per container."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..message import peek_priority
from .attempt import Attempt, Redeliver, send_again
from .boot import batch_processor
from .claim_ahead import ClaimAhead
from .context import LambdaContext

logger = logging.getLogger("sqs_tasks.handler")

# Below this much time left, a record is not started: it goes back to its queue as a fresh
# message, so the receives that dead-letter a message count only attempts that ran.
MIN_REMAINING = timedelta(seconds=2)


# The batch handler() is running, for its records' claims made ahead.
_batch: ContextVar[ClaimAhead | None] = ContextVar("sqs_tasks_batch", default=None)


def record_handler(record: SQSRecord, lambda_context: Any) -> None:
    """Run one record; raising reports it in batchItemFailures for redelivery."""
    remaining = timedelta(milliseconds=lambda_context.get_remaining_time_in_millis())
    ahead = _batch.get()
    attempt = ahead.take(record.receipt_handle) if ahead is not None else None
    try:
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
        _run(attempt, lambda_context, before_finish)
    except Redeliver as e:
        logger.info("Record %s left for redelivery: %s", record.message_id, e)
        raise
    except Exception:
        # Infrastructure trouble (DynamoDB, a forged body): SQS delivers it again.
        logger.exception("Record %s failed; left for redelivery", record.message_id)
        raise


def _run(attempt: Attempt, context: Any, before_finish: Callable[[], None] | None) -> None:
    """Run attempt, known to the heartbeat of a context outside Lambda while it runs."""
    if not isinstance(context, LambdaContext):
        attempt.run(before_finish)
        return
    context.running = attempt
    try:
        attempt.run(before_finish)
    finally:
        context.running = None


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the SQS event source mappings."""
    # Higher priority first within the batch; sorted() is stable, so FIFO within a priority.
    event["Records"] = sorted(event.get("Records", []), key=lambda r: -peek_priority(r["body"]))
    token = _batch.set(ClaimAhead(event["Records"], context, MIN_REMAINING))
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=batch_processor(), context=context
        )
    finally:
        _batch.reset(token)
