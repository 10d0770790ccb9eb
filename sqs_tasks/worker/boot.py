"""Boot Django, Powertools logging and the DynamoDB client once per Lambda container."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import IO

import django
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from django.apps import apps

from .attempt import TaskLogFilter


def setup_django() -> None:
    """Set Django up from DJANGO_SETTINGS_MODULE, once."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise RuntimeError("Set DJANGO_SETTINGS_MODULE to your project's settings module.")
    if not apps.ready:
        django.setup()


def configure_logging(stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line, the task's own included, as Powertools JSON with the task's id."""
    from aws_lambda_powertools import Logger

    logger = Logger(logger_handler=logging.StreamHandler(stream or sys.stdout))
    handler = logger.registered_handler
    handler.addFilter(TaskLogFilter())
    root = logging.getLogger()
    # Lambda's runtime puts a plain-text handler on the root logger; JSON replaces it.
    root.handlers = [handler]
    root.setLevel(logger.log_level)
    return handler


def warm_clients() -> None:
    """Make each SQSBackend's DynamoDB client, which every task uses, during the init phase.

    AWS advises making SDK clients outside the handler: the first invocation then starts at
    once, and an environment Lambda initialises ahead of need (or provisioned concurrency)
    carries them ready. The SQS client, used only by retries and tasks that enqueue, waits.
    """
    from django.tasks import task_backends

    from ..backend import SQSBackend

    for backend in task_backends.all():
        if isinstance(backend, SQSBackend):
            backend.client("dynamodb")


def start() -> None:
    """What each entry point does once per container: Django, and in Lambda its logs and clients."""
    setup_django()
    if in_lambda():
        configure_logging()
        warm_clients()


def in_lambda() -> bool:
    """Whether this process is a Lambda execution environment."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


# A BatchProcessor holds the batch it is working on: one per thread (Lambda runs one
# invocation at a time; sqs_tasks_worker and the local emulator run batches on threads).
_threads = threading.local()


def batch_processor() -> BatchProcessor:
    """This thread's processor; an all-failed batch is reported, not raised."""
    processor: BatchProcessor | None = getattr(_threads, "processor", None)
    if processor is None:
        processor = _threads.processor = BatchProcessor(
            event_type=EventType.SQS, raise_on_entire_batch_failure=False
        )
    return processor
