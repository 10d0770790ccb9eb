"""Django set-up for the suite, and an embedded AWS (moto server over HTTP) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.tasks import default_task_backend  # noqa: E402

from sqs_tasks.aws import retries  # noqa: E402
from sqs_tasks.local.tools import SamTools, ToolsMissing  # noqa: E402
from sqs_tasks.testing import Stack, aws_stack  # noqa: E402
from tests import tasks  # noqa: E402


@pytest.fixture
def stack() -> Iterator[Stack]:
    """moto server on 127.0.0.1 with the backend's table and queues."""
    tasks.runs.clear()
    tasks.order.clear()
    with aws_stack() as made:
        yield made


@pytest.fixture
def calls(stack: Stack) -> Iterator[list[str]]:
    """Every AWS operation the default backend's own clients make, by name, in order."""
    made: list[str] = []

    def count(model: Any, **kwargs: Any) -> None:
        made.append(model.name)

    backend: Any = default_task_backend
    clients = [backend.client(service) for service in ("dynamodb", "sqs", "scheduler")]
    for client in clients:
        client.meta.events.register("before-call.*.*", count)
    yield made
    for client in clients:
        client.meta.events.unregister("before-call.*.*", count)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The backoff pauses taken, recorded instead of slept."""
    taken: list[int] = []
    monkeypatch.setattr(retries, "pause", taken.append)
    return taken


def queue_depth(queue: str = "default") -> int:
    """Messages in the queue, visible and delayed."""
    backend: Any = default_task_backend
    attributes = backend.client("sqs").get_queue_attributes(
        QueueUrl=backend.queue.url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


@pytest.fixture(scope="session")
def sam_tools() -> SamTools:
    """The sam CLI, aws-sam-translator and cfn-lint (.venv-sam), or skip with how to get them."""
    try:
        return SamTools.find(Path(__file__).resolve().parents[1])
    except ToolsMissing as e:
        pytest.skip(f"{e} (CI runs bin/check-infra before the tests)")
