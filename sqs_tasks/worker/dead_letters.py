"""The dead-letter handler: a result whose message was dead-lettered ends FAILED, truthfully."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from django.tasks import task_backends

from ..aws.store import RUNNING
from ..exceptions import WorkerLost
from ..message import MessageError, decode
from ..results import task_error
from .boot import batch_processor

logger = logging.getLogger("sqs_tasks.dlq")
# A refused body can still carry a genuine signature (a tampered copy keeps the original's);
# signatures never go to the logs, so the value of "sig" is masked before a body is logged.
_SIGNATURE = re.compile(r'("sig"\s*:\s*)"(?:[^"\\]|\\.)*"')


def record_handler(record: SQSRecord) -> None:
    """Fail the result a dead letter stood for, unless it finished or is still running."""
    try:
        envelope = decode(record.body)
    except MessageError as e:
        # Nothing to settle: the body is logged (signature masked), so deleting it loses nothing.
        logger.error(
            "Dead letter %s is not a task message (%s): %r",
            record.message_id,
            e,
            _SIGNATURE.sub(r'\1"<redacted>"', record.body),
        )
        return
    receives = record.attributes.approximate_receive_count
    lost = WorkerLost(
        f"The message for this result was dead-lettered after {receives} receives: its "
        "workers died, timed out or could not claim it before the queue's maxReceiveCount."
    )
    error = task_error(lost)
    store: Any = task_backends[envelope.backend].store  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    if store.fail_abandoned(envelope.result_id, error, queue_name=envelope.queue_name, now=now):
        logger.error("Result %s FAILED: message dead-lettered", envelope.result_id)
        return
    item = store.get(envelope.result_id)
    lease = item.get("lease_until") if item is not None else None
    if item is not None and item["status"]["S"] == RUNNING and lease is not None:
        # This letter is the result's last message: kept until the lease says whether its
        # worker finishes (the letter is then dropped) or died (the result is then FAILED).
        raise LeaseLive(f"result {envelope.result_id} is running under a lease until {lease['S']}")
    logger.info("Dead letter for result %s: finished or waiting, left alone", envelope.result_id)


class LeaseLive(Exception):
    """The dead letter's result is running under a live lease: the letter comes back later."""


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the dead-letter queues' event source mappings."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=batch_processor(), context=context
    )
