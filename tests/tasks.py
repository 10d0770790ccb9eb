"""Tasks the tests enqueue: each records its runs, so a test can count executions."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter

from django.tasks import TaskContext, task

from sqs_tasks import retry

runs: Counter[str] = Counter()
order: list[str] = []


@task
def add(a: int, b: int) -> int:
    runs["add"] += 1
    return a + b


@task
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    runs["echo"] += 1
    return {"args": list(args), "kwargs": kwargs}


@task
def count(key: str) -> str:
    runs[key] += 1
    return key


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task
def exit_task() -> None:
    raise SystemExit(3)


@task
def interrupt() -> None:
    raise KeyboardInterrupt


@task
def bad_return() -> object:
    return {1, 2, 3}


@task(takes_context=True)
def with_context(context: TaskContext) -> dict[str, object]:
    return {"id": context.task_result.id, "attempt": context.attempt}


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(queue_name="emails")
def send_email(to: str) -> str:
    return f"sent to {to}"


@task
def record(name: str) -> str:
    order.append(name)
    return name


@task
def spawn(n: int) -> list[str]:
    return [add.enqueue(i, 1).id for i in range(n)]


not_a_task = print


@task
def chatty(word: str) -> str:
    logging.getLogger("tests.tasks").info("saying %s", word)
    return word


@retry(max_attempts=3, retry_backoff=1, retry_backoff_max=2)
@task
def flaky(failures: int) -> int:
    """Fail the first `failures` runs, then succeed."""
    runs["flaky"] += 1
    if runs["flaky"] <= failures:
        raise ConnectionError(f"flaky run {runs['flaky']}")
    return runs["flaky"]


@retry(max_attempts=5, retry_on=(ConnectionError,))
@task
def picky() -> None:
    """Only connection errors are worth retrying; this raises something else."""
    runs["picky"] += 1
    raise PermissionError("not retried")


@retry(max_attempts=3, retry_backoff=1, retry_backoff_max=1)
@task
def charge(order: int) -> object:
    """Succeeds with a side effect, then returns what JSON cannot hold."""
    runs["charge"] += 1
    return {"order": order, "tags": {"paid"}}


@retry(max_attempts=3, retry_backoff=1, retry_backoff_max=1)
@task
def export() -> str:
    """Succeeds, then returns more than a result item may hold."""
    runs["export"] += 1
    return "x" * 500_000


@retry(max_attempts=3, retry_backoff=1, retry_backoff_max=1)
@task
def bulky_failure(blob: str, width: int) -> None:
    """Carries arguments near the item limit and fails with a long CJK message every time."""
    runs["bulky_failure"] += 1
    raise ValueError("错" * width)


# A long task without a long test: it runs until the test releases it.
hold_started = threading.Event()
hold_release = threading.Event()


@task
def hold() -> str:
    runs["hold"] += 1
    hold_started.set()
    hold_release.wait(timeout=60)
    return "released"
