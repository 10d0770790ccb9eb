"""The periodic tasks a backend declares in OPTIONS['PERIODIC'], read once, strictly."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

from .expressions import Expression, ExpressionError, parse

# EventBridge Scheduler names: 1-64 of [0-9a-zA-Z-_.]. Periodic schedules are named with this
# prefix; one-time ones are named after a hexadecimal result id, so neither is taken for the other.
SCHEDULE_PREFIX = "periodic."
MAX_NAME = 64 - len(SCHEDULE_PREFIX)
_NAME = re.compile(r"^[0-9a-zA-Z_-][0-9a-zA-Z_.-]*$")
KNOWN_KEYS = frozenset({"task", "schedule", "timezone", "args", "kwargs", "skip_if_running"})


@dataclass(frozen=True)
class Periodic:
    """One declared periodic task: what runs, when, with what."""

    name: str
    task_path: str
    expression: Expression
    timezone: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    skip_if_running: bool = False

    @property
    def schedule_name(self) -> str:
        """The EventBridge Scheduler schedule's name."""
        return SCHEDULE_PREFIX + self.name

    @property
    def zone(self) -> ZoneInfo:
        """The time zone the expression is read in."""
        return ZoneInfo(self.timezone)

    def result_id(self, scheduled: datetime) -> str:
        """The result id of the firing scheduled at `scheduled`."""
        return firing_id(self.name, scheduled)

    def next_firing(self, after: datetime) -> datetime | None:
        """The first firing after `after`."""
        return self.expression.next_after(after, self.zone)


def firing_id(name: str, scheduled: datetime) -> str:
    """The result id of a periodic task's firing: computable, so one result per firing."""
    return f"{name}@{scheduled.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _fail(alias: str, name: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']['PERIODIC'][{name!r}] {problem}.")


def _json(alias: str, name: str, key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise _fail(alias, name, f"{key} must be a {kind.__name__}, not {value!r}")
    try:
        # What a message or item holds must come back equal: JSON, with string keys only.
        if json.loads(json.dumps(value, allow_nan=False)) != value:
            raise ValueError("it does not survive a JSON round trip unchanged")
    except (TypeError, ValueError) as e:
        raise _fail(alias, name, f"{key} is not JSON ({e})") from e
    return value


def parse_entry(alias: str, name: Any, entry: Any) -> Periodic:
    """One PERIODIC entry, every part checked; ImproperlyConfigured names what is wrong."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME:
        raise _fail(
            alias,
            name,
            f"needs a name of 1-{MAX_NAME} letters, digits, '-', '_' or '.', not starting with '.'",
        )
    if not isinstance(entry, Mapping):
        raise _fail(alias, name, f"must be a dict with 'task' and 'schedule', not {entry!r}")
    unknown = sorted(set(entry) - KNOWN_KEYS)
    if unknown:
        raise _fail(
            alias, name, f"has unknown key {unknown[0]!r}; known: {', '.join(sorted(KNOWN_KEYS))}"
        )
    task_path = entry.get("task")
    if not isinstance(task_path, str) or "." not in task_path:
        raise _fail(
            alias,
            name,
            f"needs 'task', a dotted path such as 'shop.tasks.cleanup', not {task_path!r}",
        )
    try:
        expression = parse(entry.get("schedule", ""))
    except ExpressionError as e:
        raise _fail(alias, name, f"has a bad 'schedule': {e}") from e
    timezone = entry.get("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise _fail(alias, name, f"has an unknown 'timezone' {timezone!r}") from e
    skip = entry.get("skip_if_running", False)
    if not isinstance(skip, bool):
        raise _fail(alias, name, f"'skip_if_running' must be True or False, not {skip!r}")
    return Periodic(
        name=name,
        task_path=task_path,
        expression=expression,
        timezone=timezone,
        args=_json(alias, name, "'args'", entry.get("args", []), list),
        kwargs=_json(alias, name, "'kwargs'", entry.get("kwargs", {}), dict),
        skip_if_running=skip,
    )


def parse_periodic(alias: str, value: Any) -> dict[str, Periodic]:
    """OPTIONS['PERIODIC']: a dict of name -> entry."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['OPTIONS']['PERIODIC'] must be a dict of name -> "
            f"{{'task': ..., 'schedule': ...}}, not {value!r}."
        )
    return {name: parse_entry(alias, name, entry) for name, entry in value.items()}
