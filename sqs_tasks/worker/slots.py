"""A worker's batch slots: when its pollers may receive, and when an until_empty run is over.

Pollers receive only while a slot is free, so no message is held invisible while nothing
could start it. For until_empty, every batch taken or settled starts a new generation (it
may have enqueued tasks), and the worker is done once each queue was found empty within one
generation with no batch in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


class BatchSlots:
    """The batch slots of a worker, shared by its pollers and batch threads under one lock."""

    def __init__(self, count: int, queue_names: Sequence[str], stopping: threading.Event) -> None:
        self._queue_names = set(queue_names)
        self._stopping = stopping
        self._cond = threading.Condition()
        self._free = count  # batch slots not running a batch
        self._in_flight = 0  # batches handed to the pool and not yet settled
        # For until_empty: batches taken or settled so far, and the queues whose pollers found
        # them empty since the last of those and wait for the next (or for the end).
        self._generation = 0
        self._idle: set[str] = set()

    def stop(self) -> None:
        """Set stopping and wake every thread waiting for a slot or a generation."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()

    def wait_free(self) -> int | None:
        """Wait for a free slot without taking it: the generation then, or None if stopping."""
        with self._cond:
            # Receive only when a batch could start: a message waiting here is invisible.
            while self._free == 0 and not self._stopping.is_set():
                self._cond.wait()
            if self._stopping.is_set():
                return None
            return self._generation

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

    def release(self) -> None:
        """Give back the slot of a settled batch."""
        with self._cond:
            self._free += 1
            self._in_flight -= 1
            # A batch may have enqueued tasks: every queue must be polled empty again.
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
