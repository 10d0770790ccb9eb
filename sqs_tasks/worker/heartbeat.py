"""Keep a worker's batch hidden, and its running attempt leased, for as long as it runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .attempt import LEASE_MARGIN
from .context import LambdaContext
from .settle import change_visibility

logger = logging.getLogger("sqs_tasks.worker")

MIN_INTERVAL = 1.0  # seconds


class Heartbeat:
    """A third of a visibility timeout after each hiding, push a running batch's deadline on.

    Outside Lambda nothing ends a task at its batch's deadline. Without this, a task that
    outlived the visibility timeout would have its message delivered again, and once its lease
    lapsed another worker would run it a second time. A batch that waited for its slot beats
    before its first record starts, so no claim is leased for only what was left.
    """

    def __init__(
        self,
        sqs: Any,
        url: str,
        messages: Sequence[Any],
        context: LambdaContext,
        visibility: int,
    ) -> None:
        self._sqs = sqs
        self._url = url
        self._messages = messages
        self._context = context
        self._visibility = visibility
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqs-tasks-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self._until_due() == 0:
            self._beat_or_warn()  # Before the handler reads the time left, not after.
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def beat(self) -> None:
        """Hide the batch for another visibility timeout, and lease its running attempt with it."""
        # Not those the handler hid for a short wait of their own (their item not stored yet).
        hidden = self._context.hidden
        waiting = [m for m in self._messages if m["MessageId"] not in hidden]
        change_visibility(self._sqs, self._url, waiting, lambda m: self._visibility)
        self._context.extend(time.monotonic() + self._visibility)
        attempt = self._context.running
        if attempt is not None:
            attempt.extend_lease(
                datetime.now(UTC) + timedelta(seconds=self._visibility) + LEASE_MARGIN
            )

    def _until_due(self) -> float:
        """Seconds until a third of the visibility timeout has passed since the last hiding."""
        left: float = self._context.deadline - time.monotonic()
        return max(0.0, left - 2 * self._visibility / 3)

    def _beat_or_warn(self) -> None:
        try:
            self.beat()
        except (ClientError, BotoCoreError) as e:
            # The next beat tries again; until then the batch's old deadline stands.
            logger.warning("Heartbeat of batch %s failed: %s", self._context.aws_request_id, e)

    def _loop(self) -> None:
        # At least a second between beats, so a failing one is not retried in a tight loop.
        while not self._done.wait(max(MIN_INTERVAL, self._until_due())):
            self._beat_or_warn()
