"""Claim ahead: a batch's next record is claimed while the last one's outcome is written.

Records still run one at a time and in order, and task_finished of one is sent before
task_started of the next; only the two DynamoDB requests overlap, so a batch of short tasks
waits on one request per task, not two.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from ..message import peek_result_id
from .attempt import Attempt

logger = logging.getLogger("sqs_tasks.handler")

# Each running batch has at most one claim out ahead, so the pool needs a thread for each batch
# that runs at once (threads are made on demand): one in a Lambda container, more in
# sqs_tasks_worker or `sqs-tasks local`, where claims queued behind a few threads would each
# hold a batch up.
POOL_THREADS = 32
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _claims_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="sqs-tasks-claim")
        return _pool


class ClaimAhead:
    """One batch's records, in the order they run, and the claims made ahead for them."""

    def __init__(self, records: Sequence[dict[str, Any]], context: Any, minimum: timedelta):
        handles = [record["receiptHandle"] for record in records]
        self._next = dict(zip(handles, records[1:], strict=False))
        self._ids = {record["receiptHandle"]: peek_result_id(record["body"]) for record in records}
        self._context = context
        self._minimum = minimum  # no claim ahead with less time left than a record needs
        self._claims: dict[str, Attempt] = {}

    def take(self, receipt_handle: str) -> Attempt | None:
        """The attempt whose claim was started ahead for this record, if one was."""
        return self._claims.pop(receipt_handle, None)

    def after(self, receipt_handle: str) -> Callable[[], None] | None:
        """What starts the claim of the record after this one; None for the last."""
        following = self._next.get(receipt_handle)
        if following is None:
            return None
        if self._ids[following["receiptHandle"]] == self._ids[receipt_handle]:
            # A second delivery of the running result: claimed ahead, it would find its twin
            # RUNNING and go back to SQS; claimed in its turn, it is dropped as a duplicate.
            return None

        def claim_next() -> None:
            remaining = timedelta(milliseconds=self._context.get_remaining_time_in_millis())
            if remaining < self._minimum:
                return  # Its own turn sends it again.
            try:
                self._claims[following["receiptHandle"]] = Attempt.start(
                    following["body"],
                    worker_id=self._context.aws_request_id,
                    remaining=remaining,
                    pool=_claims_pool(),
                )
            except Exception as e:
                # A forged body or an unknown backend: its own turn reports it.
                logger.debug("No claim ahead for the next record: %s", e)

        return claim_next
