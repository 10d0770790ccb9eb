"""Every function's code against its role: each AWS call it makes is one its policy allows.

The policies are the deployed stack's, as moto's IAM holds them after CloudFormation resolved
the translated template (inline policies of each role, the managed policies attached to it,
and the producer's managed policy). A botocore hook on the clients the code uses evaluates
each request (action, resource ARN, and what it implies, such as iam:PassRole) against the
acting identity's statements and refuses anything else with AccessDenied, as IAM would; then
every code path of that identity is driven: the worker's claim, run, finish, retry, lease
extension, send again, schedules and enqueues from tasks; the dead-letter function on each
kind of letter; and the producer's enqueue, enqueue_many, get_result(s) and operator reads.

Each identity runs in a thread of its own, as a fresh container would: its own backend,
clients and signing-key cache, so its own read of the secret is checked too.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from botocore.exceptions import ClientError
from django.tasks import TaskResultStatus, default_task_backend

from sqs_tasks.local.stack import Deployment
from tests.infra.test_deploy import ACCOUNT, function, policy_document

REGION = "us-east-1"
SERVICES = ("dynamodb", "sqs", "scheduler", "secretsmanager")
# SQS authorises each batch call as the single action it batches.
SQS_BATCHES = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
# What IAM would add to a request's context, for the conditions our statements use.
PASSED_TO_SCHEDULER = {"iam:PassedToService": "scheduler.amazonaws.com"}


# ----------------------------------------------------------------- policies
@dataclass
class Identity:
    """A role or policy's Allow statements, and the requests they refused."""

    name: str
    statements: list[dict[str, Any]]
    denied: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def allows(self, action: str, resource: str, context: dict[str, str]) -> bool:
        """Whether a statement allows action on resource in this request context."""
        return any(
            _matches(statement.get("Action", []), action, ignore_case=True)
            and _matches(statement.get("Resource", []), resource, ignore_case=False)
            and _conditions_hold(statement.get("Condition", {}), context)
            for statement in self.statements
            if statement["Effect"] == "Allow"
        )


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(patterns: str | list[str], value: str, *, ignore_case: bool) -> bool:
    if ignore_case:
        return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in _listed(patterns))
    return any(fnmatch.fnmatchcase(value, p) for p in _listed(patterns))


def _conditions_hold(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    # Only the operators our templates use; any other is unknown here, so it fails closed.
    for operator, pairs in conditions.items():
        if operator not in {"StringEquals", "ArnEquals"}:
            return False
        for key, expected in pairs.items():
            if context.get(key) not in _listed(expected):
                return False
    return True


def role_identity(deployment: Deployment, role_arn: str) -> Identity:
    """A role's inline policies and attached managed policies, as deployed."""
    iam = deployment.client("iam")
    role = role_arn.rsplit("/", 1)[1]
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        statements += _statements(policy_document(document))
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        statements += managed_statements(deployment, attached["PolicyArn"])
    return Identity(role, statements)


def managed_statements(deployment: Deployment, policy_arn: str) -> list[dict[str, Any]]:
    iam = deployment.client("iam")
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]
    return _statements(policy_document(document["Document"]))


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return [found] if isinstance(found, dict) else list(found)


