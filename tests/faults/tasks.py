"""Tasks the fault suite enqueues: each run is counted per result id, safely across threads."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter

from django.tasks import TaskContext, task

from sqs_tasks import retry

_lock = threading.Lock()
runs: Counter[str] = Counter()  # result id (or marker) -> times a task body started
threads: set[str] = set()  # names of the threads that ran task bodies


def count_run(key: str) -> None:
    """Record one run of key's body; safe to call from any worker thread."""
    with _lock:
        runs[key] += 1
        threads.add(threading.current_thread().name)


def reset() -> None:
    """Forget every run recorded so far."""
    with _lock:
        runs.clear()
        threads.clear()


@task(takes_context=True)
def tally(context: TaskContext[..., int], n: int) -> int:
    """Count this run against its result id; return n doubled."""
    count_run(context.task_result.id)
    return n * 2


@task(takes_context=True)
def report_attempt(context: TaskContext[..., int]) -> int:
    """Count this run; return the attempt that ran it."""
    count_run(context.task_result.id)
    return context.attempt


@task(takes_context=True)
def fail_on_purpose(context: TaskContext[..., None], message: str) -> None:
    """Count this run, then fail the way task code fails."""
    count_run(context.task_result.id)
    raise ValueError(message)


@task(takes_context=True)
def hang_worker(context: TaskContext[..., dict[str, int]], hang_attempts: int) -> dict[str, int]:
    """Stand-in for a task that takes its worker down (OOM, timeout) on early attempts.

    Up to hang_attempts it prints STARTED to stdout and blocks on stdin until the test
    SIGKILLs the worker process (or closes the pipe); later attempts return at once.
    """
    count_run(context.task_result.id)
    if context.attempt <= hang_attempts:
        print(f"STARTED {context.task_result.id} attempt={context.attempt}", flush=True)
        sys.stdin.read()  # Never returns while the test holds the pipe: it kills us.
        raise RuntimeError("worker was released instead of killed")
    return {"attempt": context.attempt, "pid": os.getpid()}


def pwned(how: str) -> None:
    """What a smuggled payload would call: never reached if nothing is unpickled or run."""
    count_run(f"pwned:{how}")


# Text UTF-8 cannot carry, as tasks come by it: a file name decoded with surrogateescape, and
# JSON holding half an emoji.
UNENCODABLE = {
    "file name": b"report-\xff.csv".decode("utf-8", "surrogateescape"),
    "half an emoji": json.loads('"\\ud83d"'),
}


@task(takes_context=True)
def fail_unencodably(context: TaskContext[..., None], shape: str) -> None:
    """Count this run, then fail with an error whose text holds a lone surrogate."""
    count_run(context.task_result.id)
    raise ValueError(f"cannot open {UNENCODABLE[shape]}")


@retry(max_attempts=2, retry_backoff=1, retry_backoff_max=1)
@task(takes_context=True)
def fail_unencodably_twice(context: TaskContext[..., None], shape: str) -> None:
    """fail_unencodably, retried once."""
    count_run(context.task_result.id)
    raise ValueError(f"cannot open {UNENCODABLE[shape]}")


@retry(max_attempts=3, retry_backoff=60, retry_backoff_max=60)
@task(takes_context=True)
def succeed_on_third(context: TaskContext[..., int]) -> int:
    """Count this run; fail attempts 1 and 2 (retried 30 to 60 s later), return on the 3rd."""
    count_run(context.task_result.id)
    if context.attempt < 3:
        raise ConnectionError(f"attempt {context.attempt} failed on purpose")
    return context.attempt


killed = threading.Event()  # set by the test once Lambda would have killed the invocation


@task(takes_context=True, priority=10)
def hang_until_killed(context: TaskContext[..., None], returns: bool) -> None:
    """Count this run, then hang until the test kills its invocation; then return if returns.

    KeyboardInterrupt, which the worker records nowhere, stands in for the kill.
    """
    count_run(context.task_result.id)
    killed.wait(timeout=60)
    if not returns:
        raise KeyboardInterrupt("killed with its invocation")


@retry(max_attempts=2, retry_backoff=1, retry_backoff_max=1)
@task(takes_context=True, priority=10)
def hang_first_attempt(context: TaskContext[..., int], returns: bool) -> int:
    """hang_until_killed on attempt 1, retried (1 s later); attempt 2 returns its number."""
    count_run(context.task_result.id)
    if context.attempt == 1:
        killed.wait(timeout=60)
        if not returns:
            raise KeyboardInterrupt("killed with its invocation")
    return context.attempt
