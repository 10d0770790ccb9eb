"""A message whose result is not stored (yet): enqueue writes the item while it sends the message.

Until the write lands a claim finds nothing, and runs nothing: the message is handed back for
1, 6, 36 and 216 seconds on its 1st to 4th receives, so with the stack's MaxReceiveCount (5) it
is older than STORE_BOUND by its 5th. Past STORE_BOUND its write has clearly failed (and that
enqueue() raised for its caller): the message is dropped, and why is logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from ..backend import SQSBackend
from ..message import Envelope
from ..producer import STORE_BOUND
from .context import LambdaContext

logger = logging.getLogger("sqs_tasks.runner")

FIRST_WAIT = 1  # seconds: a write racing its message lands within milliseconds
GROWTH = 6
MAX_WAIT = 900


def wait_seconds(receive_count: int) -> int:
    """How long a message whose item is missing is hidden after its receive_count-th receive."""
    return int(min(MAX_WAIT, FIRST_WAIT * GROWTH ** (max(receive_count, 1) - 1)))


def message_age(record: SQSRecord, now: datetime) -> timedelta:
    """How long ago the record's message was sent (zero if SQS did not say)."""
    sent = record.raw_event.get("attributes", {}).get("SentTimestamp")
    if sent is None:
        return timedelta(0)
    return now - datetime.fromtimestamp(int(sent) / 1000, UTC)


def hand_back(record: SQSRecord, envelope: Envelope, backend: SQSBackend, context: Any) -> bool:
    """Hide a record whose item is missing for a short wait: True; False once it is to go."""
    age = message_age(record, datetime.now(UTC))
    if age >= STORE_BOUND:
        logger.warning(
            "No result %s %s after its message was sent: its write failed and enqueue() raised; "
            "message dropped, nothing run",
            envelope.result_id,
            age,
        )
        return False
    attributes = record.raw_event.get("attributes", {})
    seconds = wait_seconds(int(attributes.get("ApproximateReceiveCount", "1")))
    try:
        backend.client("sqs").change_message_visibility(
            QueueUrl=backend.queue.url(envelope.queue_name),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )
    except (ClientError, BotoCoreError) as e:
        # It comes back after the queue's own visibility timeout instead: later, still safe.
        logger.warning(
            "Result %s: could not hide its message for %s s: %s", envelope.result_id, seconds, e
        )
        return True
    if isinstance(context, LambdaContext):
        context.record_hidden(record.message_id)
    logger.info("No result %s yet: message back in %s s", envelope.result_id, seconds)
    return True
