"""What the operator commands share: the backend, queue and result they name, or why not.

The operations themselves live in sqs_tasks.ops.reports (result, failures) and sqs_tasks.ops.requeue
(retry, redrive), apart from the management commands (which only parse options and print)
so each piece can be called from a shell or a script as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer
from django.core.exceptions import ImproperlyConfigured
from django.tasks.exceptions import InvalidTaskBackend

from ..results import Item

if TYPE_CHECKING:
    from ..backend import SQSBackend

_deserializer = TypeDeserializer()


def plain(item: Item) -> dict[str, Any]:
    """A result item as Python values (numbers as Decimal), for reading, not for writing back."""
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


class OperationError(Exception):
    """An operation that cannot be done; the message says why, for the operator."""


def sqs_backend(alias: str) -> SQSBackend:
    """The SQSBackend of alias, or OperationError."""
    from django.tasks import task_backends

    from ..backend import SQSBackend

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend as e:
        raise OperationError(f"Unknown task backend {alias!r}: {e}") from e
    if not isinstance(backend, SQSBackend):
        raise OperationError(f"Task backend {alias!r} is not an sqs_tasks.SQSBackend.")
    return backend


def check_queue(backend: SQSBackend, queue_name: str) -> None:
    """Refuse a queue name the backend does not have."""
    if queue_name not in backend.queues:
        raise OperationError(
            f"Unknown queue {queue_name!r}: backend {backend.alias!r} has "
            f"{', '.join(sorted(backend.queues))}."
        )


def load_item(backend: SQSBackend, result_id: str) -> Item:
    """The result item of result_id (a consistent read), or OperationError."""
    item: Item | None = backend.store.get(result_id)
    if item is None:
        raise OperationError(
            f"No result {result_id!r} in table {backend.store.table_name!r} "
            f"(backend {backend.alias!r})."
        )
    return item


def queue_url(backend: SQSBackend, queue_name: str) -> str:
    """The SQS queue URL of one of the backend's queues, or OperationError saying why not."""
    check_queue(backend, queue_name)
    try:
        return backend.queue.url(queue_name)
    except ImproperlyConfigured as e:
        raise OperationError(str(e)) from e