# ----------------------------------------------------------------- requests as IAM sees them
def queue_arn_of(url: str) -> str:
    account, name = urlparse(url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


def required(
    service: str, operation: str, params: dict[str, Any]
) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource, context) of every authorisation a request needs."""
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    if service == "dynamodb":
        if operation in {"BatchGetItem", "BatchWriteItem"}:
            return [(f"dynamodb:{operation}", table + t, {}) for t in params["RequestItems"]]
        resource = table + params["TableName"]
        if params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", resource, {})]
    if service == "sqs":
        action = f"sqs:{SQS_BATCHES.get(operation, operation)}"
        if operation == "GetQueueUrl":
            owner = params.get("QueueOwnerAWSAccountId", ACCOUNT)
            return [(action, f"arn:aws:sqs:{REGION}:{owner}:{params['QueueName']}", {})]
        return [(action, queue_arn_of(params["QueueUrl"]), {})]
    if service == "scheduler" and operation == "CreateSchedule":
        group = params.get("GroupName", "default")
        schedule = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/{params['Name']}"
        return [
            ("scheduler:CreateSchedule", schedule, {}),
            ("iam:PassRole", params["Target"]["RoleArn"], PASSED_TO_SCHEDULER),
        ]
    if service == "secretsmanager" and operation in {"GetSecretValue", "PutSecretValue"}:
        return [(f"secretsmanager:{operation}", params["SecretId"], {})]
    # Anything else is a call no test here expected: refused, so the test names it.
    return [(f"{service}:{operation}", "*", {})]


# A context variable, not a thread-local: enqueue sends on a pool thread, in a copy of its context.
_acting: ContextVar[Identity | None] = ContextVar("acting", default=None)


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["iam_params"] = dict(params)


def _authorise(model: Any, context: dict[str, Any], **_: Any) -> None:
    identity = _acting.get()
    if identity is None:
        return
    service = model.service_model.service_name
    for action, resource, condition in required(service, model.name, context["iam_params"]):
        if identity.allows(action, resource, condition):
            identity.allowed.append(action)
            continue
        refusal = f"{action} on {resource}"
        identity.denied.append(refusal)
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": f"{identity.name}: {refusal}"}},
            model.name,
        )


def as_identity[T](identity: Identity, work: Callable[[], T]) -> T:
    """Run work in a fresh thread (a new container) whose backend's clients act as identity."""

    def contained() -> T:
        backend: Any = default_task_backend
        for service in SERVICES:
            events = backend.client(service).meta.events
            events.register("before-parameter-build", _remember_params)
            events.register("before-call", _authorise)
        _acting.set(identity)
        return work()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(contained).result()


# ----------------------------------------------------------------- identities
@pytest.fixture
def worker(deployment: Deployment, lambda_environment: dict[str, str]) -> Identity:
    return role_identity(deployment, function(deployment, "WorkerFunctionName")["Role"])


@pytest.fixture
def dead_letters(deployment: Deployment, lambda_environment: dict[str, str]) -> Identity:
    return role_identity(deployment, function(deployment, "DeadLetterFunctionName")["Role"])


@pytest.fixture
def producer(deployment: Deployment, lambda_environment: dict[str, str]) -> Identity:
    statements = managed_statements(deployment, deployment.outputs["ProducerPolicyArn"])
    return Identity("ProducerPolicy", statements)


@pytest.fixture
def fresh_queues(deployment: Deployment, lambda_environment: dict[str, str]) -> Iterator[None]:
    """Empty task and dead-letter queues before and after (the deployment is shared)."""
    # moto's CloudFormation skips AWS::Scheduler::ScheduleGroup: made as the stack makes it.
    scheduler = deployment.client("scheduler")
    group = deployment.outputs["ScheduleGroup"]
    if group not in {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}:
        scheduler.create_schedule_group(Name=group)
    sqs = deployment.client("sqs")
    urls = sqs.list_queues(QueueNamePrefix=deployment.prefix)["QueueUrls"]
    # Received and deleted, not purged: SQS allows one purge a minute per queue.
    for url in urls:
        _clear(sqs, url)
    yield
    for url in urls:
        _clear(sqs, url)


def _clear(sqs: Any, url: str) -> None:
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def queue_url(deployment: Deployment, name: str) -> str:
    url: str = deployment.client("sqs").get_queue_url(QueueName=f"{deployment.prefix}-{name}")[
        "QueueUrl"
    ]
    return url


def take(deployment: Deployment, name: str) -> list[dict[str, Any]]:
    """Every visible message of a queue, received (AWS's side: no identity checked)."""
    sqs, url = deployment.client("sqs"), queue_url(deployment, name)
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        messages += batch
    return messages


