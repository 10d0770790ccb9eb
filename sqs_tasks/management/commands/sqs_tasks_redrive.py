"""manage.py sqs_tasks_redrive --queue q: move dead letters back to their queue."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_tasks.ops.base import OperationError, sqs_backend
from sqs_tasks.ops.requeue import redrive


class Command(BaseCommand):
    help = (
        "Move the messages of a queue's dead-letter queue (its RedrivePolicy's "
        "deadLetterTargetArn) back to the queue, 10 at a time: send, then delete. A result "
        "the dead-letter handler already marked FAILED is not run again by its message: use "
        "sqs_tasks_retry for those."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", required=True, help="the Django queue name")
        parser.add_argument("--max", type=int, default=None, help="move at most this many")
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max"] is not None and options["max"] < 1:
            raise CommandError(f"--max must be at least 1, not {options['max']}.")
        try:
            backend = sqs_backend(options["backend"])
            done = redrive(backend, options["queue"], options["max"])
        except OperationError as e:
            raise CommandError(str(e)) from e
        noun = "message" if done.moved == 1 else "messages"
        self.stdout.write(
            f"Moved {done.moved} {noun} from {done.dead_letter_queue} to {done.queue}; "
            f"{done.failed} could not be sent."
        )
        if done.failed:
            raise CommandError(f"{done.failed} dead letters could not be sent: see the log.")
