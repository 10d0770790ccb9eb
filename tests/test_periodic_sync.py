"""Declared periodic tasks: strict parsing, and a sync that plans, applies and is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from sqs_tasks.periodic.declarations import Periodic, parse_entry, parse_periodic
from sqs_tasks.periodic.sync import Target, apply, deployed, plan
from sqs_tasks.testing import Stack

NOW = datetime(2026, 12, 6, 3, 2, tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/scheduler"


def _declared(**entries: dict[str, Any]) -> dict[str, Periodic]:
    return parse_periodic("default", entries)


def test_an_entry_is_read_with_its_defaults() -> None:
    (cleanup,) = _declared(
        cleanup={"task": "shop.tasks.cleanup", "schedule": "cron(30 3 ? * MON-FRI *)"}
    ).values()

    assert cleanup.schedule_name == "periodic.cleanup"
    assert (cleanup.timezone, cleanup.args, cleanup.kwargs) == ("UTC", [], {})
    assert cleanup.skip_if_running is False
    assert cleanup.result_id(datetime(2026, 12, 7, 3, 30, tzinfo=UTC)) == (
        "cleanup@2026-12-07T03:30:00Z"
    )


@pytest.mark.parametrize(
    ("name", "entry", "problem"),
    [
        ("bad name", {"task": "a.b", "schedule": "rate(1 day)"}, "needs a name of 1-55"),
        ("x" * 56, {"task": "a.b", "schedule": "rate(1 day)"}, "needs a name of 1-55"),
        ("ok", ["a.b"], "must be a dict with 'task' and 'schedule'"),
        ("ok", {"task": "a.b", "schedule": "rate(1 day)", "every": 1}, "unknown key 'every'"),
        ("ok", {"task": "cleanup", "schedule": "rate(1 day)"}, "needs 'task', a dotted path"),
        ("ok", {"task": "a.b", "schedule": "cron(* * * * *)"}, "has a bad 'schedule'"),
        ("ok", {"task": "a.b", "schedule": "rate(1 day)", "timezone": "Mars/Base"}, "unknown 'tim"),
        ("ok", {"task": "a.b", "schedule": "rate(1 day)", "args": "x"}, "'args' must be a list"),
        ("ok", {"task": "a.b", "schedule": "rate(1 day)", "kwargs": {1: "x"}}, "is not JSON"),
        ("ok", {"task": "a.b", "schedule": "rate(1 day)", "args": [float("nan")]}, "is not JSON"),
        ("ok", {"task": "a.b", "schedule": "rate(1 day)", "skip_if_running": 1}, "True or False"),
    ],
)
def test_a_bad_entry_names_itself_and_the_problem(name: str, entry: Any, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=rf"\['PERIODIC'\]\[.*\].*{problem[:12]}"):
        parse_entry("default", name, entry)


def _targets(periodic: Periodic) -> Target:
    return Target(
        queue_arn="arn:aws:sqs:us-east-1:123456789012:q", input=f'{{"name":"{periodic.name}"}}'
    )


def _plan(declared: dict[str, Periodic], client: Any, group: str) -> Any:
    return plan(
        declared,
        _targets,
        deployed(client, group),
        group=group,
        role_arn=ROLE,
        now=datetime.now(UTC),
    )


def test_sync_creates_updates_deletes_only_periodic_schedules_and_then_has_nothing_to_do(
    stack: Stack,
) -> None:
    from django.tasks import default_task_backend

    backend: Any = default_task_backend
    client, group = backend.client("scheduler"), backend.scheduler.group
    # A one-time deferral schedule of the same group: never the sync's business.
    client.create_schedule(
        Name="0123abcd-1900000000",
        GroupName=group,
        ScheduleExpression="at(2030-01-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "RoleArn": ROLE, "Input": "{}"},
    )
    first = _declared(
        nightly={
            "task": "shop.tasks.a",
            "schedule": "cron(0 3 * * ? *)",
            "timezone": "Europe/Paris",
        },
        often={"task": "shop.tasks.b", "schedule": "rate(5 minutes)"},
    )
    changes = _plan(first, client, group)
    assert [c.describe() for c in changes] == [
        "create periodic.nightly: cron(0 3 * * ? *) (Europe/Paris)",
        "create periodic.often: rate(5 minutes) (UTC)",
    ]
    apply(client, changes, group=group)
    assert _plan(first, client, group) == []

    second = _declared(often={"task": "shop.tasks.b", "schedule": "rate(10 minutes)"})
    changes = _plan(second, client, group)
    assert [c.describe() for c in changes] == [
        "delete periodic.nightly",
        "update periodic.often: rate(10 minutes) (UTC)",
    ]
    apply(client, changes, group=group)
    assert _plan(second, client, group) == []

    names = {s["Name"] for s in client.list_schedules(GroupName=group)["Schedules"]}
    assert names == {"0123abcd-1900000000", "periodic.often"}
    often = client.get_schedule(GroupName=group, Name="periodic.often")
    # A rate starts on the grid the worker computes, never in the past (AWS refuses that).
    assert often["StartDate"] >= datetime.now(UTC).replace(microsecond=0)
    assert often["StartDate"].timestamp() % 600 == 0
