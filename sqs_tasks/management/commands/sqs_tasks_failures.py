"""manage.py sqs_tasks_failures: the newest failures per queue, from the failures index."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_tasks.ops.base import OperationError, check_queue, sqs_backend
from sqs_tasks.ops.reports import failures_report


class Command(BaseCommand):
    help = (
        "List the most recent FAILED results of each queue, newest first. Reads the sparse "
        "`failures` index (one Query per shard), never scans the table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="QUEUE",
            help="a Django queue name; repeat for more (default: all the backend's QUEUES)",
        )
        parser.add_argument("--limit", type=int, default=20, help="failures per queue (20)")
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError(f"--limit must be at least 1, not {options['limit']}.")
        try:
            backend = sqs_backend(options["backend"])
            queue_names = options["queues"] or sorted(backend.queues)
            for queue_name in queue_names:
                check_queue(backend, queue_name)
        except OperationError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(failures_report(backend, queue_names, options["limit"]))
