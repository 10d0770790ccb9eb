"""run_after of any length: never early, and due tasks run, with the clock moved, not waited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus
from django.test import override_settings

from sqs_tasks.testing import Stack, drain
from tests import tasks

WAITS = {
    "20-minutes": (
        timedelta(minutes=20),
        [timedelta(minutes=16), timedelta(minutes=19, seconds=50)],
    ),
    "6-hours": (timedelta(hours=6), [timedelta(minutes=16), timedelta(hours=5, minutes=59)]),
    "3-days": (timedelta(days=3), [timedelta(hours=6), timedelta(days=2, hours=23, minutes=59)]),
}


@pytest.fixture(params=["scheduler", "resend"])
def mode(request: pytest.FixtureRequest, stack: Stack) -> Iterator[str]:
    """Long waits through EventBridge Scheduler (the stack's way), or SQS re-sends alone."""
    if request.param == "scheduler":
        yield request.param
        return
    options = {
        k: v
        for k, v in stack.tasks["default"]["OPTIONS"].items()
        if k not in {"SCHEDULE_GROUP", "SCHEDULER_ROLE_ARN"}
    }
    with override_settings(TASKS={"default": {**stack.tasks["default"], "OPTIONS": options}}):
        yield request.param


@pytest.mark.parametrize("wait", WAITS, ids=list(WAITS))
def test_deferred_task_never_runs_early(mode: str, time_machine: Any, wait: str) -> None:
    delay, checks = WAITS[wait]
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=True)
    run_after = start + delay
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


def test_a_three_day_wait_costs_one_schedule(
    mode: str, time_machine: Any, calls: list[str]
) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=True)
    tasks.count.using(run_after=start + timedelta(days=3)).enqueue("waiting")
    enqueue_calls = list(calls)
    calls.clear()

    # Each time SQS hands the message back early, the worker defers it again.
    for quarter in range(1, 5):
        time_machine.move_to(start + quarter * timedelta(minutes=15, seconds=1), tick=True)
        drain()
    waiting = list(calls)  # drain()'s stand-ins for AWS use clients of their own

    if mode == "scheduler":
        assert enqueue_calls == ["PutItem", "CreateSchedule"]
        assert waiting == []  # nothing is delivered until the schedule fires
    else:
        assert sorted(enqueue_calls) == ["PutItem", "SendMessage"]  # at once, in either order
        # A claim attempt and a re-send every 15 minutes: 96 of each per waiting day.
        assert waiting == ["UpdateItem", "SendMessage"] * 4


def test_a_schedule_whose_sends_fail_dead_letters_and_its_result_fails(
    stack: Stack, time_machine: Any
) -> None:
    from django.tasks import default_task_backend

    from lambda_handler.dlq import handler
    from sqs_tasks.testing import DrainContext, emulator_client, lambda_record

    start = datetime.now(UTC)
    time_machine.move_to(start, tick=True)
    result = tasks.count.using(run_after=start + timedelta(days=3)).enqueue("never")
    backend: Any = default_task_backend
    scheduler = emulator_client(backend, "scheduler")
    sqs = emulator_client(backend, "sqs")
    dlq_url = sqs.get_queue_url(QueueName=backend.queue.url("default").rsplit("/", 1)[1] + "-dlq")[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    (summary,) = scheduler.list_schedules(GroupName=backend.scheduler.group)["Schedules"]
    target = scheduler.get_schedule(GroupName=backend.scheduler.group, Name=summary["Name"])[
        "Target"
    ]

    # Retried for a day, then dead-lettered to the queue's own dead-letter queue...
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"] == {"Arn": dlq_arn["Attributes"]["QueueArn"]}
    # ... as Scheduler does when its retries run out, a day after the due time: the target's
    # input, in the DLQ.
    time_machine.move_to(start + timedelta(days=4), tick=True)
    sqs.send_message(QueueUrl=dlq_url, MessageBody=target["Input"])
    (dead,) = sqs.receive_message(QueueUrl=dlq_url, MessageSystemAttributeNames=["All"])["Messages"]
    response = handler({"Records": [lambda_record(dead, dlq_url, stack.region)]}, DrainContext())

    assert response["batchItemFailures"] == []
    result.refresh()
    assert result.status == TaskResultStatus.FAILED  # not READY forever
