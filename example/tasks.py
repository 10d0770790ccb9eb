"""Tasks of the example project."""

from __future__ import annotations

import asyncio
from typing import Any

from django.tasks import TaskContext, task

from sqs_tasks import retry


@task
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task(priority=10)
def shout(text: str) -> str:
    """Upper-case a text, ahead of lower-priority work."""
    return text.upper()


@task
def fail(reason: str) -> None:
    """Always fail, to show a FAILED result."""
    raise ValueError(reason)


@task(takes_context=True)
def whoami(context: TaskContext[..., Any]) -> dict[str, object]:
    """Report the result id and attempt this run sees."""
    return {"id": context.task_result.id, "attempt": context.attempt}


@task
def fan_out(n: int) -> list[str]:
    """Enqueue n follow-up tasks from inside a task."""
    return [add.enqueue(i, i).id for i in range(n)]


@retry(max_attempts=3, retry_backoff=1, retry_on=(ConnectionError,))
@task(takes_context=True)
def flaky(context: TaskContext[..., Any], name: str) -> str:
    """Fail the first attempt with a retryable error, succeed on the next."""
    if context.attempt == 1:
        raise ConnectionError(f"{name} is not answering yet")
    return f"{name} answered on attempt {context.attempt}"


@task
async def greet(name: str) -> str:
    """An async task function: the worker runs it to completion like a sync one."""
    await asyncio.sleep(0)
    return f"Hello, {name}!"


@task
def noop(n: int) -> int:
    """Do nothing but hand n back: the unit of `sqs-tasks local --tasks N`."""
    return n
