"""The Lambda SQS event source mapping, emulated from its deployed configuration.

What AWS does for a mapping with an SQS source, and so what `EventSourceMapping` does:

- poll the queue (long polling) and gather up to BatchSize messages, waiting at most
  MaximumBatchingWindowInSeconds after the first one (0: invoke with what one receive got);
- invoke the function with a Lambda-shaped event, at most ScalingConfig.MaximumConcurrency
  invocations at a time (here: a thread pool fed by one poller);
- when it returns, delete the messages it did not report in `batchItemFailures` (with
  FunctionResponseTypes ReportBatchItemFailures; without it, a return deletes the batch).
  The deleting is the mapping's work, not the function's: the invocation's slot is free for
  the next batch meanwhile;
- when it raises, returns an invalid response or runs past its timeout, delete nothing;
- leave failed messages alone: they come back after the queue's VisibilityTimeout, and
  SQS (moto) moves a message to the dead-letter queue on the receive after maxReceiveCount.

Lambda runs one invocation per execution environment; here invocations share a process,
so a handler that is not safe to run on several threads at once can be serialised
(`serialize=True`). A handler still running at its timeout cannot be stopped: its batch is
then treated as failed, as Lambda would (the messages come back after the visibility timeout).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..worker.events import lambda_event
from ..worker.settle import Message, delete_messages
from .mapping_config import Handler, Listener, MappingConfig, MappingStats

logger = logging.getLogger("sqs_tasks.local.mapping")

# SQS's largest receive and longest long poll.
MAX_RECEIVE = 10
MAX_WAIT_TIME = 20


class EventSourceMapping:
    """Runs one deployed mapping: a poller, up to MaximumConcurrency invocations at a time."""

    # Invocations run on one thread pool, deletes on another. The poller receives only while
    # an invocation slot is free, so no message waits invisible for a slot, as Lambda stops
    # reading at maximum concurrency. (Lambda runs several pollers and scales them with the
    # backlog; one is plenty for a local queue and keeps moto's long polls few.)

    def __init__(
        self,
        config: MappingConfig,
        handler: Handler,
        sqs_client: Any,
        *,
        visibility_timeout: int | None = None,
        poll_wait: int = 1,
        serialize: bool = False,
        listeners: Sequence[Listener] = (),
    ) -> None:
        """visibility_timeout overrides the queue's (on ReceiveMessage); Lambda never does.

        poll_wait is each receive's long-poll wait while no batch is being gathered, short so
        that stop() takes effect within about that long (Lambda long-polls for 20 s).
        """
        self.config = config
        self.handler = handler
        self.sqs = sqs_client
        self.visibility_timeout = visibility_timeout
        self.poll_wait = max(0, min(poll_wait, MAX_WAIT_TIME))
        self.listeners = list(listeners)
        self.stats = MappingStats()
        self._stopping = threading.Event()
        self._serial = threading.Lock() if serialize else None
        self._slots = threading.BoundedSemaphore(config.maximum_concurrency)
        self._pool = ThreadPoolExecutor(
            config.maximum_concurrency, thread_name_prefix=f"lambda-{config.queue_name}"
        )
        self._settler = ThreadPoolExecutor(
            config.maximum_concurrency, thread_name_prefix=f"esm-settle-{config.queue_name}"
        )
        self._poller = threading.Thread(
            target=self._poll, name=f"esm-{config.queue_name}", daemon=True
        )

    def start(self) -> None:
        """Start polling."""
        self._poller.start()

    def stop(self) -> None:
        """Stop polling; a batch being gathered or run is still invoked and settled."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the poller, the invocations and their deletes to finish (after stop())."""
        self._poller.join(timeout)
        self._pool.shutdown(wait=True)
        self._settler.shutdown(wait=True)

    # ------------------------------------------------------------- polling
    def _poll(self) -> None:
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=1):
                continue  # Every slot busy: look at _stopping again.
            try:
                batch = self._gather()
            except Exception:
                self._slots.release()
                # Whatever was received comes back after its visibility timeout.
                logger.exception("Event source mapping %s: receive failed", self.config.queue_name)
                self._stopping.wait(1)
                continue
            if not batch:
                self._slots.release()
                continue
            self._pool.submit(self._run, batch)

    def _run(self, batch: list[Message]) -> None:
        try:
            failed_ids = self._invoke(batch)
        except Exception:
            # Nothing is settled: the batch comes back after its visibility timeout.
            logger.exception("Event source mapping %s: invocation error", self.config.queue_name)
            return
        finally:
            self._slots.release()
        self._settler.submit(self._settle, batch, failed_ids)

    def _receive(self, count: int, wait: int) -> list[Message]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.config.queue_url,
            "MaxNumberOfMessages": count,
            "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        messages: list[Message] = self.sqs.receive_message(**kwargs).get("Messages", [])
        return messages

    def _gather(self) -> list[Message]:
        """Up to BatchSize messages, within the batching window from the first one."""
        config = self.config
        batch: list[Message] = []
        window_ends: float | None = None
        while len(batch) < config.batch_size:
            if window_ends is None:
                if self._stopping.is_set():
                    break
                wait = self.poll_wait
            else:
                left = window_ends - time.monotonic()
                if left <= 0:
                    break
                # Whole seconds only; the receive returns as soon as a message is there.
                wait = min(MAX_WAIT_TIME, max(1, round(left)))
            received = self._receive(min(MAX_RECEIVE, config.batch_size - len(batch)), wait)
            if received and window_ends is None:
                window_ends = time.monotonic() + config.batching_window
            batch.extend(received)
            if batch and config.batching_window == 0:
                break
        return batch

    def _invoke(self, batch: list[Message]) -> set[str]:
        """Invoke the function with batch; the ids of the messages that failed."""
        config = self.config
        self.stats.saw_batch(len(batch))
        context = config.function.context()
        event = lambda_event(batch, config.queue_url, config.region)
        started = time.monotonic()
        problem = None
        response: Any = None
        try:
            if self._serial is not None:
                with self._serial:
                    response = self.handler(event, context)
            else:
                response = self.handler(event, context)
        except Exception as e:
            problem = f"the function raised {type(e).__name__}: {e}"
            logger.exception(
                "%s: invocation %s failed", config.function.name, context.aws_request_id
            )
        took = time.monotonic() - started
        if problem is None and took > config.function.timeout:
            problem = f"Task timed out after {config.function.timeout} seconds"
        ids = {m["MessageId"] for m in batch}
        failed_ids: set[str] = set()
        if problem is None and config.report_batch_item_failures:
            failures = (response or {}).get("batchItemFailures") or []
            failed_ids = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)}
            if not failed_ids <= ids:
                problem = f"invalid batchItemFailures {failures!r}"
        if problem is not None:
            # Lambda deletes nothing: the whole batch comes back after the visibility timeout.
            logger.error(
                "%s: %s messages from %s failed as a batch: %s",
                config.function.name,
                len(batch),
                config.queue_name,
                problem,
            )
            self.stats.add(failed_invocations=1)
            failed_ids = ids
        logger.info(
            "%s: %s messages from %s in %.0f ms, %s failed",
            config.function.name,
            len(batch),
            config.queue_name,
            took * 1000,
            len(failed_ids),
        )
        return failed_ids

    def _settle(self, batch: list[Message], failed_ids: set[str]) -> None:
        """Delete what succeeded; count and tell each message's outcome."""
        failed = [m for m in batch if m["MessageId"] in failed_ids]
        self.stats.add(failed=len(failed))
        for message in failed:
            self._tell(message, "failed")
        try:
            done = [m for m in batch if m["MessageId"] not in failed_ids]
            deleted = delete_messages(self.sqs, self.config.queue_url, done)
        except Exception:
            # What was not deleted comes back after its visibility timeout, as on AWS.
            logger.exception("Event source mapping %s: delete failed", self.config.queue_name)
            return
        self.stats.add(deleted=len(deleted))
        for message in deleted:
            self._tell(message, "deleted")

    def _tell(self, message: Message, outcome: str) -> None:
        for listener in self.listeners:
            try:
                listener(self.config, message, outcome)
            except Exception:
                logger.exception("Event source mapping listener failed")
