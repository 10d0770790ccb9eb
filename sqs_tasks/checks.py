"""The backend's system checks: configuration that would make every enqueue fail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core import checks

from .conf import ENV_QUEUE_PREFIX, ENV_TABLE

if TYPE_CHECKING:
    from .backend import SQSBackend


def backend_errors(backend: SQSBackend) -> list[checks.CheckMessage]:
    """A missing table, unmapped queues, an empty QUEUES list."""
    errors: list[checks.CheckMessage] = []
    if not backend.config.table_name:
        errors.append(
            checks.Error(
                f"Task backend {backend.alias!r} has no results table.",
                hint=f"Set OPTIONS['TABLE_NAME'] or the {ENV_TABLE} environment variable.",
                id="sqs_tasks.E001",
            )
        )
    if backend.config.queue_name_prefix is None:
        missing = sorted(backend.queues - set(backend.config.queue_urls))
        if missing:
            errors.append(
                checks.Error(
                    f"Task backend {backend.alias!r} has no SQS queue for "
                    f"{', '.join(map(repr, missing))}.",
                    hint=(
                        "Map each of QUEUES in OPTIONS['QUEUE_URLS'], or set "
                        f"OPTIONS['QUEUE_NAME_PREFIX'] or {ENV_QUEUE_PREFIX}."
                    ),
                    id="sqs_tasks.E002",
                )
            )
    if not backend.queues:
        errors.append(
            checks.Error(
                f"Task backend {backend.alias!r} has an empty QUEUES list.",
                hint="List the Django queue names this backend sends to.",
                id="sqs_tasks.E003",
            )
        )
    return errors
