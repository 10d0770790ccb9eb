"""Periodic tasks end to end on the embedded AWS: sync, fire as EventBridge Scheduler does, run."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.tasks import default_task_backend
from django.test import override_settings

from sqs_tasks.local.expectations import Tracker, judge
from sqs_tasks.local.periodic import expect_first_firings, sync_declared
from sqs_tasks.message import SCHEDULED_TIME
from sqs_tasks.periodic.declarations import SCHEDULE_PREFIX
from sqs_tasks.testing import aws_stack, drain
from tests import tasks

PERIODIC = {
    "tick": {"task": "tests.tasks.count", "schedule": "rate(5 minutes)", "args": ["tick"]},
    "paris": {
        "task": "tests.tasks.count",
        "schedule": "cron(30 2 * * ? *)",
        "timezone": "Europe/Paris",
        "args": ["paris"],
    },
}


@pytest.fixture
def periodic_stack() -> Iterator[Any]:
    """The suite's backend with PERIODIC declared, on an embedded AWS, its schedules synced."""
    tasks.runs.clear()
    declared = {"default": {**settings.TASKS["default"], "OPTIONS": {"PERIODIC": PERIODIC}}}
    with override_settings(TASKS=declared), aws_stack():
        call_command("sqs_tasks_schedules", "sync", stdout=io.StringIO())
        yield default_task_backend


def _results(backend: Any, name: str) -> list[Any]:
    items = backend.client("dynamodb").scan(TableName=backend.store.table_name)["Items"]
    ids = sorted(i["id"]["S"] for i in items if i["id"]["S"].startswith(f"{name}@"))
    return backend.get_results(ids)


def test_a_rate_schedule_fires_once_per_period_over_an_hour(periodic_stack: Any) -> None:
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        drain()
        drain()  # Nothing more is due: no firing is sent twice.

    results = _results(periodic_stack, "tick")
    assert len(results) == 12
    assert tasks.runs["tick"] == 12
    for result in results:
        scheduled = datetime.strptime(result.id.split("@")[1], "%Y-%m-%dT%H:%M:%SZ")
        scheduled = scheduled.replace(tzinfo=UTC)
        assert scheduled.timestamp() % 300 == 0
        assert start < scheduled <= start + timedelta(hours=1)
        assert result.status == "SUCCESSFUL" and result.return_value == "tick"
        assert result.started_at >= scheduled
    # The previous firing's result is one GetItem away: its id is computable.
    last = max(r.id for r in results)
    assert periodic_stack.get_result(last).status == "SUCCESSFUL"


def test_a_cron_in_paris_fires_at_local_time_across_the_autumn_change(periodic_stack: Any) -> None:
    # 2026-10-24 02:30 CEST = 00:30Z; 2026-10-25 02:30 CEST (the first of two) = 00:30Z;
    # 2026-10-26 02:30 CET = 01:30Z.
    client = periodic_stack.client("scheduler")
    group = periodic_stack.scheduler.group
    schedule = client.get_schedule(GroupName=group, Name=SCHEDULE_PREFIX + "paris")
    # Re-made inside the moved clock so its creation precedes the firings looked at.
    client.delete_schedule(GroupName=group, Name=SCHEDULE_PREFIX + "paris")
    with time_machine.travel(datetime(2026, 10, 23, 12, tzinfo=UTC), tick=False):
        client.create_schedule(
            **{k: schedule[k] for k in ("Name", "GroupName", "ScheduleExpression")},
            ScheduleExpressionTimezone="Europe/Paris",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={k: schedule["Target"][k] for k in ("Arn", "RoleArn", "Input")},
        )
    with time_machine.travel(datetime(2026, 10, 26, 12, tzinfo=UTC), tick=False):
        drain()

    ids = [r.id for r in _results(periodic_stack, "paris")]
    assert ids == [
        "paris@2026-10-24T00:30:00Z",
        "paris@2026-10-25T00:30:00Z",
        "paris@2026-10-26T01:30:00Z",
    ]


