"""manage.py sqs_tasks_worker: run tasks outside Lambda through the Lambda handler's code path."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.tasks.exceptions import InvalidTaskBackend

from sqs_tasks.worker.poller import MAX_BATCH_SIZE, MAX_WAIT_TIME, Worker


class Command(BaseCommand):
    help = (
        "Long-poll the backend's SQS queues and run each batch through lambda_handler.handler, "
        "as the Lambda event source mapping would. SIGTERM or SIGINT stops it cleanly: running "
        "tasks finish, messages not started are handed back at once; a second signal exits now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default)")
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="QUEUE",
            help="a Django queue name to poll; repeat for more (default: all the backend's QUEUES)",
        )
        parser.add_argument(
            "--concurrency", type=int, default=1, help="batches run at once, on threads"
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=MAX_BATCH_SIZE,
            help=f"messages per ReceiveMessage and per handler call, 1-{MAX_BATCH_SIZE}",
        )
        parser.add_argument(
            "--wait-time",
            type=int,
            default=MAX_WAIT_TIME,
            help=f"long-poll seconds, 0-{MAX_WAIT_TIME}; also bounds how long a stop waits",
        )
        parser.add_argument(
            "--visibility-timeout",
            type=int,
            default=None,
            help="seconds a received batch stays hidden (default: the queue's own)",
        )
        parser.add_argument(
            "--until-empty",
            action="store_true",
            help=(
                "exit once every queue is empty and no batch is running: 0, or 1 if any message "
                "failed (the handler could not finish it; it is still on its queue)"
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            worker = Worker(
                options["backend"],
                options["queues"],
                concurrency=options["concurrency"],
                batch_size=options["batch_size"],
                wait_time=options["wait_time"],
                visibility_timeout=options["visibility_timeout"],
                until_empty=options["until_empty"],
            )
        except InvalidTaskBackend as e:
            raise CommandError(f"Unknown task backend {options['backend']!r} ({e}).") from e
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        except ValueError as e:
            raise CommandError(f"{str(e)[:1].upper()}{str(e)[1:]}.") from e
        if options["verbosity"] >= 2:
            self._log_to_stderr()
        try:
            worker.prepare()  # Before saying "polling": the queues are there and reachable.
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        except ValueError as e:  # A queue's visibility timeout the worker cannot use.
            raise CommandError(f"{str(e)[:1].upper()}{str(e)[1:]}.") from e
        except NoRegionError as e:
            raise CommandError(
                f"No AWS region for task backend {worker.backend!r}: set AWS_DEFAULT_REGION "
                "(or AWS_REGION), or OPTIONS['REGION_NAME']."
            ) from e
        except (BotoCoreError, ClientError) as e:
            # Nothing was received yet: say what and where, in one line.
            raise CommandError(
                f"Cannot reach SQS for task backend {worker.backend!r}: {e} (check "
                "OPTIONS['ENDPOINT_URL'], the region and the AWS credentials)."
            ) from e
        self._say(
            f"Worker {worker.name}: polling {', '.join(worker.queue_names)} of backend "
            f"{worker.backend!r} (concurrency {worker.concurrency}, batch size "
            f"{worker.batch_size}, wait {worker.wait_time} s)."
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if worker.stopping:
                # Messages in flight reappear after their visibility timeout; none is lost.
                sys.stderr.write(f"{name} again: exiting now.\n")
                sys.stderr.flush()
                os._exit(1)
            worker.stop()
            self._say(f"{name}: stopping; running tasks finish, the rest is handed back.")

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            stats = worker.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self._say(f"Stopped: {stats.summary()}.")
        if worker.crashed:
            raise CommandError("A queue poller crashed: see the log.")
        if worker.until_empty and stats.backed_off:
            raise CommandError(
                f"{stats.backed_off} messages failed (see the log): they are still on their "
                "queues, to be delivered again after their backoff."
            )

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _log_to_stderr(self) -> None:
        package = logging.getLogger("sqs_tasks")
        package.setLevel(logging.INFO)
        if not logging.getLogger().handlers and not package.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            package.addHandler(handler)
