"""Exceptions sqs-tasks raises, or records in a result's errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.tasks.exceptions import InvalidTask, TaskException

from .conf import ENV_QUEUE_PREFIX, ENV_QUEUE_URLS, ENV_TABLE

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


class TamperedArguments(InvalidTask):
    """A result's stored arguments are not those its signed message was sent for."""


class SigningKeyUnavailable(TaskException):
    """The secret holding the message signing key could not be read."""


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


class ResourceNotFound(ImproperlyConfigured):
    """The results table or a task queue does not exist where the settings point."""


def missing_table(table_name: str, region: str | None) -> ResourceNotFound:
    """The error for a results table that is not there, saying which settings name it."""
    return ResourceNotFound(
        f"DynamoDB table {table_name!r} does not exist in {region or 'the configured region'}: "
        f"set OPTIONS['TABLE_NAME'] or {ENV_TABLE} to the stack's ResultsTableName output "
        "(and the region to the stack's), or deploy the stack."
    )


def missing_queue(
    sqs_queue: str, queue_name: str, region: str | None, *, configured_url: bool
) -> ResourceNotFound:
    """The error for a task queue that is not there, saying which settings name it."""
    fix = (
        f"fix OPTIONS['QUEUE_URLS'][{queue_name!r}] or {ENV_QUEUE_URLS} (the stack's QueueUrls "
        "output)"
        if configured_url
        else f"set OPTIONS['QUEUE_NAME_PREFIX'] or {ENV_QUEUE_PREFIX} to the stack's QueuePrefix "
        f"output, and list {queue_name!r} in the stack's QueueNames"
    )
    return ResourceNotFound(
        f"SQS queue {sqs_queue!r} (Django queue {queue_name!r}) does not exist in "
        f"{region or 'the configured region'}: {fix}."
    )
