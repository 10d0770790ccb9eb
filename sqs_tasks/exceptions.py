"""Exceptions sqs-tasks raises, or records in a result's errors."""

from __future__ import annotations

from django.tasks.exceptions import InvalidTask, TaskException


class EnqueueError(TaskException):
    """The task could not be enqueued; its result, if written, is marked FAILED."""


class PayloadTooLarge(InvalidTask):
    """The task's arguments are larger than a result item may hold."""


class InvalidTaskPath(InvalidTask):
    """A result names something that is not an importable Task."""


class ResultTooLarge(TaskException):
    """The task's return value is larger than a result item may hold."""


class WorkerLost(TaskException):
    """The task's message was dead-lettered: its workers kept dying or timing out."""
