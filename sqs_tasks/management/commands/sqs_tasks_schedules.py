"""manage.py sqs_tasks_schedules [list|sync] [--dry-run]: periodic tasks on EventBridge."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_tasks.ops.base import OperationError, sqs_backend
from sqs_tasks.ops.periodic import listing, sync, sync_plan


class Command(BaseCommand):
    help = (
        "List the backend's periodic tasks (OPTIONS['PERIODIC']) with their next and last "
        "firings, or sync them to the stack's schedule group: create, update and delete the "
        "periodic schedules it owns, never the one-time schedules of deferred tasks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", choices=["list", "sync"], default="list")
        parser.add_argument(
            "--dry-run", action="store_true", help="with sync: print the plan, change nothing"
        )
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = sqs_backend(options["backend"])
            if options["action"] == "list":
                self.stdout.write(listing(backend))
                return
            changes = sync_plan(backend)
            for change in changes:
                self.stdout.write(change.describe())
            if not changes:
                self.stdout.write("Periodic schedules: up to date.")
            elif options["dry_run"]:
                self.stdout.write(f"Dry run: {len(changes)} change(s) not made.")
            else:
                sync(backend, changes)
                self.stdout.write(f"Periodic schedules: {len(changes)} change(s) made.")
        except OperationError as e:
            raise CommandError(str(e)) from e
