"""sqs-tasks: a production backend for Django's tasks framework on SQS, DynamoDB and Lambda."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import SQSBackend
    from .task import SQSTask, retry

__all__ = ["SQSBackend", "SQSTask", "retry"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing sqs_tasks.testing (a pytest plugin) does not import Django's tasks.
    if name == "SQSBackend":
        from .backend import SQSBackend

        return SQSBackend
    if name in {"SQSTask", "retry"}:
        from . import task

        return getattr(task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
