"""manage.py sqs_tasks_result <id>: one result, with its last traceback."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_tasks.ops.base import OperationError, load_item, sqs_backend
from sqs_tasks.ops.reports import describe_item


class Command(BaseCommand):
    help = (
        "Show one task result: status, task, queue, attempts, worker ids, timestamps, and its "
        "return value or its errors with the last traceback."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("result_id", help="the TaskResult id")
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = sqs_backend(options["backend"])
            item = load_item(backend, options["result_id"])
        except OperationError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(describe_item(item))
