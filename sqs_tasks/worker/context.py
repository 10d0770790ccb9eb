"""The Lambda context of an invocation made outside Lambda: sqs_tasks_worker, drain(), emulators."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .attempt import Attempt

# What an invocation with no deadline has left, as its context reports it (drain()).
UNTIMED_REMAINING_MS = 60_000


class LambdaContext:
    """The parts of a Lambda context the handlers read.

    With a deadline (a time.monotonic()) the remaining time counts down to it; without one it
    stays UNTIMED_REMAINING_MS. Once stopping is set it is 0, so the handler starts no further
    record: it sends each back to its queue as a fresh message, nothing claimed.
    """

    function_version = "$LATEST"
    # Lambda kills an invocation at its deadline; outside it nothing does (the heartbeat moves
    # the deadline on, and a stopping worker lets its running task finish).
    kills_at_deadline = False

    def __init__(
        self,
        request_id: str | None = None,
        deadline: float | None = None,
        stopping: threading.Event | None = None,
        *,
        function_name: str = "sqs-tasks-worker",
        function_arn: str | None = None,
        memory_limit_in_mb: int = 0,
    ) -> None:
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.function_name = function_name
        self.invoked_function_arn = (
            function_arn or f"arn:aws:lambda:local:000000000000:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = deadline
        self._stopping = stopping
        self.sent_again = 0  # records the handler put back on the queue, never started
        self.hidden: set[str] = set()  # message ids the handler hid itself (their item missing)
        # The attempt the handler is running: the heartbeat extends its lease from its thread.
        self.running: Attempt | None = None

    def record_sent_again(self) -> None:
        """Called by the handler for each record it sent back to its queue unstarted."""
        self.sent_again += 1

    def record_hidden(self, message_id: str) -> None:
        """Called by the handler for a failed record it already hid for a wait of its own."""
        self.hidden.add(message_id)

    def extend(self, deadline: float) -> None:
        """Move the deadline later: the batch's messages were hidden for longer."""
        self._deadline = deadline if self._deadline is None else max(self._deadline, deadline)

    @property
    def deadline(self) -> float:
        """time.monotonic() at which the invocation's time runs out."""
        if self._deadline is None:
            return time.monotonic() + UNTIMED_REMAINING_MS / 1000
        return self._deadline

    def get_remaining_time_in_millis(self) -> int:
        """What is left before the deadline; 0 once stopping."""
        if self._stopping is not None and self._stopping.is_set():
            return 0
        if self._deadline is None:
            return UNTIMED_REMAINING_MS
        return max(0, int((self._deadline - time.monotonic()) * 1000))
