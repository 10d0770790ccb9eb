"""What each result of a run should end as, and the tracker that follows the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[Any], str | None]  # a TaskResult -> what is wrong with it, or None


@dataclass
class Expected:
    """A result and the state it should reach."""

    label: str
    status: str
    check: Check | None = None
    children: list[str] = field(default_factory=list)  # results it enqueued, shown under it


def returns(value: Any) -> Check:
    """The result's return value must be value."""

    def check(result: Any) -> str | None:
        return None if result.return_value == value else f"expected {value!r}"

    return check


def failed_with(name: str) -> Check:
    """The result's last error must be an exception class called name."""

    def check(result: Any) -> str | None:
        kinds = [e.exception_class_path.rsplit(".", 1)[-1] for e in result.errors]
        return None if kinds and kinds[-1] == name else f"expected {name}, got {kinds}"

    return check


def judge(result: Any, expected: Expected) -> str | None:
    """What is wrong with a result, or None."""
    if result.status != expected.status:
        return f"is {result.status}, expected {expected.status}"
    return expected.check(result) if expected.check is not None else None


@dataclass
class Tracker:
    """Follows the run: results finished (Django's task_finished), the dead letter settled."""

    expected: dict[str, Expected] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    last_finished_at: float | None = None
    forged_id: str | None = None
    forged_dead_letter_arn: str | None = None
    forged_receives: int = 0
    forged_settled_by: str | None = None
    # The forged letter the dead-letter function kept (it cannot verify it): (queue, receipt).
    forged_kept: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, result_id: str, expected: Expected) -> None:
        """Add a result to wait for."""
        with self.lock:
            self.expected[result_id] = expected

    def on_finished(self, sender: Any, task_result: Any, **kwargs: Any) -> None:
        """The task_finished signal: a result reached SUCCESSFUL or FAILED (worker threads)."""
        if task_result.task.name == "fan_out" and task_result.status == "SUCCESSFUL":
            for i, child in enumerate(task_result.return_value):
                self.expect(child, Expected(f"  -> add({i}, {i})", "SUCCESSFUL", returns(2 * i)))
            with self.lock:
                parent = self.expected.get(task_result.id)
                if parent is not None:
                    parent.children = list(task_result.return_value)
        with self.lock:
            self.finished.add(task_result.id)
            self.last_finished_at = time.monotonic()

    def on_settled(self, mapping: Any, message: dict[str, Any], outcome: str) -> None:
        """An emulated mapping settled a message: "deleted" or "failed" (its threads)."""
        if message["MessageId"] != self.forged_id:
            return
        with self.lock:
            if mapping.queue_arn == self.forged_dead_letter_arn:
                # Unverifiable, it is kept in the DLQ (a batch item failure), never deleted.
                if outcome == "failed" and self.forged_settled_by is None:
                    self.forged_settled_by = mapping.function.name
                    self.forged_kept = (mapping.queue_url, message["ReceiptHandle"])
            elif outcome == "failed":
                self.forged_receives += 1

    def delete_kept_forgery(self, sqs: Any) -> None:
        """Delete the forged letter the dead-letter function kept: the run's own, now judged."""
        with self.lock:
            kept, self.forged_kept = self.forged_kept, None
        if kept is not None:
            sqs.delete_message(QueueUrl=kept[0], ReceiptHandle=kept[1])

    def snapshot(self) -> dict[str, Expected]:
        """The results expected so far (worker threads may add children meanwhile)."""
        with self.lock:
            return dict(self.expected)

    def counts(self) -> tuple[int, int]:
        """(finished, expected), the dead letter included."""
        with self.lock:
            done = len(self.finished & self.expected.keys())
            total = len(self.expected)
            if self.forged_id is not None:
                total += 1
                done += self.forged_settled_by is not None
            return done, total
