"""A Lambda invocation's deadline: shortly before Lambda kills a batch, its running attempt is
ended truthfully (TaskTimedOut) and its unstarted records go back as fresh messages.

Killed with its batch, a hanging task would leave every record of the batch to come back
with one more receive, so batch-mates that never started could be dead-lettered unrun, and
the hanging task would run again on each delivery.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ..backend import SQSBackend
from ..exceptions import TaskTimedOut
from ..message import MessageError, decode
from .attempt import Attempt, backend_of

logger = logging.getLogger("sqs_tasks.handler")


class Deadline:
    """Watches one batch's time left from a thread of its own, while the batch runs."""

    def __init__(self, records: Sequence[dict[str, Any]], context: Any, margin: timedelta) -> None:
        self._context = context
        self._margin = margin
        self._unstarted = {record["receiptHandle"]: record["body"] for record in records}
        self._lock = threading.Lock()
        self._running: Attempt | None = None
        self._expired = False
        self._sent_back: set[str] = set()
        # The handler thread's backends, by alias: their clients serve this thread too.
        self._backends: dict[str, SQSBackend] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sqs-tasks-deadline", daemon=True)

    def __enter__(self) -> Deadline:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def begin(self, receipt_handle: str) -> bool:
        """Whether the record may start: False once it went back as a fresh message."""
        with self._lock:
            self._unstarted.pop(receipt_handle, None)
            return receipt_handle not in self._sent_back

    def track(self, attempt: Attempt | None) -> None:
        """The attempt the batch is running now (None between records)."""
        with self._lock:
            self._running = attempt
            expired = self._expired
            if attempt is not None:
                self._backends.setdefault(attempt.envelope.backend, attempt.backend)
        if attempt is not None and expired:
            attempt.time_out(self._error())

    def _error(self) -> TaskTimedOut:
        return TaskTimedOut(
            f"The task was still running {self._margin.total_seconds():g} s before its Lambda "
            "invocation's timeout: failed then, before Lambda killed the invocation. Raise the "
            "function's timeout, or split the work."
        )

    def _left(self) -> float:
        """Seconds until the margin before the deadline."""
        remaining = self._context.get_remaining_time_in_millis() / 1000
        return float(remaining - self._margin.total_seconds())

    def _watch(self) -> None:
        while (left := self._left()) > 0:
            if self._done.wait(left):
                return
        self._expire()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            attempt, unstarted = self._running, dict(self._unstarted)
        if attempt is not None:
            try:
                attempt.time_out(self._error())
            except Exception:
                # Its lease lapses and a redelivery claims it again; the batch-mates still go.
                logger.exception("Could not record the timeout of the running attempt")
        sent = _send_back(unstarted, self._backends)
        with self._lock:
            self._sent_back |= sent
        logger.warning(
            "Invocation %s about to time out: %s unstarted records sent back as fresh messages",
            getattr(self._context, "aws_request_id", "?"),
            len(sent),
        )


def _send_back(bodies: dict[str, str], backends: dict[str, SQSBackend]) -> set[str]:
    """Send each body (by receipt handle) to its queue again; the receipt handles sent."""
    by_queue: dict[tuple[str, str], list[tuple[str, str, int]]] = defaultdict(list)
    for handle, body in bodies.items():
        try:
            envelope = decode(body)  # Only a genuine message goes back.
        except MessageError:
            continue  # Its own turn, or the kill, hands it back to SQS as it is.
        by_queue[envelope.backend, envelope.queue_name].append((handle, body, 0))
    sent: set[str] = set()
    for (alias, queue_name), messages in by_queue.items():
        try:
            backend = backends.get(alias) or backend_of(alias)
            failed = backend.queue.send_many(queue_name, messages)
        except Exception:
            logger.exception("Could not send %s records back to %s", len(messages), queue_name)
            continue
        sent.update(handle for handle, _, _ in messages if handle not in failed)
    return sent