def test_duplicate_deliveries_of_a_firing_run_the_body_once(periodic_stack: Any) -> None:
    client = periodic_stack.client("scheduler")
    group = periodic_stack.scheduler.group
    target = client.get_schedule(GroupName=group, Name=SCHEDULE_PREFIX + "tick")["Target"]
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    at -= timedelta(minutes=at.minute % 5)
    body = target["Input"].replace(SCHEDULED_TIME, f"{at:%Y-%m-%dT%H:%M:%SZ}")
    url = periodic_stack.queue.url("default")
    for _ in range(3):
        periodic_stack.client("sqs").send_message(QueueUrl=url, MessageBody=body)

    drain()

    assert tasks.runs["tick"] == 1
    assert [r.status for r in _results(periodic_stack, "tick")] == ["SUCCESSFUL"]


def test_a_firing_at_a_time_the_schedule_never_fires_runs_nothing(periodic_stack: Any) -> None:
    client = periodic_stack.client("scheduler")
    group = periodic_stack.scheduler.group
    target = client.get_schedule(GroupName=group, Name=SCHEDULE_PREFIX + "tick")["Target"]
    off_grid = datetime.now(UTC).replace(second=7, microsecond=0)
    body = target["Input"].replace(SCHEDULED_TIME, f"{off_grid:%Y-%m-%dT%H:%M:%SZ}")
    periodic_stack.client("sqs").send_message(
        QueueUrl=periodic_stack.queue.url("default"), MessageBody=body
    )

    drain()

    assert tasks.runs["tick"] == 0
    assert _results(periodic_stack, "tick") == []
    assert json.loads(body)["kind"] == "periodic"


def test_sync_again_has_nothing_to_do_and_list_shows_each_task(
    periodic_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("sqs_tasks_schedules", "sync")
    call_command("sqs_tasks_schedules")

    out = capsys.readouterr().out
    assert "Periodic schedules: up to date." in out
    assert "tick" in out and "rate(5 minutes) UTC" in out
    assert "cron(30 2 * * ? *) Europe/Paris" in out


def test_a_periodic_task_that_is_not_a_task_is_a_check_error() -> None:
    bad = {"oops": {"task": "tests.tasks.nothing_here", "schedule": "rate(1 hour)"}}
    declared = {"default": {**settings.TASKS["default"], "OPTIONS": {"PERIODIC": bad}}}
    with override_settings(TASKS=declared):
        errors = default_task_backend.check()

    assert [e.id for e in errors if e.id == "sqs_tasks.E007"] == ["sqs_tasks.E007"]
    assert "['PERIODIC']['oops'] cannot run" in next(e.msg for e in errors if e.id.endswith("7"))


def test_a_local_run_syncs_the_declared_tasks_and_awaits_only_firings_due_soon() -> None:
    tasks.runs.clear()
    declared = {"default": {**settings.TASKS["default"], "OPTIONS": {"PERIODIC": PERIODIC}}}
    start = datetime(2026, 12, 7, 12, 1, 30, tzinfo=UTC)
    tracker = Tracker()
    with override_settings(TASKS=declared), aws_stack():
        backend = default_task_backend
        with time_machine.travel(start, tick=False):
            made = sync_declared(backend)
            again = sync_declared(backend)
            ids, notes = expect_first_firings(backend, tracker, timedelta(minutes=10))
        with time_machine.travel(start + timedelta(minutes=10), tick=False):
            drain()
        results = backend.get_results(ids)

    assert [line.split()[0] for line in made] == ["create", "create"], made
    assert again == []
    assert ids == ["tick@2026-12-07T12:05:00Z"]
    # 02:30 in Paris in December (UTC+1), the next day: far past the run, so not awaited.
    assert notes == [
        "periodic paris (cron(30 2 * * ? *)): not awaited, its first firing is at "
        "2026-12-08 01:30:00 UTC"
    ]
    assert [judge(r, tracker.expected[r.id]) for r in results] == [None]


def test_a_local_run_says_why_it_could_not_sync_instead_of_failing() -> None:
    bad = {"gone": {"task": "tests.tasks.no_such_task", "schedule": "rate(1 hour)"}}
    declared = {"default": {**settings.TASKS["default"], "OPTIONS": {"PERIODIC": bad}}}
    with override_settings(TASKS=declared), aws_stack():
        lines = sync_declared(default_task_backend)

    assert len(lines) == 1 and lines[0].startswith("not synced: Periodic task 'gone': "), lines
