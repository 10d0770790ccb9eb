"""The worker: SQS batches in, partial batch responses out, one Django boot per container."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, TypedDict

from lambda_handler.boot import configure_logging, in_lambda, setup_django

setup_django()
if in_lambda():
    configure_logging()

from sqs_tasks.message import peek_priority  # noqa: E402  (needs Django set up)
from sqs_tasks.runner import Redeliver, run_message  # noqa: E402

logger = logging.getLogger("sqs_tasks.handler")

# Below this much time left, a record is not started: it comes back in a later invocation.
MIN_REMAINING = timedelta(seconds=2)


class ItemFailure(TypedDict):
    """A record the event source mapping should deliver again."""

    itemIdentifier: str


class PartialItemFailureResponse(TypedDict):
    """The partial batch response (ReportBatchItemFailures) of an SQS event source mapping."""

    batchItemFailures: list[ItemFailure]


def record_handler(record: dict[str, Any], lambda_context: Any) -> None:
    """Run one record; raising reports it in batchItemFailures."""
    remaining = timedelta(milliseconds=lambda_context.get_remaining_time_in_millis())
    if remaining < MIN_REMAINING:
        raise Redeliver(f"only {remaining} left in this invocation")
    run_message(record["body"], worker_id=lambda_context.aws_request_id, remaining=remaining)


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the SQS event source mappings."""
    # Higher priority first within the batch; sorted() is stable, so FIFO within a priority.
    event["Records"] = sorted(event.get("Records", []), key=lambda r: -peek_priority(r["body"]))
    # A loop of our own rather than Powertools' BatchProcessor: importing Powertools took
    # ~20 ms of every cold start, and a loop holds no batch state, so threads share it safely.
    failures: list[ItemFailure] = []
    for record in event["Records"]:
        try:
            record_handler(record, context)
        except Redeliver as e:
            logger.info("Record %s left for redelivery: %s", record["messageId"], e)
            failures.append({"itemIdentifier": record["messageId"]})
        except Exception:
            # Infrastructure trouble (DynamoDB, a forged body): SQS delivers it again.
            logger.exception("Record %s failed; left for redelivery", record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
