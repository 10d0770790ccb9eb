"""Reconcile declared periodic tasks with the stack's schedule group: plan, then apply."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .declarations import SCHEDULE_PREFIX, Periodic
from .expressions import Rate

# EventBridge Scheduler retries a failed send this long, this many times, then dead-letters it.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 20}
# What a periodic schedule's request sets; only these are compared to see whether it changed.
COMPARED = ("ScheduleExpression", "ScheduleExpressionTimezone", "State", "Description", "Target")


@dataclass(frozen=True)
class Change:
    """One step of a plan: create, update or delete the named schedule."""

    action: str  # "create", "update" or "delete"
    name: str
    request: Mapping[str, Any]  # the create/update request; {} for a delete

    def describe(self) -> str:
        """One line for people."""
        if self.action == "delete":
            return f"delete {self.name}"
        return (
            f"{self.action} {self.name}: {self.request['ScheduleExpression']} "
            f"({self.request['ScheduleExpressionTimezone']})"
        )


@dataclass(frozen=True)
class Target:
    """Where a periodic task's firings go, and how its message reads."""

    queue_arn: str
    input: str  # the firing's message, with <aws.scheduler.scheduled-time> in it
    dead_letter_arn: str | None = None  # where a send that keeps failing goes


def schedule_request(
    periodic: Periodic,
    target: Target,
    *,
    group: str,
    role_arn: str,
    now: datetime,
) -> dict[str, Any]:
    """The CreateSchedule/UpdateSchedule request of a declared periodic task."""
    request: dict[str, Any] = {
        "Name": periodic.schedule_name,
        "GroupName": group,
        "ScheduleExpression": periodic.expression.expression,
        "ScheduleExpressionTimezone": periodic.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": f"sqs-tasks periodic task {periodic.task_path}",
        "Target": {
            "Arn": target.queue_arn,
            "RoleArn": role_arn,
            "Input": target.input,
            "RetryPolicy": dict(RETRY_POLICY),
            **(
                {"DeadLetterConfig": {"Arn": target.dead_letter_arn}}
                if target.dead_letter_arn
                else {}
            ),
        },
    }
    if isinstance(periodic.expression, Rate):
        # A rate fires every period from its StartDate: starting on the next point of the grid
        # from RATE_EPOCH puts AWS's firings where the worker and drain() compute them.
        request["StartDate"] = periodic.expression.next_after(now, periodic.zone)
    return request


def deployed(client: Any, group: str) -> dict[str, dict[str, Any]]:
    """The periodic schedules in group (by name), one-time schedules left out."""
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_schedules").paginate(
        GroupName=group, NamePrefix=SCHEDULE_PREFIX
    ):
        for summary in page["Schedules"]:
            name = summary["Name"]
            if name.startswith(SCHEDULE_PREFIX):
                found[name] = client.get_schedule(GroupName=group, Name=name)
    return found


def _differs(request: Mapping[str, Any], schedule: Mapping[str, Any]) -> bool:
    for key in COMPARED:
        wanted, actual = request.get(key), schedule.get(key)
        if key == "Target" and isinstance(actual, Mapping) and isinstance(wanted, Mapping):
            actual = {k: v for k, v in actual.items() if k in wanted}
        if wanted != actual:
            return True
    return False


def plan(
    declared: Mapping[str, Periodic],
    targets: Callable[[Periodic], Target],
    current: Mapping[str, Mapping[str, Any]],
    *,
    group: str,
    role_arn: str,
    now: datetime,
) -> list[Change]:
    """What makes the deployed periodic schedules match the declared ones, in name order."""
    changes: list[Change] = []
    wanted = {p.schedule_name: p for p in declared.values()}
    for name in sorted(wanted.keys() | current.keys()):
        periodic = wanted.get(name)
        if periodic is None:
            changes.append(Change("delete", name, {}))
            continue
        request = schedule_request(
            periodic,
            targets(periodic),
            group=group,
            role_arn=role_arn,
            now=now,
        )
        if name not in current:
            changes.append(Change("create", name, request))
        elif _differs(request, current[name]):
            changes.append(Change("update", name, request))
    return changes


def apply(client: Any, changes: list[Change], *, group: str) -> None:
    """Carry out a plan; a schedule that changed meanwhile is made as planned all the same."""
    for change in changes:
        if change.action == "delete":
            # Already gone is what the plan wanted.
            with suppress(client.exceptions.ResourceNotFoundException):
                client.delete_schedule(GroupName=group, Name=change.name)
        elif change.action == "create":
            try:
                client.create_schedule(**change.request)
            except client.exceptions.ConflictException:
                client.update_schedule(**change.request)
        else:
            client.update_schedule(**change.request)
