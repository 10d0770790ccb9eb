"""manage.py sqs_tasks_retry <id>: run a FAILED task again, as a new result."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_tasks.ops.base import OperationError, sqs_backend
from sqs_tasks.ops.requeue import retry


class Command(BaseCommand):
    help = (
        "Enqueue a FAILED result's task again as a NEW result, with the same args, kwargs, "
        "queue and priority; the failed result is left as it is. Prints the new result's id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("result_id", help="the id of a FAILED TaskResult")
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = sqs_backend(options["backend"])
            item, result = retry(backend, options["result_id"])
        except OperationError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(
            f"Enqueued {result.id}: a retry of {item['id']['S']} "
            f"({result.task.module_path} on queue {result.task.queue_name!r}, "
            f"priority {result.task.priority})."
        )
