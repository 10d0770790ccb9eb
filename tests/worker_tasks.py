"""Tasks for the worker and operator-command tests.

`note` and `hold` record each run by appending the result id to a log file, so a test (or
a worker in another process) can prove every result ran exactly once.
"""

from __future__ import annotations

import os
import threading

from django.tasks import TaskContext, task

# For workers in this process: the concurrency test's meeting point, the stop test's gate.
barrier = threading.Barrier(3)
block_started = threading.Event()
block_release = threading.Event()
# Services `fragile` finds down.
broken: set[str] = set()

HOLD_TIMEOUT_S = 30.0


def reset() -> None:
    """Forget what earlier tests did."""
    barrier.reset()
    block_started.clear()
    block_release.clear()
    broken.clear()


def _append(log: str, line: str) -> None:
    # One write() of a short line to an O_APPEND file: lines from several processes never mix.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@task(takes_context=True)
def note(context: TaskContext, log: str) -> str:
    """Append this result's id to log."""
    _append(log, context.task_result.id)
    return context.task_result.id


@task(takes_context=True, queue_name="emails")
def note_email(context: TaskContext, log: str) -> str:
    """note(), on the emails queue."""
    _append(log, context.task_result.id)
    return context.task_result.id


@task(takes_context=True, priority=10)
def hold(context: TaskContext, log: str, fifo: str, gate: str) -> str:
    """Say "started" on the named pipe fifo, wait until the file gate exists, then note.

    Priority 10: it runs first in its batch, so the rest of the batch waits behind it.
    """
    result_id = context.task_result.id
    try:
        # Non-blocking: with nobody reading (the test is over) there is nobody to tell.
        pipe = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        pass
    else:
        try:
            os.write(pipe, f"{result_id}\n".encode())
        finally:
            os.close(pipe)
    pause = threading.Event()
    for _ in range(int(HOLD_TIMEOUT_S / 0.05)):
        if os.path.exists(gate):
            break
        pause.wait(0.05)
    else:
        raise TimeoutError(f"{gate} never appeared")
    _append(log, result_id)
    return result_id


@task
def rendezvous() -> int:
    """Meet two other rendezvous() runs: only possible when three run at once."""
    return barrier.wait(timeout=20)


@task(priority=10)
def block() -> str:
    """Run until the test says so (at most 30 s)."""
    block_started.set()
    if not block_release.wait(HOLD_TIMEOUT_S):
        raise TimeoutError("never released")
    return "released"


@task
def fragile(service: str) -> str:
    """Fail while service is broken."""
    if service in broken:
        raise ConnectionError(f"{service} is down")
    return f"{service} ok"


@task(takes_context=True)
def fan_out(context: TaskContext, log: str, count: int) -> int:
    """Enqueue count note() runs one at a time (a trickle for the worker), then note itself."""
    for _ in range(count):
        note.enqueue(log)
    _append(log, context.task_result.id)
    return count
