"""Running tasks: the attempt at one message, the Lambda handlers, and the worker outside Lambda.

- `attempt`: claim a message's result, run the task as Django does, record the outcome.
- `handler`, `dead_letters`: the Lambda handlers (entry points in `lambda_handler`), with
  `boot`, `claim_ahead` and the Lambda-shaped `events`.
- `poller` (`Worker`), `batch`, `heartbeat`, `settle`, `slots`, `context`: the same handler
  fed by long polling, for `sqs_tasks_worker`, `drain()` and the local mapping emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .poller import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    # Lazy: the handlers' modules import this package, and need nothing of the poller.
    if name == "Worker":
        from .poller import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
