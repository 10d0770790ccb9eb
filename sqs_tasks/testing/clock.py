"""EventBridge Scheduler's clock for periodic schedules, which moto stores but never fires."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..periodic.expressions import parse

# What EventBridge Scheduler puts in place of this in a target's Input, and in what format.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
SCHEDULED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The last firing sent, by schedule (its ARN and creation time: a schedule made again starts over).
_last_fired: dict[tuple[str, datetime], datetime] = {}


def counted_from(schedule: dict[str, Any]) -> datetime:
    """The moment a periodic schedule's firings are counted after: made, or its StartDate."""
    since: datetime = schedule["CreationDate"]
    if schedule.get("StartDate") is not None:
        # A schedule fires on or after its StartDate, never before it was made.
        since = max(since, schedule["StartDate"] - timedelta(microseconds=1))
    return since


def fire_periodic(sqs: Any, urls: dict[str, str], schedule: dict[str, Any], now: datetime) -> int:
    """Send one message per firing of a periodic schedule due by now; returns how many."""
    if schedule.get("State", "ENABLED") != "ENABLED":
        return 0
    expression = parse(schedule["ScheduleExpression"])
    zone = ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
    key = (schedule["Arn"], schedule["CreationDate"])
    since = _last_fired.get(key, counted_from(schedule))
    target = schedule["Target"]
    sent = 0
    for at in expression.firings(since, zone):
        if at > now:
            break
        body = target["Input"].replace(SCHEDULED_TIME, at.strftime(SCHEDULED_TIME_FORMAT))
        sqs.send_message(QueueUrl=urls[target["Arn"]], MessageBody=body)
        _last_fired[key] = at
        sent += 1
    return sent
