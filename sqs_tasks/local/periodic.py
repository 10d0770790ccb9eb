"""The project's periodic tasks in a local run: synced as a deploy does, first firings awaited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .expectations import Check, Expected, Tracker


def sync_declared(backend: Any) -> list[str]:
    """`sqs_tasks_schedules sync` for backend's OPTIONS['PERIODIC']; what it changed."""
    from ..ops.base import OperationError
    from ..ops.periodic import sync, sync_plan

    if not backend.config.periodic:
        return []
    try:
        changes = sync_plan(backend)
        sync(backend, changes)
    except OperationError as e:
        return [f"not synced: {e}"]
    return [change.describe() for change in changes]


def _started_on_time(at: datetime) -> Check:
    def check(result: Any) -> str | None:
        if result.started_at is None or result.started_at < at:
            return f"started {result.started_at}, before its scheduled time {at:%H:%M:%S}"
        return None

    return check


def expect_first_firings(
    backend: Any, tracker: Tracker, within: timedelta
) -> tuple[list[str], list[str]]:
    """Expect each periodic task's first firing due within `within`: (result ids, notes)."""
    from ..testing.clock import counted_from

    scheduler = backend.scheduler
    if scheduler is None or not backend.config.periodic:
        return [], []
    client = backend.client("scheduler")
    now = datetime.now(UTC)
    ids: list[str] = []
    notes: list[str] = []
    for name, periodic in sorted(backend.config.periodic.items()):
        schedule = client.get_schedule(GroupName=scheduler.group, Name=periodic.schedule_name)
        at = periodic.expression.next_after(counted_from(schedule), periodic.zone)
        if at is None or at - now > within:
            when = f"at {at:%Y-%m-%d %H:%M:%S} UTC" if at is not None else "never"
            expression = schedule["ScheduleExpression"]
            notes.append(f"periodic {name} ({expression}): not awaited, its first firing is {when}")
            continue
        result_id = periodic.result_id(at)
        label = f"periodic {name} {at:%H:%M:%S}"
        tracker.expect(result_id, Expected(label, "SUCCESSFUL", _started_on_time(at)))
        ids.append(result_id)
    return ids, notes
