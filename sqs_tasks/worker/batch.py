"""One batch the worker received: the handler's run, and its settling.

What the handler reports in batchItemFailures is hidden for an exponential backoff on its
receive count (ChangeMessageVisibility); everything else is deleted (DeleteMessageBatch);
records the handler refused because the worker is stopping are made visible again at once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import backoff
from .context import LambdaContext
from .events import lambda_event
from .heartbeat import Heartbeat
from .settle import Message, change_visibility, delete_messages

# The worker's logger, not this module's: `-v 2` and the README name sqs_tasks.worker.poller.
logger = logging.getLogger("sqs_tasks.worker")

Handler = Callable[[dict[str, Any], Any], Any]

# A message the handler reported failed stays hidden BACKOFF_BASE x 2^(receives - 1) seconds,
# at most BACKOFF_MAX: 30 s, 1, 2, 4 and 8 minutes over the stack's five receives, long
# enough for a live lease (at most the visibility timeout + 30 s) to lapse before the DLQ.
BACKOFF_BASE = 30
BACKOFF_MAX = 900


def backoff_seconds(receive_count: int, *, base: int = BACKOFF_BASE, cap: int = BACKOFF_MAX) -> int:
    """How long a message that failed on its receive_count-th receive stays hidden."""
    return int(backoff.ceiling(receive_count, base, cap))


@dataclass
class WorkerStats:
    """What a worker did, in messages."""

    received: int = 0
    batches: int = 0
    deleted: int = 0  # succeeded (or dropped as duplicates): deleted from the queue
    backed_off: int = 0  # reported failed: hidden for a backoff, delivered again later
    released: int = 0  # received but not started when the worker stopped: on the queue again
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to the counters, from any thread."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        """One line for people."""
        batches = "1 batch" if self.batches == 1 else f"{self.batches} batches"
        return (
            f"{self.received} messages received in {batches}: "
            f"{self.deleted} done, {self.backed_off} failed (backed off), "
            f"{self.released} handed back unstarted"
        )


@dataclass(frozen=True, slots=True)
class BatchRunner:
    """Runs a worker's batches through the handler and settles their messages on SQS."""

    worker_name: str
    handler: Handler
    region: str
    stopping: threading.Event
    stats: WorkerStats
    backoff_base: int = BACKOFF_BASE
    backoff_max: int = BACKOFF_MAX

    def run(
        self,
        sqs: Any,
        queue_name: str,
        url: str,
        messages: list[Message],
        deadline: float,
        visibility: int,
        ran: Callable[[], None] = lambda: None,
    ) -> None:
        """Hand messages to the handler, call ran(), then delete, back off or hand back each."""
        worker_id = f"{self.worker_name}-{uuid.uuid4().hex[:12]}"
        context = LambdaContext(worker_id, deadline, self.stopping)
        self.stats.add(batches=1)
        try:
            with Heartbeat(sqs, url, messages, context, visibility):
                response = self.handler(lambda_event(messages, url, self.region), context)
            failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except (Exception, KeyboardInterrupt):
            logger.exception("Worker %s: the handler raised; the whole batch failed", worker_id)
            failed_ids = {m["MessageId"] for m in messages}
        finally:
            ran()
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        deleted = len(delete_messages(sqs, url, done))
        # A record sent back as a fresh message succeeded for SQS, but it did not run.
        self.stats.add(deleted=max(0, deleted - context.sent_again), released=context.sent_again)
        # Those the handler hid itself (their item not stored yet) keep its shorter wait.
        if failed:
            backoff = [m for m in failed if m["MessageId"] not in context.hidden]
            changed = change_visibility(sqs, url, backoff, self._backoff) if backoff else 0
            self.stats.add(backed_off=changed + len(failed) - len(backoff))
        logger.info(
            "Worker %s: %s messages from %s, %s done, %s failed",
            worker_id,
            len(messages),
            queue_name,
            len(done),
            len(failed),
        )

    def _backoff(self, message: Message) -> int:
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return backoff_seconds(receives, base=self.backoff_base, cap=self.backoff_max)
