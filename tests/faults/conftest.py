"""Fixtures of the fault suite: fresh run counts and a shared clock (aws_stack() makes moto
apply conditional writes atomically, as DynamoDB does)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.faults import tasks


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
