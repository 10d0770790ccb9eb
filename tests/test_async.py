"""The backend's async methods: concurrent calls from one event loop make their requests at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.signals import task_enqueued

from sqs_tasks.testing import Stack
from tests import tasks

# Long enough never to break on a slow machine; a barrier that breaks means the calls did not
# overlap (one at a time, nine of ten can never meet).
MEET_TIMEOUT = 30


def _backend() -> Any:
    return default_task_backend


@contextmanager
def meeting(service: str, operation: str, parties: int) -> Iterator[threading.Barrier]:
    """Each call of operation waits, before it is sent, until `parties` calls are waiting."""
    barrier = threading.Barrier(parties)

    def wait(**kwargs: Any) -> None:
        barrier.wait(MEET_TIMEOUT)

    client = _backend().client(service)
    event = f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(event, wait)
    try:
        yield barrier
    finally:
        client.meta.events.unregister(event, wait)


def test_concurrent_aenqueue_calls_overlap_and_send_task_enqueued_as_django_does(
    stack: Stack,
) -> None:
    width = _backend().async_width
    announced: list[tuple[str, str]] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        announced.append((task_result.id, threading.current_thread().name))

    async def enqueue_all() -> list[Any]:
        return await asyncio.gather(*(tasks.add.aenqueue(i, 1) for i in range(2 * width)))

    task_enqueued.connect(receiver)
    try:
        with meeting("dynamodb", "PutItem", width) as barrier:
            results = asyncio.run(enqueue_all())
    finally:
        task_enqueued.disconnect(receiver)

    assert not barrier.broken
    assert sorted(i for i, _ in announced) == sorted(r.id for r in results)
    # Sync receivers run where Django's own aenqueue runs them, never on the request pool.
    assert not any(name.startswith("sqs-tasks-async") for _, name in announced)
    assert all(r.status == TaskResultStatus.READY for r in results)


def test_concurrent_aget_result_calls_overlap(stack: Stack) -> None:
    width = _backend().async_width
    made = _backend().enqueue_many([(tasks.add, [i, 1], {}) for i in range(width)])

    async def read_all() -> list[Any]:
        return await asyncio.gather(*(_backend().aget_result(r.id) for r in made))

    with meeting("dynamodb", "GetItem", width):
        found = asyncio.run(read_all())

    assert [r.id for r in found] == [r.id for r in made]
    assert [r.args for r in found] == [[i, 1] for i in range(width)]


def test_aenqueue_many_announces_each_result_on_the_loop_side(stack: Stack) -> None:
    announced: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        if not threading.current_thread().name.startswith("sqs-tasks-async"):
            announced.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        results = asyncio.run(_backend().aenqueue_many([(tasks.add, [1, 2], {})] * 3))
    finally:
        task_enqueued.disconnect(receiver)

    assert announced == [r.id for r in results]
