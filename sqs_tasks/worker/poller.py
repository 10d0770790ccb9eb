"""Run tasks outside Lambda: long-poll SQS and hand each batch to the Lambda handler itself.

A Worker does what the Lambda event source mapping does, so a task runs through exactly the
same code (lambda_handler.handler -> sqs_tasks.worker.attempt.Attempt) on ECS, EC2 or a laptop:

- one poller thread per queue long-polls ReceiveMessage, but only while a batch slot is free,
  so messages are not held invisible while nothing could start them; after a receive that
  came back short, the next waits (while a batch runs) until a batch has run or batch_window
  passes, so without a backlog messages still gather into batches at any concurrency;
- at most `concurrency` batches run at once, each on a thread of its own, with a context
  whose request id is a fresh worker id and whose remaining time is what is left of the
  batch's visibility timeout (the runner's lease is that plus its margin, as in Lambda,
  instead of the 15-minute LEASE);
- while a batch runs, a Heartbeat keeps its messages hidden and its running attempt leased;
- what the handler reports in batchItemFailures is hidden for an exponential backoff on its
  receive count (ChangeMessageVisibility); everything else is deleted (DeleteMessageBatch),
  while the next batch runs: a batch's slot is free once its handler returns;
- stop() (SIGTERM/SIGINT in the management command) stops receiving, lets the record each
  batch is running finish, and hands back at once every message received but not started
  (the handler sends a running batch's others again; a batch not begun is made visible), so
  nothing waits out a visibility timeout and nothing runs twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..backend import SQSBackend
from .batch import BACKOFF_BASE, BACKOFF_MAX, BatchRunner, Handler, WorkerStats
from .settle import Message, change_visibility
from .slots import BatchSlots

logger = logging.getLogger("sqs_tasks.worker")

# SQS's own limits.
MAX_BATCH_SIZE = 10
MAX_WAIT_TIME = 20
MAX_VISIBILITY_TIMEOUT = 43_200
# The handler starts no record with under 2 s left: below this, a batch would run nothing.
MIN_VISIBILITY_TIMEOUT = 10
# After a short receive, how long the next may wait for a running batch to settle: the most a
# message waits on a free slot behind a long task, without a backlog.
BATCH_WINDOW = 0.5
# A long poll's answer comes after its wait plus a round trip: the poller's read timeout must
# outlast the wait by this much, or every empty poll times out and is retried.
LONG_POLL_MARGIN = 10
# After a failed ReceiveMessage (network, throttling), wait this long before polling again.
RECEIVE_ERROR_PAUSE = 5.0
# After stop(), how long run() waits for pollers still in a long poll before it returns
# without them: an idle worker stops this quickly rather than after up to wait_time.
STOP_GRACE = 1.0


class Worker:
    """Long-polls a backend's queues and feeds each batch to the Lambda handler."""

    def __init__(
        self,
        backend: str = "default",
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 1,
        batch_size: int = MAX_BATCH_SIZE,
        wait_time: int = MAX_WAIT_TIME,
        visibility_timeout: int | None = None,
        until_empty: bool = False,
        backoff_base: int = BACKOFF_BASE,
        backoff_max: int = BACKOFF_MAX,
        handler: Handler | None = None,
        batch_window: float = BATCH_WINDOW,
    ) -> None:
        """Check the settings (ValueError says which is wrong); nothing is received yet."""
        from django.tasks import task_backends

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch size must be 1 to {MAX_BATCH_SIZE}, not {batch_size}")
        if not 0 <= wait_time <= MAX_WAIT_TIME:
            raise ValueError(f"wait time must be 0 to {MAX_WAIT_TIME} seconds, not {wait_time}")
        if visibility_timeout is not None and not (
            MIN_VISIBILITY_TIMEOUT <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT
        ):
            raise ValueError(
                f"visibility timeout must be {MIN_VISIBILITY_TIMEOUT} to "
                f"{MAX_VISIBILITY_TIMEOUT} seconds, not {visibility_timeout}"
            )
        if not 0 <= batch_window <= MAX_WAIT_TIME:
            raise ValueError(
                f"batch window must be 0 to {MAX_WAIT_TIME} seconds, not {batch_window}"
            )
        if not 0 < backoff_base <= backoff_max:
            raise ValueError("backoff must be positive and at most its cap")
        tasks_backend = task_backends[backend]
        if not isinstance(tasks_backend, SQSBackend):
            raise ValueError(f"task backend {backend!r} is not an sqs_tasks.SQSBackend")
        names = list(dict.fromkeys(queues)) if queues else sorted(tasks_backend.queues)
        unknown = [q for q in names if q not in tasks_backend.queues]
        if unknown:
            raise ValueError(
                f"queue {unknown[0]!r} is not one of backend {backend!r}'s QUEUES "
                f"({', '.join(sorted(tasks_backend.queues))})"
            )
        if handler is None:
            from .handler import handler as lambda_handler

            handler = lambda_handler
        self.backend = backend
        self.queue_names = names
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.wait_time = wait_time
        self.visibility_timeout = visibility_timeout
        self.until_empty = until_empty
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.batch_window = batch_window
        self.handler = handler
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.stats = WorkerStats()
        self.crashed = False  # a poller died of an unexpected error (logged)
        self.abandoned_polls = 0  # long polls still waiting when run() returned
        self._urls: dict[str, str] = {}
        self._visibility: dict[str, int] = {}
        self._region = ""
        self._stopping = threading.Event()
        self._slots = BatchSlots(concurrency, names, self._stopping)
        self._pool: ThreadPoolExecutor | None = None
        self._batches: BatchRunner | None = None

    @property
    def stopping(self) -> bool:
        """Whether stop() was called (or, with until_empty, the queues ran dry)."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop receiving; batches finish their running record and hand the rest back."""
        self._slots.stop()

    def _sqs(self) -> Any:

        # task_backends keeps one backend per thread, so each thread has its own client.
        return _sqs_backend(self.backend).client("sqs")

    def _receiver(self) -> Any:
        """This thread's SQS client for long polls: its read timeout outlasts the wait."""
        tasks_backend = _sqs_backend(self.backend)
        sqs = tasks_backend.client("sqs")
        needed = self.wait_time + LONG_POLL_MARGIN
        if sqs.meta.config.read_timeout >= needed:
            return sqs
        return tasks_backend.producer.new_client("sqs", read_timeout=needed)

    def prepare(self) -> None:
        """Look up each queue's URL and visibility timeout; run() does it if not done."""
        tasks_backend = _sqs_backend(self.backend)
        sqs = tasks_backend.client("sqs")
        self._region = sqs.meta.region_name
        for name in self.queue_names:
            url = tasks_backend.queue.url(name)
            self._urls[name] = url
            if self.visibility_timeout is not None:
                self._visibility[name] = self.visibility_timeout
            else:
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["VisibilityTimeout"]
                )["Attributes"]
                visibility = int(attributes["VisibilityTimeout"])
                if visibility < MIN_VISIBILITY_TIMEOUT:
                    raise ValueError(
                        f"queue {name!r} hides a received message for {visibility} s; the "
                        f"worker needs at least {MIN_VISIBILITY_TIMEOUT} (--visibility-timeout)"
                    )
                self._visibility[name] = visibility

    def run(self) -> WorkerStats:
        """Poll and run batches until stop() (or, with until_empty, until nothing is left)."""
        if not self._region:
            self.prepare()
        self._batches = BatchRunner(
            self.name,
            self.handler,
            self._region,
            self._stopping,
            self.stats,
            self.backoff_base,
            self.backoff_max,
        )
        logger.info(
            "Worker %s polling %s (concurrency %s, batch size %s, wait %s s)",
            self.name,
            ", ".join(self.queue_names),
            self.concurrency,
            self.batch_size,
            self.wait_time,
        )
        # A batch frees its slot once run, and settles its messages while the next one runs,
        # as Lambda's event source mapping does: a thread for each of both.
        threads = 2 * self.concurrency
        with ThreadPoolExecutor(threads, thread_name_prefix="sqs-tasks-batch") as pool:
            self._pool = pool
            pollers = [
                threading.Thread(
                    target=self._poll_or_stop,
                    args=(q,),
                    name=f"sqs-tasks-poll-{q}",
                    # A poller still in its long poll must not keep the process alive: what it
                    # receives once stopping is handed back, if the process is still there.
                    daemon=True,
                )
                for q in self.queue_names
            ]
            for poller in pollers:
                poller.start()
            self._stopping.wait()  # Pollers end only once stopping (a crash stops, too).
            grace_ends = time.monotonic() + STOP_GRACE
            for poller in pollers:
                poller.join(max(0.0, grace_ends - time.monotonic()))
            self.abandoned_polls = sum(poller.is_alive() for poller in pollers)
        # Leaving the with block waited for every batch in flight.
        logger.info("Worker %s stopped: %s", self.name, self.stats.summary())
        return self.stats

    def _poll_or_stop(self, queue_name: str) -> None:
        try:
            self._poll(queue_name)
        except Exception:
            # A queue nobody polls would go unnoticed: stop, for the supervisor to restart us.
            logger.exception("Worker %s: the poller of %s crashed; stopping", self.name, queue_name)
            self.crashed = True
            self.stop()

    def _poll(self, queue_name: str) -> None:
        sqs = self._receiver()
        url = self._urls[queue_name]
        kwargs: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": self.batch_size,
            "WaitTimeSeconds": self.wait_time,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        full = True  # whether the last receive found a backlog (a whole batch)
        while True:
            generation = self._slots.wait_free(0.0 if full else self.batch_window)
            if generation is None:
                return
            received_at = time.monotonic()
            try:
                messages: list[Message] = sqs.receive_message(**kwargs).get("Messages", [])
            except (ClientError, BotoCoreError) as e:
                logger.error("ReceiveMessage on %s failed: %s", queue_name, e)
                self._stopping.wait(RECEIVE_ERROR_PAUSE)
                continue
            full = len(messages) >= self.batch_size
            if not messages:
                self._note_empty(queue_name, generation)
                continue
            self.stats.add(received=len(messages))
            if not self._slots.take():
                self._hand_back(sqs, url, messages)
                return
            visibility = self._visibility[queue_name]
            assert self._pool is not None
            self._pool.submit(
                self._run_batch, queue_name, url, messages, received_at + visibility, visibility
            )

    def _note_empty(self, queue_name: str, generation: int) -> None:
        """With until_empty: stop once every queue was found empty since the last batch."""
        if self.until_empty and self._slots.all_empty(queue_name, generation):
            logger.info("Worker %s: every queue is empty, stopping", self.name)

    def _run_batch(
        self, queue_name: str, url: str, messages: list[Message], deadline: float, visibility: int
    ) -> None:
        ran = threading.Event()

        def free_slot() -> None:
            ran.set()
            self._slots.ran()

        try:
            assert self._batches is not None
            self._batches.run(
                self._sqs(), queue_name, url, messages, deadline, visibility, ran=free_slot
            )
        except Exception:
            # Whatever was not settled reappears after its visibility timeout.
            logger.exception("Batch from %s could not be settled", queue_name)
        finally:
            if not ran.is_set():
                self._slots.ran()
            self._slots.settled()

    def _hand_back(self, sqs: Any, url: str, messages: list[Message]) -> None:
        """Make messages received but never started visible again at once."""
        try:
            self.stats.add(released=change_visibility(sqs, url, messages, lambda m: 0))
        except (ClientError, BotoCoreError) as e:
            logger.error("Could not hand %s messages back: %s", len(messages), e)


def _sqs_backend(alias: str) -> SQSBackend:
    """This thread's backend of alias (Worker() checked that it is an SQSBackend)."""
    from django.tasks import task_backends

    backend = task_backends[alias]
    assert isinstance(backend, SQSBackend)
    return backend
