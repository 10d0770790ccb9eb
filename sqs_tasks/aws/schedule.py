"""Long waits: one EventBridge Scheduler schedule per message instead of a re-send every 15 min."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError


def schedule_name(result_id: str, at: datetime) -> str:
    """Unique per result and due time, so a retried create is recognised, not doubled."""
    return f"{result_id}-{math.ceil(at.timestamp())}"


# Scheduler retries a failing send with backoff for up to a day (185 attempts, its most);
# then the message goes to the queue's dead-letter queue, whose function fails the result.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
DEAD_LETTER_SUFFIX = "-dlq"


def dead_letter_arn(queue_arn: str) -> str:
    """The dead-letter queue of a task queue, named as the stack names it (queue + "-dlq")."""
    return queue_arn + DEAD_LETTER_SUFFIX


def at_expression(at: datetime) -> str:
    """The one-time schedule expression for at, rounded up so it never fires early."""
    moment = datetime.fromtimestamp(math.ceil(at.timestamp()), UTC)
    return f"at({moment:%Y-%m-%dT%H:%M:%S})"


class Scheduler:
    """Creates one-time schedules that send a message body to a queue when it is due."""

    def __init__(self, client: Callable[[], Any], *, group: str, role_arn: str) -> None:
        self._client = client
        self.group = group
        self.role_arn = role_arn

    def schedule(self, result_id: str, queue_arn: str, body: str, at: datetime) -> None:
        """Have EventBridge Scheduler send body to the queue at `at`, then delete itself."""
        try:
            self._client().create_schedule(
                Name=schedule_name(result_id, at),
                GroupName=self.group,
                ScheduleExpression=at_expression(at),
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={
                    "Arn": queue_arn,
                    "RoleArn": self.role_arn,
                    "Input": body,
                    "RetryPolicy": RETRY_POLICY,
                    # Without it a schedule whose sends fail would leave its result READY forever.
                    "DeadLetterConfig": {"Arn": dead_letter_arn(queue_arn)},
                },
                ActionAfterCompletion="DELETE",
            )
        except ClientError as e:
            # A create retried by botocore after a lost response finds its own schedule.
            if e.response.get("Error", {}).get("Code") != "ConflictException":
                raise
