"""A worker's batch slots: when its pollers may receive, and when an until_empty run is over.

Pollers receive only while a slot is free, so no message is held invisible while nothing
could start it. A poller whose last receive came back short (the queue had no backlog) holds
its next receive while another batch runs, until one settles or a batching window passes, so
a trickle of messages gathers into one batch as it does at concurrency 1, instead of each
message taking a free slot, a receive and a delete of its own.

For until_empty, every batch taken or settled starts a new generation (it may have enqueued
tasks), and the worker is done once each queue was found empty within one
generation with no batch in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence


class BatchSlots:
    """The batch slots of a worker, shared by its pollers and batch threads under one lock."""

    def __init__(self, count: int, queue_names: Sequence[str], stopping: threading.Event) -> None:
        self._queue_names = set(queue_names)
        self._stopping = stopping
        self._cond = threading.Condition()
        self._free = count  # batch slots not running a batch
        self._in_flight = 0  # batches handed to the pool and not yet settled
        self._settled = 0  # batches run so far (their handler returned)
        # For until_empty: batches taken or settled so far, and the queues whose pollers found
        # them empty since the last of those and wait for the next (or for the end).
        self._generation = 0
        self._idle: set[str] = set()

    def stop(self) -> None:
        """Set stopping and wake every thread waiting for a slot or a generation."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()

    def wait_free(self, hold: float = 0.0) -> int | None:
        """Wait for a free slot without taking it: the generation then, or None if stopping.

        With hold > 0, while another batch runs, also wait until one has run or hold seconds
        pass, whichever is first.
        """
        deadline = time.monotonic() + hold
        with self._cond:
            settled = self._settled
            while not self._stopping.is_set():
                # Receive only when a batch could start: a message waiting here is invisible.
                if self._free == 0:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if self._in_flight == 0 or self._settled != settled or left <= 0:
                    return self._generation
                self._cond.wait(left)
            return None

    def take(self) -> bool:
        """Take a slot for a received batch; False (nothing taken) once stopping."""
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

    def ran(self) -> None:
        """A batch's handler returned: its slot is free while its messages are settled."""
        with self._cond:
            self._free += 1
            self._settled += 1
            # A batch may have enqueued tasks: every queue must be polled empty again.
            self._generation += 1
            self._cond.notify_all()

    def settled(self) -> None:
        """A batch's messages were deleted, backed off or handed back."""
        with self._cond:
            self._in_flight -= 1
            self._generation += 1
            self._cond.notify_all()

    def all_empty(self, queue_name: str, generation: int) -> bool:
        """queue_name was found empty: True (now stopping) if every queue is, else wait.

        The wait lasts until a batch is taken or settled, rather than polling again at once.
        """
        with self._cond:
            if generation != self._generation:
                return False  # A batch was taken or settled meanwhile, and may have enqueued.
            if self._in_flight == 0 and self._idle.issuperset(self._queue_names - {queue_name}):
                self._stopping.set()
                self._cond.notify_all()
                return True
            self._idle.add(queue_name)
            while self._generation == generation and not self._stopping.is_set():
                self._cond.wait()
            self._idle.discard(queue_name)
            return False
