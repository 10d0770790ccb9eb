"""Run tasks outside Lambda: long-poll SQS and hand each batch to the Lambda handler itself.

A Worker does what the Lambda event source mapping does, so a task runs through exactly the
same code (lambda_handler.handler -> sqs_tasks.runner.run_message) on ECS, EC2 or a laptop:

- one poller thread per queue long-polls ReceiveMessage, but only while a batch slot is free,
  so messages are not held invisible while nothing could start them;
- each batch runs on one of `concurrency` threads, with a context whose request id is a fresh
  worker id and whose remaining time is what is left of the batch's visibility timeout (the
  runner's lease is that plus its margin, as in Lambda, instead of the 15-minute LEASE);
- what the handler reports in batchItemFailures is hidden for an exponential backoff on its
  receive count (ChangeMessageVisibility); everything else is deleted (DeleteMessageBatch);
- stop() (SIGTERM/SIGINT in the management command) stops receiving, lets the record each
  batch is running finish, and hands back at once (visibility 0) every message received but
  not started, so nothing waits out a visibility timeout and nothing runs twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .events import lambda_event

logger = logging.getLogger("sqs_tasks.worker")

Handler = Callable[[dict[str, Any], Any], Any]
Message = dict[str, Any]  # a message as ReceiveMessage returns it

# SQS's own limits.
MAX_BATCH_SIZE = 10
MAX_WAIT_TIME = 20
MAX_VISIBILITY_TIMEOUT = 43_200
# A message the handler reported failed stays hidden BACKOFF_BASE x 2^(receives - 1) seconds,
# at most BACKOFF_MAX: 30 s, 1, 2, 4 and 8 minutes over the stack's five receives, long
# enough for a live lease (at most the visibility timeout + 30 s) to lapse before the DLQ.
BACKOFF_BASE = 30
BACKOFF_MAX = 900
# After a failed ReceiveMessage (network, throttling), wait this long before polling again.
RECEIVE_ERROR_PAUSE = 5.0


def backoff_seconds(receive_count: int, *, base: int = BACKOFF_BASE, cap: int = BACKOFF_MAX) -> int:
    """How long a message that failed on its receive_count-th receive stays hidden."""
    exponent = min(max(receive_count, 1) - 1, 32)
    return int(min(cap, base * 2**exponent))


def _chunks(items: Sequence[Message], size: int = 10) -> Iterable[Sequence[Message]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class WorkerContext:
    """The parts of a Lambda context the handler reads, for one batch.

    The remaining time runs out with the batch's visibility timeout. Once the worker is
    stopping it is 0, so the handler starts no further record: each is reported failed
    (Redeliver, nothing claimed) and the worker hands it straight back.
    """

    function_name = "sqs-tasks-worker"
    function_version = "$LATEST"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:sqs-tasks-worker"

    def __init__(self, worker_id: str, deadline: float, stopping: threading.Event) -> None:
        self.aws_request_id = worker_id
        self._deadline = deadline  # time.monotonic() at which the batch's visibility ends
        self._stopping = stopping
        # Whether a record was refused because the worker is stopping.
        self.stopped = False

    def get_remaining_time_in_millis(self) -> int:
        """What is left of the batch's visibility timeout; 0 once the worker is stopping."""
        if self._stopping.is_set():
            self.stopped = True
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class WorkerStats:
    """What a worker did, in messages."""

    received: int = 0
    batches: int = 0
    deleted: int = 0  # succeeded (or dropped as duplicates): deleted from the queue
    backed_off: int = 0  # reported failed: hidden for a backoff, delivered again later
    released: int = 0  # received but not started when the worker stopped: visible again now
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
    ) -> None:
        """Check the settings (ValueError says which is wrong); nothing is received yet."""
        from django.tasks import task_backends

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch size must be 1 to {MAX_BATCH_SIZE}, not {batch_size}")
        if not 0 <= wait_time <= MAX_WAIT_TIME:
            raise ValueError(f"wait time must be 0 to {MAX_WAIT_TIME} seconds, not {wait_time}")
        if visibility_timeout is not None and not 1 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:
            raise ValueError(
                f"visibility timeout must be 1 to {MAX_VISIBILITY_TIMEOUT} seconds, "
                f"not {visibility_timeout}"
            )
        if not 0 < backoff_base <= backoff_max:
            raise ValueError("backoff must be positive and at most its cap")
        tasks_backend: Any = task_backends[backend]
        if not hasattr(tasks_backend, "queue") or not hasattr(tasks_backend, "store"):
            raise ValueError(f"task backend {backend!r} is not an sqs_tasks.SQSBackend")
        names = list(dict.fromkeys(queues)) if queues else sorted(tasks_backend.queues)
        unknown = [q for q in names if q not in tasks_backend.queues]
        if unknown:
            raise ValueError(
                f"queue {unknown[0]!r} is not one of backend {backend!r}'s QUEUES "
                f"({', '.join(sorted(tasks_backend.queues))})"
            )
        if handler is None:
            from lambda_handler.handler import handler as lambda_handler

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
        self.handler = handler
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.stats = WorkerStats()
        self.crashed = False  # a poller died of an unexpected error (logged)
        self._urls: dict[str, str] = {}
        self._visibility: dict[str, int] = {}
        self._region = ""
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._free = concurrency  # batch slots not running a batch
        self._in_flight = 0  # batches handed to the pool and not yet settled
        # For until_empty: batches taken or settled so far, and the queues whose pollers found
        # them empty since the last of those and wait for the next (or for the end).
        self._generation = 0
        self._idle: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def stopping(self) -> bool:
        """Whether stop() was called (or, with until_empty, the queues ran dry)."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop receiving; batches finish their running record and hand the rest back."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()

    def _sqs(self) -> Any:
        from django.tasks import task_backends

        # task_backends keeps one backend per thread, so each thread has its own client.
        return task_backends[self.backend].client("sqs")  # type: ignore[attr-defined]

    def _prepare(self) -> None:
        from django.tasks import task_backends

        tasks_backend: Any = task_backends[self.backend]
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
                self._visibility[name] = int(attributes["VisibilityTimeout"])

    def run(self) -> WorkerStats:
        """Poll and run batches until stop() (or, with until_empty, until nothing is left)."""
        self._prepare()
        logger.info(
            "Worker %s polling %s (concurrency %s, batch size %s, wait %s s)",
            self.name,
            ", ".join(self.queue_names),
            self.concurrency,
            self.batch_size,
            self.wait_time,
        )
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="sqs-tasks-batch") as pool:
            self._pool = pool
            pollers = [
                threading.Thread(target=self._poll_or_stop, args=(q,), name=f"sqs-tasks-poll-{q}")
                for q in self.queue_names
            ]
            for poller in pollers:
                poller.start()
            for poller in pollers:
                poller.join()
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
        sqs = self._sqs()
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
        while True:
            with self._cond:
                # Receive only when a batch could start: a message waiting here is invisible.
                while self._free == 0 and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                generation = self._generation
            received_at = time.monotonic()
            try:
                messages: list[Message] = sqs.receive_message(**kwargs).get("Messages", [])
            except (ClientError, BotoCoreError) as e:
                logger.error("ReceiveMessage on %s failed: %s", queue_name, e)
                self._stopping.wait(RECEIVE_ERROR_PAUSE)
                continue
            if not messages:
                self._note_empty(queue_name, generation)
                continue
            self.stats.add(received=len(messages))
            if not self._take_slot():
                self._hand_back(sqs, url, messages)
                return
            deadline = received_at + self._visibility[queue_name]
            assert self._pool is not None
            self._pool.submit(self._run_batch, queue_name, url, messages, deadline)

    def _note_empty(self, queue_name: str, generation: int) -> None:
        """With until_empty: stop once every queue was found empty since the last batch."""
        if not self.until_empty:
            return
        with self._cond:
            if generation != self._generation:
                return  # A batch was taken or settled meanwhile, and may have enqueued: poll.
            if self._in_flight == 0 and self._idle.issuperset(set(self.queue_names) - {queue_name}):
                logger.info("Worker %s: every queue is empty, stopping", self.name)
                self._stopping.set()
                self._cond.notify_all()
                return
            # Wait for the next batch to be taken or settled rather than poll again at once.
            self._idle.add(queue_name)
            while self._generation == generation and not self._stopping.is_set():
                self._cond.wait()
            self._idle.discard(queue_name)

    def _take_slot(self) -> bool:
        with self._cond:
            while self._free == 0 and not self._stopping.is_set():
                self._cond.wait()
            if self._stopping.is_set():
                return False
            self._free -= 1
            self._in_flight += 1
            self._generation += 1
            self._cond.notify_all()
            return True

    def _free_slot(self) -> None:
        with self._cond:
            self._free += 1
            self._in_flight -= 1
            # A batch may have enqueued tasks: every queue must be polled empty again.
            self._generation += 1
            self._cond.notify_all()

    def _run_batch(
        self, queue_name: str, url: str, messages: list[Message], deadline: float
    ) -> None:
        try:
            self._settle_batch(queue_name, url, messages, deadline)
        except Exception:
            # Whatever was not settled reappears after its visibility timeout.
            logger.exception("Batch from %s could not be settled", queue_name)
        finally:
            self._free_slot()

    def _settle_batch(
        self, queue_name: str, url: str, messages: list[Message], deadline: float
    ) -> None:
        sqs = self._sqs()
        worker_id = f"{self.name}-{uuid.uuid4().hex[:12]}"
        context = WorkerContext(worker_id, deadline, self._stopping)
        self.stats.add(batches=1)
        try:
            response = self.handler(lambda_event(messages, url, self._region), context)
            failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except (Exception, KeyboardInterrupt):
            logger.exception("Worker %s: the handler raised; the whole batch failed", worker_id)
            failed_ids = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        self.stats.add(deleted=self._delete(sqs, url, done))
        if failed and context.stopped:
            # Records refused because the worker is stopping were never started.
            self.stats.add(released=self._change_visibility(sqs, url, failed, lambda m: 0))
        elif failed:
            changed = self._change_visibility(sqs, url, failed, self._backoff)
            self.stats.add(backed_off=changed)
        logger.info(
            "Worker %s: %s messages from %s, %s done, %s failed%s",
            worker_id,
            len(messages),
            queue_name,
            len(done),
            len(failed),
            " (handed back: stopping)" if failed and context.stopped else "",
        )

    def _backoff(self, message: Message) -> int:
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return backoff_seconds(receives, base=self.backoff_base, cap=self.backoff_max)

    def _hand_back(self, sqs: Any, url: str, messages: list[Message]) -> None:
        """Make messages received but never started visible again at once."""
        try:
            self.stats.add(released=self._change_visibility(sqs, url, messages, lambda m: 0))
        except (ClientError, BotoCoreError) as e:
            logger.error("Could not hand %s messages back: %s", len(messages), e)

    def _delete(self, sqs: Any, url: str, messages: Sequence[Message]) -> int:
        deleted = 0
        for chunk in _chunks(messages):
            response = sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            deleted += len(response.get("Successful", []))
            for failure in response.get("Failed", []):
                # It comes back after its visibility timeout and is dropped as a duplicate.
                logger.warning(
                    "Could not delete message %s: %s",
                    chunk[int(failure["Id"])]["MessageId"],
                    failure.get("Message", failure["Code"]),
                )
        return deleted

    def _change_visibility(
        self,
        sqs: Any,
        url: str,
        messages: Sequence[Message],
        seconds: Callable[[Message], int],
    ) -> int:
        changed = 0
        for chunk in _chunks(messages):
            response = sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": seconds(m),
                    }
                    for i, m in enumerate(chunk)
                ],
            )
            changed += len(response.get("Successful", []))
            for failure in response.get("Failed", []):
                # It comes back when its visibility timeout runs out instead.
                logger.warning(
                    "Could not change the visibility of message %s: %s",
                    chunk[int(failure["Id"])]["MessageId"],
                    failure.get("Message", failure["Code"]),
                )
        return changed
