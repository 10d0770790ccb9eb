"""Exceptions sqs-tasks raises, or records in a result's errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.tasks.exceptions import InvalidTask, TaskException

if TYPE_CHECKING:
    from django.tasks import TaskResult


class EnqueueError(TaskException):
    """The task could not be enqueued; the message says what became of its result."""


class PayloadTooLarge(InvalidTask):
    """The task's arguments are larger than a result item may hold."""


class ArgumentsTooDeep(ValueError):
    """The task's arguments nest deeper than a worker can rebuild them."""


class InvalidTaskPath(InvalidTask):
    """A result names something that is not an importable Task."""


class ResultTooLarge(TaskException):
    """The task's return value is larger than a result item may hold."""


class TaskTimedOut(TaskException):
    """The task was still running as its Lambda invocation was about to time out."""


class WorkerLost(TaskException):
    """The task's message was dead-lettered: its workers kept dying or timing out."""


class BulkEnqueueError(EnqueueError):
    """Some entries of enqueue_many() failed; `failures` says which and why, none is dropped."""

    def __init__(
        self, message: str, *, results: list[TaskResult[..., Any] | None], failures: dict[int, str]
    ) -> None:
        super().__init__(message)
        # In input order: the TaskResult of each entry that was enqueued, None where it failed.
        self.results = results
        # Entry index -> why it failed; its result, if it was stored, is marked FAILED.
        self.failures = failures
