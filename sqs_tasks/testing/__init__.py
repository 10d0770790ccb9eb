"""Test helpers for projects using sqs-tasks: an embedded AWS (moto) and drain().

Use ``with aws_stack(): ...`` (or the ``sqs_tasks_aws`` pytest fixture), enqueue tasks as
usual, then call ``drain()`` to run every due task through the Lambda handler's own code
path. Deferred tasks are tested by moving the clock (time-machine): ``drain()`` runs what
is due at the moved time and leaves the rest waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..aws.queue import queue_arn
from ..worker.context import LambdaContext
from ..worker.events import lambda_record
from ..worker.settle import delete_messages
from .clock import fire_periodic
from .embedded import MAX_RECEIVE_COUNT, QUEUE_ATTRIBUTES, TABLE_DEFINITION, Stack, aws_stack

if TYPE_CHECKING:
    from ..backend import SQSBackend

__all__ = [
    "MAX_RECEIVE_COUNT",
    "QUEUE_ATTRIBUTES",
    "TABLE_DEFINITION",
    "DrainContext",
    "Stack",
    "aws_stack",
    "drain",
    "fire_due_schedules",
    "lambda_record",
    "sqs_tasks_aws",
]

# The Lambda context drain() hands the handler: no deadline, so it never runs out of time.
DrainContext = LambdaContext


def drain(backend: str = "default", *, batch_size: int = 10, max_messages: int = 10_000) -> int:
    """Run every due task of backend's queues through the Lambda handler; returns messages seen."""
    from ..worker.handler import handler

    tasks_backend = _sqs_backend(backend)
    sqs = emulator_client(tasks_backend, "sqs")
    region = sqs.meta.region_name
    seen = 0
    while True:
        received = fire_due_schedules(backend)
        for queue_name in sorted(tasks_backend.queues):
            url = tasks_backend.queue.url(queue_name)
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=batch_size,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                continue
            received += len(messages)
            event = {"Records": [lambda_record(m, url, region) for m in messages]}
            response = handler(event, LambdaContext(function_name="sqs-tasks-drain"))
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            # As the event source mapping does: delete what succeeded, leave failures to reappear.
            delete_messages(sqs, url, [m for m in messages if m["MessageId"] not in failed])
        seen += received
        if not received:
            return seen
        if seen > max_messages:
            raise RuntimeError(f"drain() saw over {max_messages} messages: do tasks loop?")


def _sqs_backend(alias: str) -> SQSBackend:
    from django.tasks import task_backends

    from ..backend import SQSBackend

    tasks_backend = task_backends[alias]
    if not isinstance(tasks_backend, SQSBackend):
        raise TypeError(f"Task backend {alias!r} is not an sqs_tasks.SQSBackend.")
    return tasks_backend


def emulator_client(tasks_backend: SQSBackend, service: str) -> Any:
    """A client of drain()'s own, so AWS's side of the work never counts as the backend's."""
    import boto3

    config = tasks_backend.config
    key = (service, config.endpoint_url, config.region_name)
    if key not in _EMULATOR_CLIENTS:
        _EMULATOR_CLIENTS[key] = boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            region_name=config.region_name,
            endpoint_url=config.endpoint_url,
        )
    return _EMULATOR_CLIENTS[key]


_EMULATOR_CLIENTS: dict[tuple[str, str | None, str | None], Any] = {}


def fire_due_schedules(backend: str = "default") -> int:
    """Do what EventBridge Scheduler does when schedules come due; returns messages sent.

    A one-time schedule sends its message, then is deleted; a periodic one sends a message for
    each firing since the last (or since it was made), its scheduled time filled in.
    """
    tasks_backend = _sqs_backend(backend)
    scheduler = tasks_backend.scheduler
    if scheduler is None:
        return 0
    client = emulator_client(tasks_backend, "scheduler")
    sqs = emulator_client(tasks_backend, "sqs")
    region = sqs.meta.region_name
    urls = {queue_arn(u, region): u for u in map(tasks_backend.queue.url, tasks_backend.queues)}
    now = datetime.now(UTC)
    fired = 0
    for summary in client.list_schedules(GroupName=scheduler.group)["Schedules"]:
        schedule = client.get_schedule(GroupName=scheduler.group, Name=summary["Name"])
        if not schedule["ScheduleExpression"].startswith("at("):
            fired += fire_periodic(sqs, urls, schedule, now)
            continue
        due = datetime.strptime(schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)")
        if due.replace(tzinfo=UTC) > now:
            continue
        target = schedule["Target"]
        sqs.send_message(QueueUrl=urls[target["Arn"]], MessageBody=target["Input"])
        client.delete_schedule(GroupName=scheduler.group, Name=summary["Name"])
        fired += 1
    return fired


def _fixture() -> Any:
    import pytest

    @pytest.fixture
    def sqs_tasks_aws() -> Iterator[Stack]:
        """An embedded AWS (moto server) with every SQSBackend's table and queues."""
        with aws_stack() as stack:
            yield stack

    return sqs_tasks_aws


# A pytest plugin (see pyproject's pytest11 entry point); without pytest only the helpers load.
with suppress(ImportError):
    sqs_tasks_aws = _fixture()
