"""Test helpers for projects using sqs-tasks: an embedded AWS (moto) and drain().

Use ``with aws_stack(): ...`` (or the ``sqs_tasks_aws`` pytest fixture), enqueue tasks as
usual, then call ``drain()`` to run every due task through the Lambda handler's own code
path. Deferred tasks are tested by moving the clock (time-machine): ``drain()`` runs what
is due at the moved time and leaves the rest waiting.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .events import lambda_record as lambda_record  # Re-exported: tests build records.
from .events import queue_arn

# The table the SAM template provisions, for the embedded AWS only.
TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "id", "AttributeType": "S"},
        {"AttributeName": "failure_pk", "AttributeType": "S"},
        {"AttributeName": "finished_at", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "failures",
            "KeySchema": [
                {"AttributeName": "failure_pk", "KeyType": "HASH"},
                {"AttributeName": "finished_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}
# Shorter than the SAM stack's (6 x the function timeout + the batching window), so tests
# that move the clock past it stay readable; redrive after 5 receives.
QUEUE_ATTRIBUTES: dict[str, str] = {"VisibilityTimeout": "180"}
MAX_RECEIVE_COUNT = 5
# moto does not check roles; the SAM stack makes the real one.
SCHEDULER_ROLE_ARN = "arn:aws:iam::123456789012:role/sqs-tasks-scheduler"
# What a Lambda invocation has left, as drain()'s stand-in context reports it.
DRAIN_REMAINING_MS = 60_000


@dataclass
class Stack:
    """Where the embedded AWS lives and what was made in it."""

    endpoint_url: str | None
    region: str
    tasks: dict[str, Any] = field(default_factory=dict)


def _backend_options(alias: str, params: dict[str, Any]) -> tuple[str, str]:
    options = params.get("OPTIONS", {})
    table = options.get("TABLE_NAME") or f"sqs-tasks-{alias}-results"
    prefix = options.get("QUEUE_NAME_PREFIX")
    return table, prefix if prefix is not None else f"sqs-tasks-{alias}-"


def _provision(
    settings_tasks: dict[str, Any], endpoint_url: str | None, region: str
) -> dict[str, Any]:
    import boto3

    session = boto3.session.Session(region_name=region)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    scheduler = session.client("scheduler", endpoint_url=endpoint_url)
    patched: dict[str, Any] = {}
    for alias, params in settings_tasks.items():
        params = dict(params)
        if params.get("BACKEND") not in {"sqs_tasks.SQSBackend", "sqs_tasks.backend.SQSBackend"}:
            patched[alias] = params
            continue
        table, prefix = _backend_options(alias, params)
        dynamodb.create_table(TableName=table, **TABLE_DEFINITION)
        urls = {}
        for queue_name in params.get("QUEUES", ["default"]):
            dlq = sqs.create_queue(QueueName=f"{prefix}{queue_name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
            redrive = (
                f'{{"deadLetterTargetArn":"{dlq_arn["Attributes"]["QueueArn"]}",'
                f'"maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}'
            )
            attributes: Any = {**QUEUE_ATTRIBUTES, "RedrivePolicy": redrive}
            urls[queue_name] = sqs.create_queue(
                QueueName=f"{prefix}{queue_name}", Attributes=attributes
            )["QueueUrl"]
        group = f"{prefix}schedules"
        scheduler.create_schedule_group(Name=group)
        options = {k: v for k, v in params.get("OPTIONS", {}).items() if k != "QUEUE_NAME_PREFIX"}
        options.update(
            TABLE_NAME=table,
            QUEUE_URLS=urls,
            REGION_NAME=region,
            SCHEDULE_GROUP=group,
            SCHEDULER_ROLE_ARN=SCHEDULER_ROLE_ARN,
        )
        if endpoint_url:
            options["ENDPOINT_URL"] = endpoint_url
        params["OPTIONS"] = options
        patched[alias] = params
    return patched


@contextmanager
def aws_stack(*, server: bool = True, region: str = "us-east-1") -> Iterator[Stack]:
    """Start moto (a real HTTP server by default), make each SQSBackend's table and queues."""
    from django.conf import settings
    from django.test import override_settings
    from moto import mock_aws

    with ExitStack() as stack:
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        stack.callback(_restore_env, saved)
        endpoint_url = None
        if server:
            from moto.server import ThreadedMotoServer

            # One access-log line per request would drown the output of a test or demo.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto_server.start()
            stack.callback(moto_server.stop)
            host, port = moto_server.get_host_and_port()
            endpoint_url = f"http://{host}:{port}"
            # moto's state lives in the process, not the server: forget it on the way out.
            stack.callback(_reset_moto, endpoint_url)
        else:
            stack.enter_context(mock_aws())
        tasks = _provision(settings.TASKS, endpoint_url, region)
        # override_settings makes Django drop its cached backends, so clients point here.
        stack.enter_context(override_settings(TASKS=tasks))
        yield Stack(endpoint_url=endpoint_url, region=region, tasks=tasks)


def _reset_moto(endpoint_url: str) -> None:
    from urllib.request import Request, urlopen

    with urlopen(Request(f"{endpoint_url}/moto-api/reset", method="POST"), timeout=10):
        pass


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class DrainContext:
    """The parts of a Lambda context the handler reads."""

    function_name = "sqs-tasks-drain"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sqs-tasks-drain"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        """A fixed budget: drain() never runs out of time."""
        return DRAIN_REMAINING_MS


def drain(backend: str = "default", *, batch_size: int = 10, max_messages: int = 10_000) -> int:
    """Run every due task of backend's queues through the Lambda handler; returns messages seen."""
    from django.tasks import task_backends

    from lambda_handler.handler import handler

    tasks_backend: Any = task_backends[backend]
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
            response = handler(event, DrainContext())
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            # As the event source mapping does: delete what succeeded, leave failures to reappear.
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done)
                    ],
                )
        seen += received
        if not received:
            return seen
        if seen > max_messages:
            raise RuntimeError(f"drain() saw over {max_messages} messages: do tasks loop?")


def emulator_client(tasks_backend: Any, service: str) -> Any:
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
    """Do what EventBridge Scheduler does at a one-time schedule's time: send, then delete."""
    from django.tasks import task_backends

    tasks_backend: Any = task_backends[backend]
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
