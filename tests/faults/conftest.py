"""Fixtures of the fault suite: fresh run counts and a shared clock (aws_stack() makes moto
apply conditional writes atomically, as DynamoDB does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff
from django.tasks import default_task_backend

from sqs_tasks.testing import Stack
from tests.faults import tasks
from tests.faults.inject import Fault, Inject, Injection
from tests.faults.support import client


@pytest.fixture(autouse=True)
def _fresh_runs() -> Iterator[None]:
    tasks.reset()
    yield
    tasks.reset()


@pytest.fixture
def clock(time_machine: Any) -> Any:
    """The test's clock, ticking from now; moto (in this process) reads the same clock.

    clock.shift(timedelta) moves past SQS visibility timeouts and claim leases at once.
    """
    time_machine.move_to(datetime.now(UTC), tick=True)
    return time_machine


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's standard retry policy asked for, recorded instead of slept."""
    delays: list[float] = []
    computed = ExponentialBackoff.delay_amount

    def record(self: ExponentialBackoff, context: Any) -> float:
        delays.append(computed(self, context))
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", record)
    return delays


@pytest.fixture
def inject(stack: Stack, backoffs: list[float]) -> Iterator[Inject]:
    """inject(service, operation, fault, times=None, when=None): a started Injection."""
    started: list[Injection] = []

    def start(
        service: str,
        operation: str,
        fault: Fault,
        *,
        times: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Injection:
        injection = Injection(client(service), operation, fault, times, when).start()
        started.append(injection)
        return injection

    yield start
    for injection in started:
        injection.stop()


@pytest.fixture
def table_found(stack: Stack) -> None:
    """As after this thread's first enqueue: the table is known, so writes and sends overlap."""
    backend: Any = default_task_backend
    backend.producer.table_found = True
