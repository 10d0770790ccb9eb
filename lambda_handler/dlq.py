"""Lambda entry point of the dead-letter function: Django boots once per container, at import."""

from sqs_tasks.worker.boot import start

start()

from sqs_tasks.worker.dead_letters import LeaseLive, handler, record_handler  # noqa: E402

__all__ = ["LeaseLive", "handler", "record_handler"]
