"""The worker: SQS batches in, partial batch responses out, one Django boot per container."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambda_handler.boot import configure_logging, in_lambda, setup_django

setup_django()
if in_lambda():
    configure_logging()

from sqs_tasks.message import peek_priority  # noqa: E402  (needs Django set up)
from sqs_tasks.runner import Redeliver, run_message  # noqa: E402

# Below this much time left, a record is not started: it comes back in a later invocation.
MIN_REMAINING = timedelta(seconds=2)

# An all-failed batch is reported like any other, not raised: the records come back either way.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# A BatchProcessor holds the batch it is working on. Lambda runs one invocation at a time on
# the main thread; sqs_tasks_worker runs batches on several threads, each with its own.
_threads = threading.local()


def batch_processor() -> BatchProcessor:
    """The processor for this thread's batch: the module's on the main thread."""
    if threading.current_thread() is threading.main_thread():
        return processor
    mine: BatchProcessor | None = getattr(_threads, "processor", None)
    if mine is None:
        mine = _threads.processor = BatchProcessor(
            event_type=EventType.SQS, raise_on_entire_batch_failure=False
        )
    return mine


def record_handler(record: SQSRecord, lambda_context: Any) -> None:
    """Run one record; raising reports it in batchItemFailures."""
    remaining = timedelta(milliseconds=lambda_context.get_remaining_time_in_millis())
    if remaining < MIN_REMAINING:
        raise Redeliver(f"only {remaining} left in this invocation")
    run_message(record.body, worker_id=lambda_context.aws_request_id, remaining=remaining)


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the SQS event source mappings."""
    # Higher priority first within the batch; sorted() is stable, so FIFO within a priority.
    event["Records"] = sorted(event.get("Records", []), key=lambda r: -peek_priority(r["body"]))
    return process_partial_response(
        event=event, record_handler=record_handler, processor=batch_processor(), context=context
    )
