"""manage.py sqs_tasks_rotate_key: a new message signing key, the old one kept as a fallback."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_tasks.ops.base import OperationError, sqs_backend
from sqs_tasks.ops.signing import DRAIN_DAYS, retire_fallbacks, rotate


class Command(BaseCommand):
    help = (
        "Rotate the key that signs task messages (the SIGNING_SECRET in Secrets Manager): a new "
        "key signs, the old ones still verify. Containers pick the new key up within 5 minutes, "
        f"or at the first message it signed. After {DRAIN_DAYS} days (queue and dead-letter "
        "retention) run it again with --retire-fallbacks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--retire-fallbacks",
            action="store_true",
            help=f"drop the old keys instead (only {DRAIN_DAYS} days after the last rotation)",
        )
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = sqs_backend(options["backend"])
            if options["retire_fallbacks"]:
                dropped = retire_fallbacks(backend)
                self.stdout.write(f"Retired {dropped} fallback key(s) of {backend.alias!r}.")
                return
            rotated = rotate(backend)
        except OperationError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(
            f"Rotated the signing key of {backend.alias!r}: {len(rotated.fallbacks)} older key(s) "
            f"still verify; retire them in {DRAIN_DAYS} days with --retire-fallbacks."
        )
