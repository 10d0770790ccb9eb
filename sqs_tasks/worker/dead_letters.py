"""The dead-letter handler: a result whose message was dead-lettered ends FAILED, truthfully.

A letter is deleted only once it is settled: its result FAILED by it, finished, or run by a
newer message. Any other letter is reported in batchItemFailures, so it stays in the
dead-letter queue (for the DLQ alarm, and for redrive) and comes back to be looked at again.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..aws.store import READY, RUNNING, TERMINAL
from ..exceptions import WorkerLost
from ..message import MessageError, decode
from ..producer import STORE_BOUND
from ..results import Item, parse_timestamp, task_error
from . import metrics
from .attempt import backend_of
from .boot import batch_processor
from .metrics import Metric

logger = logging.getLogger("sqs_tasks.dlq")
# A refused body can still carry a genuine signature (a tampered copy keeps the original's);
# signatures never go to the logs, so the value of "sig" is masked before a body is logged.
_SIGNATURE = re.compile(r'("sig"\s*:\s*)"(?:[^"\\]|\\.)*"')


class Kept(Exception):
    """The letter stays in the dead-letter queue: reported as a batch item failure."""


class LeaseLive(Kept):
    """The dead letter's result is running under a live lease: the letter comes back later."""


class Unverified(Kept):
    """The letter is not a message this function can verify (a key rotated on one side first)."""


def record_handler(record: SQSRecord) -> None:
    """Fail the result a dead letter stood for, unless it is settled or still has a way to run."""
    try:
        envelope = decode(record.body)
    except MessageError as e:
        # Kept, never deleted: under the sender's key it may be a genuine task to redrive.
        logger.error(
            "Dead letter %s cannot be verified (%s); kept in the dead-letter queue: %r",
            record.message_id,
            e,
            _SIGNATURE.sub(r'\1"<redacted>"', record.body),
        )
        raise Unverified(f"dead letter {record.message_id} cannot be verified: {e}") from None
    receives = record.attributes.approximate_receive_count
    lost = WorkerLost(
        f"The message for this result was dead-lettered after {receives} receives: its "
        "workers died, timed out or could not claim it before the queue's maxReceiveCount."
    )
    store = backend_of(envelope.backend).store
    sent = datetime.fromtimestamp(int(record.attributes.sent_timestamp) / 1000, UTC)
    failed = store.fail_abandoned(
        envelope.result_id,
        task_error(lost),
        queue_name=envelope.queue_name,
        now=datetime.now(UTC),
        dead_letter_sent=sent,
    )
    if failed:
        logger.error("Result %s FAILED: message dead-lettered", envelope.result_id)
        recorder = metrics.current()
        if recorder is not None:
            recorder.count(Metric.DEAD_LETTERED, envelope.queue_name, envelope.task_path)
        return
    item = store.get(envelope.result_id)
    if item is None and datetime.now(UTC) - sent < STORE_BOUND:
        # Dead-lettered before its write landed (a MaxReceiveCount under 5): kept until the
        # write has surely landed or failed, so a late item is failed here, not left READY.
        raise Kept(f"no result {envelope.result_id} yet: letter kept until {sent + STORE_BOUND}")
    why = _why_not_failed(item, sent)
    if why is not None:
        logger.info("Dead letter for result %s dropped: %s", envelope.result_id, why)
        return
    assert item is not None  # _why_not_failed() has a reason to drop an absent result.
    if item["status"]["S"] == RUNNING:
        # This letter may be the result's last message: kept until the lease says whether its
        # worker finishes (the letter is then dropped) or died (the result is then FAILED).
        lease = item.get("lease_until", {}).get("S")
        raise LeaseLive(f"result {envelope.result_id} is running under a lease until {lease}")
    # READY and due later (or put back meanwhile): its own message or schedule may still come.
    run_after = item.get("run_after", {}).get("S")
    raise Kept(f"result {envelope.result_id} is READY, due {run_after}: letter kept until then")


def _why_not_failed(item: Item | None, sent: datetime) -> str | None:
    """Why a letter fail_abandoned() refused can go; None if it must be kept."""
    if item is None:
        return "no such result"
    status = item["status"]["S"]
    if status in TERMINAL:
        return f"the result is {status}"
    last = item.get("last_attempted_at")
    if status == READY and last is not None and parse_timestamp(last["S"]) >= sent:
        return f"superseded by the retry of attempt {item['attempts']['N']}"
    return None


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the dead-letter queues' event source mappings."""
    with metrics.recording():
        return process_partial_response(
            event=event, record_handler=record_handler, processor=batch_processor(), context=context
        )
