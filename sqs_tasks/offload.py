"""The bounded thread pools the backend's async methods run their AWS requests on.

Django's default async methods run the sync one under sync_to_async(thread_sensitive=True):
every call from an event loop takes its turn on one shared thread, so 100 concurrent
aenqueue() calls take 100 enqueue latencies. The requests themselves touch no ORM and no
thread-bound state (botocore clients are thread-safe), so they run here on a pool per backend
alias as wide as its clients' connection pool (CLIENT_CONFIG max_pool_connections, botocore's
10 by default): wider would only open connections the pool then throws away. Signals are not
sent here: the backend sends them on the event loop with Signal.asend(), which runs sync
receivers on the thread-sensitive thread, where Django's own aenqueue() runs them.

enqueue() writes its item on a second pool per alias (start()) while its own thread sends the
message, so one enqueue costs one round trip; enqueue_many() sends there the messages of each
batch of items written while it writes the next. A pool of its own: an aenqueue() holding a
thread of the first pool waits on that work, which must never wait for a thread of that pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

_pools: dict[tuple[str, str], ThreadPoolExecutor] = {}
_lock = threading.Lock()


def _forget_at_fork() -> None:
    """In a forked child: the parent's pool threads are not there, so their pools must go."""
    global _lock
    _lock = threading.Lock()
    _pools.clear()


# A pool copied across fork() believes its idle threads still wait: work sent to it would
# never run (an enqueue in a worker process forked after the parent enqueued would hang).
os.register_at_fork(after_in_child=_forget_at_fork)


def pool(alias: str, width: int, kind: str = "async") -> ThreadPoolExecutor:
    """The kind pool of backend alias, made on first use with width threads (made on demand)."""
    with _lock:
        found = _pools.get((kind, alias))
        if found is None:
            found = ThreadPoolExecutor(width, thread_name_prefix=f"sqs-tasks-{kind}-{alias}")
            _pools[kind, alias] = found
        return found


def start[**P, R](
    alias: str, width: int, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> Future[R]:
    """Start fn(*args, **kwargs) on alias's second pool, in a copy of the caller's context."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return pool(alias, width, "overlap").submit(call)


async def run[**P, R](
    alias: str, width: int, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Await fn(*args, **kwargs) run on alias's pool, in a copy of the caller's context."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool(alias, width), call)
