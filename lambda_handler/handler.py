"""Lambda entry point of the worker function: Django boots once per container, at import."""

from sqs_tasks.worker.boot import start

start()

from sqs_tasks.worker.handler import MIN_REMAINING, handler, record_handler  # noqa: E402

__all__ = ["MIN_REMAINING", "handler", "record_handler"]
