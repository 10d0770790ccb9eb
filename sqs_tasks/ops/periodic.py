"""A backend's periodic tasks against its schedule group: the sync plan, and a listing."""

from __future__ import annotations

from datetime import UTC, datetime

from ..aws.schedule import dead_letter_arn
from ..backend import SQSBackend
from ..exceptions import InvalidTaskPath
from ..message import firing_body
from ..periodic.declarations import Periodic
from ..periodic.sync import Change, Target, apply, deployed, plan
from ..results import load_task
from .base import OperationError
from .tables import format_table


def _scheduler(backend: SQSBackend) -> tuple[str, str]:
    scheduler = backend.scheduler
    if scheduler is None:
        raise OperationError(
            f"Task backend {backend.alias!r} has no schedule group: set OPTIONS['SCHEDULE_GROUP']"
            " and OPTIONS['SCHEDULER_ROLE_ARN'] (the stack's WebAppEnvironment output has both)."
        )
    return scheduler.group, scheduler.role_arn


def target(backend: SQSBackend, periodic: Periodic) -> Target:
    """Where a periodic task's firings go: its task's queue, with a signed firing message."""
    try:
        task = load_task(periodic.task_path)
    except InvalidTaskPath as e:
        raise OperationError(f"Periodic task {periodic.name!r}: {e}") from e
    if task.backend != backend.alias:
        raise OperationError(
            f"Periodic task {periodic.name!r} runs {periodic.task_path}, a task of backend "
            f"{task.backend!r}, not {backend.alias!r}."
        )
    queue_arn = backend.queue.arn(task.queue_name)
    body = firing_body(
        periodic.name,
        backend=backend.alias,
        task_path=periodic.task_path,
        queue_name=task.queue_name,
        priority=int(task.priority),
    )
    return Target(queue_arn=queue_arn, input=body, dead_letter_arn=dead_letter_arn(queue_arn))


def sync_plan(backend: SQSBackend) -> list[Change]:
    """What makes the schedule group's periodic schedules match OPTIONS['PERIODIC']."""
    group, role_arn = _scheduler(backend)
    client = backend.client("scheduler")
    return plan(
        backend.config.periodic,
        lambda periodic: target(backend, periodic),
        deployed(client, group),
        group=group,
        role_arn=role_arn,
        now=datetime.now(UTC),
    )


def sync(backend: SQSBackend, changes: list[Change]) -> None:
    """Carry out a plan made by sync_plan()."""
    group, _ = _scheduler(backend)
    apply(backend.client("scheduler"), changes, group=group)


def listing(backend: SQSBackend) -> str:
    """Each periodic task: its schedule, next firing, and the last firing's result."""
    now = datetime.now(UTC)
    rows = []
    for periodic in backend.config.periodic.values():
        upcoming = periodic.next_firing(now)
        last = periodic.expression.previous_before(now, periodic.zone)
        status = "-"
        if last is not None:
            item = backend.store.get(periodic.result_id(last))
            status = item["status"]["S"] if item is not None else "no result"
        rows.append(
            [
                periodic.name,
                periodic.task_path,
                f"{periodic.expression.expression} {periodic.timezone}",
                f"{upcoming:%Y-%m-%d %H:%M}Z" if upcoming else "never",
                f"{last:%Y-%m-%d %H:%M}Z {status}" if last else "-",
            ]
        )
    if not rows:
        return f"Task backend {backend.alias!r} declares no periodic tasks (OPTIONS['PERIODIC'])."
    return format_table(["name", "task", "schedule", "next firing", "last firing"], rows)