# ----------------------------------------------------------------- the worker function
def test_the_worker_function_stays_within_its_role(
    deployment: Deployment, worker: Identity, producer: Identity, fresh_queues: None
) -> None:
    from sqs_tasks.testing import drain
    from sqs_tasks.worker.attempt import send_again
    from tests import tasks

    start = datetime.now(UTC)
    enqueued = as_identity(
        producer,
        lambda: [
            tasks.add.enqueue(1, 2),  # claim, run, finish
            tasks.fail.enqueue("boom"),  # finish FAILED, into the failures index
            tasks.flaky.enqueue(1),  # retry: release, send again later
            tasks.spawn.enqueue(2),  # enqueues from a task
            tasks.send_email.enqueue("a@example.com"),  # the second queue
            tasks.add.enqueue(5, 6),  # its item deleted below: a message ahead of its item
        ],
    )
    backend: Any = default_task_backend
    deployment.client("dynamodb").delete_item(
        TableName=backend.store.table_name, Key={"id": {"S": enqueued[-1].id}}
    )
    # A message delivered before its result is due: deferred again, as a schedule.
    deferred = as_identity(
        producer, lambda: tasks.add.using(run_after=start + timedelta(days=3)).enqueue(3, 4)
    )
    scheduler = deployment.client("scheduler")
    group = deployment.outputs["ScheduleGroup"]
    (schedule,) = scheduler.list_schedules(GroupName=group)["Schedules"]
    body = scheduler.get_schedule(GroupName=group, Name=schedule["Name"])["Target"]["Input"]
    scheduler.delete_schedule(GroupName=group, Name=schedule["Name"])
    deployment.client("sqs").send_message(
        QueueUrl=queue_url(deployment, "default"), MessageBody=body
    )

    def work() -> None:
        backend: Any = default_task_backend
        assert drain() >= 8
        # The heartbeat's lease extension, and putting an unstarted message back.
        item = backend.store.get(enqueued[0].id)
        claimed = backend.store.claim(
            deferred.id, "w", datetime.now(UTC), start + timedelta(days=4)
        )
        assert not claimed.claimed  # not due: a refused claim is a request all the same
        backend.store.extend_lease(enqueued[0].id, item["attempts"], start + timedelta(minutes=5))
        send_again(body)

    as_identity(worker, work)

    assert worker.denied == []
    assert {"dynamodb:UpdateItem", "dynamodb:PutItem", "sqs:SendMessage"} <= set(worker.allowed)
    assert {"scheduler:CreateSchedule", "iam:PassRole"} <= set(worker.allowed)
    assert "secretsmanager:GetSecretValue" in worker.allowed
    assert "sqs:ChangeMessageVisibility" in worker.allowed  # handed back until its item comes
    for result in enqueued[:2]:
        result.refresh()
    assert enqueued[0].status == TaskResultStatus.SUCCESSFUL
    assert enqueued[1].status == TaskResultStatus.FAILED


def test_event_source_mappings_may_poll_with_their_functions_role(
    deployment: Deployment, worker: Identity, dead_letters: Identity
) -> None:
    # Lambda's pollers use the function's role: receive, delete, and read the queue.
    for output, identity in (
        ("WorkerFunctionName", worker),
        ("DeadLetterFunctionName", dead_letters),
    ):
        mappings = deployment.event_source_mappings(deployment.outputs[output])
        assert mappings
        for mapping in mappings:
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                assert identity.allows(action, mapping["EventSourceArn"], {}), (output, action)


