"""Tasks of the example project."""

from __future__ import annotations

from typing import Any

from django.tasks import TaskContext, task


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
