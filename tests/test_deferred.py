"""run_after of any length: never early, and due tasks run, with the clock moved, not waited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus

from sqs_tasks.testing import Stack, drain
from tests import tasks


@pytest.mark.parametrize(
    ("wait", "checks"),
    [
        (timedelta(minutes=20), [timedelta(minutes=16), timedelta(minutes=19, seconds=50)]),
        (
            timedelta(days=3),
            [timedelta(minutes=16), timedelta(hours=6), timedelta(days=2, hours=23)],
        ),
    ],
    ids=["20-minutes", "3-days"],
)
def test_deferred_task_never_runs_early(
    stack: Stack, time_machine: Any, wait: timedelta, checks: list[timedelta]
) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=True)
    run_after = start + wait
    result = tasks.count.using(run_after=run_after).enqueue("deferred")

    for offset in checks:
        time_machine.move_to(start + offset, tick=True)
        drain()
        result.refresh()
        assert tasks.runs["deferred"] == 0, f"ran early, at +{offset}"
        assert result.status == TaskResultStatus.READY

    time_machine.move_to(run_after + timedelta(minutes=15, seconds=1), tick=True)
    drain()
    result.refresh()

    assert tasks.runs["deferred"] == 1
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= run_after
    assert result.task.run_after == run_after