# ----------------------------------------------------------------- the dead-letter function
def test_the_dead_letter_function_stays_within_its_role_for_every_kind_of_letter(
    deployment: Deployment,
    worker: Identity,
    dead_letters: Identity,
    producer: Identity,
    fresh_queues: None,
) -> None:
    from lambda_handler.dlq import handler
    from sqs_tasks.testing import DrainContext, lambda_record
    from tests import tasks

    abandoned, finished, running = as_identity(
        producer,
        lambda: [tasks.add.enqueue(1, 1), tasks.add.enqueue(2, 2), tasks.add.enqueue(3, 3)],
    )
    bodies = {json.loads(m["Body"])["id"]: m["Body"] for m in take(deployment, "default")}

    def finish_and_hold() -> None:
        backend: Any = default_task_backend
        now = datetime.now(UTC)
        done = backend.store.claim(finished.id, "w", now, now + timedelta(minutes=5))
        backend.store.finish(done.item, now=now, return_json="4")
        backend.store.claim(running.id, "w", now, now + timedelta(hours=1))  # a live lease

    as_identity(worker, finish_and_hold)
    dlq_url = queue_url(deployment, "default-dlq")
    sqs = deployment.client("sqs")
    for result in (abandoned, finished, running):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=bodies[result.id])
    sqs.send_message(QueueUrl=dlq_url, MessageBody="not a task message")
    letters = take(deployment, "default-dlq")
    assert len(letters) == 4
    event = {"Records": [lambda_record(m, dlq_url, REGION) for m in letters]}

    response = as_identity(dead_letters, lambda: handler(event, DrainContext()))

    assert dead_letters.denied == []
    # Failed (UpdateItem), left alone once read (GetItem), and the key read to verify them.
    assert set(dead_letters.allowed) == {
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "secretsmanager:GetSecretValue",
    }
    # Kept in the DLQ: the letter of a result running under a live lease, and the junk one
    # (a letter that cannot be verified is never deleted).
    kept = [
        m["MessageId"] for m in letters if m["Body"] in (bodies[running.id], "not a task message")
    ]
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(kept)
    for result in (abandoned, finished, running):
        result.refresh()
    assert abandoned.status == TaskResultStatus.FAILED
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert running.status == TaskResultStatus.RUNNING


# ----------------------------------------------------------------- the producer
def test_the_producer_policy_covers_enqueue_results_and_operator_reads(
    deployment: Deployment, producer: Identity, fresh_queues: None
) -> None:
    from django.core.management import call_command
    from django.tasks import default_task_backend as backend

    from tests import tasks

    def work() -> None:
        one = tasks.add.enqueue(1, 2)
        later = tasks.add.using(run_after=datetime.now(UTC) + timedelta(days=2)).enqueue(1, 1)
        many = backend.enqueue_many(  # type: ignore[attr-defined]
            [(tasks.add, (i, i), {}) for i in range(3)]
        )
        assert backend.get_result(one.id).id == one.id
        ids = [r.id for r in (one, later, *many)]
        assert [r.id for r in backend.get_results(ids)] == ids  # type: ignore[attr-defined]
        failed = tasks.fail.enqueue("x")
        # enqueue's own undo when a send fails: the result ends FAILED, never READY unsent.
        assert backend.producer.abandon(failed, "test") == "marked FAILED"  # type: ignore[attr-defined]
        call_command("sqs_tasks_result", one.id)
        call_command("sqs_tasks_failures")
        call_command("sqs_tasks_retry", failed.id)

    as_identity(producer, work)

    assert producer.denied == []
    assert {
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "sqs:SendMessage",
        "scheduler:CreateSchedule",
        "iam:PassRole",
        "secretsmanager:GetSecretValue",
    } <= set(producer.allowed)


def test_the_operator_policies_cover_redriving_and_rotating_the_key(
    deployment: Deployment, producer: Identity, fresh_queues: None
) -> None:
    from django.core.management import call_command

    from tests import tasks

    operator = Identity(
        "ProducerPolicy+OperatorPolicy",
        producer.statements
        + managed_statements(deployment, deployment.outputs["OperatorPolicyArn"]),
    )
    result = as_identity(producer, lambda: tasks.add.enqueue(5, 5))
    (message,) = take(deployment, "default")
    sqs = deployment.client("sqs")
    sqs.send_message(QueueUrl=queue_url(deployment, "default-dlq"), MessageBody=message["Body"])

    def work() -> None:
        call_command("sqs_tasks_redrive", queue="default")
        call_command("sqs_tasks_rotate_key")

    as_identity(operator, work)

    assert operator.denied == []
    assert {
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "secretsmanager:PutSecretValue",
    } <= set(operator.allowed)
    assert not producer.allows(
        "secretsmanager:PutSecretValue", deployment.outputs["SigningSecretArn"], {}
    )
    (back,) = take(deployment, "default")
    assert json.loads(back["Body"])["id"] == result.id
    assert take(deployment, "default-dlq") == []
    # ProducerPolicy alone may not touch a dead-letter queue.
    dlq = queue_arn_of(queue_url(deployment, "default-dlq"))
    assert not producer.allows("sqs:ReceiveMessage", dlq, {})
