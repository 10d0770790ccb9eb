"""The smoke check of a project's stack: one no-op task on each queue of its TASKS backend."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from .expectations import Expected, Tracker, returns


@task
def ping(queue: str) -> str:
    """Answers; run by the emulated mappings with the project's settings."""
    return f"pong from {queue}"


def enqueue_smoke(tracker: Tracker) -> list[str]:
    """ping() on each queue of the default backend, as the project's web app would enqueue."""
    from django.tasks import default_task_backend

    backend: Any = default_task_backend
    ids = []
    for queue in sorted(backend.queues):
        result = ping.using(queue_name=queue).enqueue(queue)
        tracker.expect(
            result.id, Expected(f"ping() on {queue}", "SUCCESSFUL", returns(f"pong from {queue}"))
        )
        ids.append(result.id)
    return ids
