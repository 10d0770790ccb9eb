"""The stack deployed into moto's CloudFormation over HTTP, and tasks run through it.

The deployment fixture (conftest) creates the translated stack with
EnableEventSourceMappings=false: moto's event source mappings would consume the
queues without running any code, so the tasks are run by sqs_tasks.testing.drain(),
the project's own emulation of the mapping. What moto does not emulate (TTL, PITR,
table SSE, Architectures, managed policy attachments, queue policies, alarms) is
asserted on the templates in test_template.
"""

from __future__ import annotations

import ast
import json
from typing import Any
from urllib.parse import urlparse

import pytest

from sqs_tasks.local.stack import Deployment
from tests.infra.conftest import FUNCTION_TIMEOUT, QUEUE_NAMES, WORKER_QUEUE_ACTIONS

ACCOUNT = "123456789012"


def arn(deployment: Deployment, service: str, resource: str) -> str:
    return f"arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}"


def queue_attributes(deployment: Deployment, name: str) -> dict[str, str]:
    sqs = deployment.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return attributes


def function(deployment: Deployment, output: str) -> dict[str, Any]:
    name = deployment.outputs[output]
    configuration: dict[str, Any] = deployment.client("lambda").get_function_configuration(
        FunctionName=name
    )
    return configuration


def policy_document(document: str | dict[str, Any]) -> dict[str, Any]:
    """A policy document as IAM returns it: JSON text (urlencoded by some clients) or parsed.

    moto returns the inline policies of roles made by CloudFormation as Python reprs.
    """
    if isinstance(document, dict):
        return document
    try:
        parsed: dict[str, Any] = json.loads(document)
    except ValueError:
        parsed = ast.literal_eval(document)
    return parsed


def role_statements(deployment: Deployment, role_arn: str) -> dict[str, list[dict[str, Any]]]:
    iam = deployment.client("iam")
    role = role_arn.rsplit("/", 1)[1]
    found = {}
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        found[policy] = policy_document(document)["Statement"]
    return found


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# ----------------------------------------------------------------- outputs
def test_outputs_describe_the_stack(deployment: Deployment) -> None:
    outputs, prefix = deployment.outputs, deployment.prefix
    sqs = deployment.client("sqs")

    assert outputs["QueuePrefix"] == f"{prefix}-"
    assert outputs["QueueNames"] == ",".join(QUEUE_NAMES)
    assert outputs["ResultsTableName"] == f"{prefix}-task-results"
    urls = outputs["QueueUrls"].split(",")
    assert urls[0] == outputs["DefaultQueueUrl"]
    for name, url in zip(QUEUE_NAMES, urls, strict=True):
        real = sqs.get_queue_url(QueueName=f"{prefix}-{name}")["QueueUrl"]
        assert urlparse(url).path == urlparse(real).path == f"/{ACCOUNT}/{prefix}-{name}"
        assert url.startswith("https://sqs.us-east-1.amazonaws.com/")
    assert outputs["ProducerPolicyArn"].startswith(f"arn:aws:iam::{ACCOUNT}:policy/")
    assert f"SQS_TASKS_TABLE={prefix}-task-results" in outputs["WebAppEnvironment"]
    assert f"SQS_TASKS_QUEUE_PREFIX={prefix}-" in outputs["WebAppEnvironment"]
    assert outputs["ScheduleGroup"] == f"{prefix}-schedules"
    assert (
        f"SQS_TASKS_SCHEDULER_ROLE_ARN={outputs['SchedulerRoleArn']}"
        in (outputs["WebAppEnvironment"])
    )
    assert '"QUEUES": ["default", "emails"]' in outputs["DjangoTasksSetting"]


# ----------------------------------------------------------------- queues and table
@pytest.mark.parametrize("name", QUEUE_NAMES)
def test_each_queue_is_encrypted_and_redrives_to_its_dead_letter_queue(
    deployment: Deployment, name: str
) -> None:
    prefix = deployment.prefix
    queue = queue_attributes(deployment, f"{prefix}-{name}")
    dlq = queue_attributes(deployment, f"{prefix}-{name}-dlq")

    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": int(deployment.parameters["MaxReceiveCount"]),
    }
    assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert queue["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"
    timeout = function(deployment, "WorkerFunctionName")["Timeout"]
    assert timeout == FUNCTION_TIMEOUT
    assert int(queue["VisibilityTimeout"]) >= 6 * timeout
    assert int(dlq["VisibilityTimeout"]) >= 6 * timeout


def test_no_queue_is_made_for_unused_slots(deployment: Deployment) -> None:
    sqs = deployment.client("sqs")
    names = {
        url.rsplit("/", 1)[1]
        for url in sqs.list_queues(QueueNamePrefix=deployment.prefix).get("QueueUrls", [])
    }
    prefix = deployment.prefix
    assert names == {f"{prefix}-{n}" for n in QUEUE_NAMES} | {
        f"{prefix}-{n}-dlq" for n in QUEUE_NAMES
    }


def test_each_queue_has_a_dashboard_of_its_own(deployment: Deployment) -> None:
    prefix = deployment.prefix
    found = deployment.client("cloudwatch").list_dashboards(DashboardNamePrefix=prefix)
    assert {d["DashboardName"] for d in found["DashboardEntries"]} == {
        f"{prefix}-{n}" for n in QUEUE_NAMES
    }
    body = deployment.client("cloudwatch").get_dashboard(DashboardName=f"{prefix}-emails")
    assert '"queue", "emails"' in body["DashboardBody"]
    assert f'"QueueName", "{prefix}-emails-dlq"' in body["DashboardBody"]


def test_results_table_has_the_core_schema(deployment: Deployment) -> None:
    table = deployment.client("dynamodb").describe_table(
        TableName=deployment.outputs["ResultsTableName"]
    )["Table"]

    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "failures"
    assert index["KeySchema"] == [
        {"AttributeName": "failure_pk", "KeyType": "HASH"},
        {"AttributeName": "finished_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    # moto ignores TimeToLiveSpecification, PITR and SSE from CloudFormation: see test_template.


# ----------------------------------------------------------------- functions
def test_functions_are_configured_for_the_core(deployment: Deployment) -> None:
    prefix, parameters = deployment.prefix, deployment.parameters
    worker = function(deployment, "WorkerFunctionName")
    dead = function(deployment, "DeadLetterFunctionName")

    assert worker["Handler"] == "lambda_handler.handler.handler"
    assert dead["Handler"] == "lambda_handler.dlq.handler"
    for config in (worker, dead):
        assert config["Runtime"] == "python3.13"
        assert config["MemorySize"] == int(parameters["FunctionMemorySize"])
        # moto drops TracingConfig from CloudFormation: see test_template.
        variables = config["Environment"]["Variables"]
        assert variables["DJANGO_SETTINGS_MODULE"] == "example.settings"
        assert variables["SQS_TASKS_TABLE"] == deployment.outputs["ResultsTableName"]
        assert variables["SQS_TASKS_QUEUE_PREFIX"] == deployment.outputs["QueuePrefix"]
        assert variables["SQS_TASKS_QUEUES"] == parameters["QueueNames"]
        assert str(variables["SQS_TASKS_RESULT_TTL"]) == parameters["ResultTtlSeconds"]
        assert variables["SQS_TASKS_SIGNING_SECRET"] == deployment.outputs["SigningSecretArn"]
        assert "DJANGO_SECRET_KEY" not in variables
        assert variables["SQS_TASKS_SCHEDULE_GROUP"] == deployment.outputs["ScheduleGroup"]
        assert variables["SQS_TASKS_SCHEDULER_ROLE_ARN"] == deployment.outputs["SchedulerRoleArn"]
        assert variables["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == f"SqsTasks/{prefix}"
        assert variables["SQS_TASKS_TRACING"] == parameters["EnableTracing"] == "true"
    assert worker["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == f"{prefix}-task-worker"


def test_event_source_mappings_are_deployed_disabled_with_partial_batch_responses(
    deployment: Deployment,
) -> None:
    client = deployment.client("lambda")
    prefix, parameters = deployment.prefix, deployment.parameters
    expected = {
        "WorkerFunctionName": {arn(deployment, "sqs", f"{prefix}-{n}") for n in QUEUE_NAMES},
        "DeadLetterFunctionName": {
            arn(deployment, "sqs", f"{prefix}-{n}-dlq") for n in QUEUE_NAMES
        },
    }

    for output, sources in expected.items():
        mappings = client.list_event_source_mappings(FunctionName=deployment.outputs[output])[
            "EventSourceMappings"
        ]
        assert {m["EventSourceArn"] for m in mappings} == sources
        for mapping in mappings:
            assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
            assert mapping["State"] == "Disabled"  # EnableEventSourceMappings=false
            if output == "WorkerFunctionName":
                assert mapping["BatchSize"] == int(parameters["BatchSize"])
                assert mapping["MaximumBatchingWindowInSeconds"] == int(
                    parameters["MaximumBatchingWindow"]
                )
                assert mapping["ScalingConfig"] == {
                    "MaximumConcurrency": int(parameters["MaximumConcurrency"])
                }
            else:
                assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}


# ----------------------------------------------------------------- IAM
def managed_statements(deployment: Deployment, policy_arn: str) -> dict[str, dict[str, Any]]:
    """The statements of a managed policy, by Sid."""
    iam = deployment.client("iam")
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]
    return {s["Sid"]: s for s in policy_document(document["Document"])["Statement"]}


def test_worker_role_reaches_its_own_queues_and_table_only(deployment: Deployment) -> None:
    prefix = deployment.prefix
    table = arn(deployment, "dynamodb", f"table/{prefix}-task-results")
    role_arn = function(deployment, "WorkerFunctionName")["Role"]
    policies = role_statements(deployment, role_arn)
    worker_policy = deployment.outputs["WorkerPolicyArn"]
    attached = deployment.client("iam").list_attached_role_policies(
        RoleName=role_arn.rsplit("/", 1)[1]
    )["AttachedPolicies"]

    # Inline: its logs only; the rest is WorkerPolicy, which a worker outside Lambda reuses.
    assert set(policies) == {"write-logs"}
    assert [a["PolicyArn"] for a in attached] == [worker_policy]
    by_sid = managed_statements(deployment, worker_policy)
    assert set(by_sid) == {
        "TaskQueues",
        "ScheduleLongWaits",
        "PassSchedulerRole",
        "ReadSigningKey",
        "ReadAndWriteResults",
    }
    queues = by_sid["TaskQueues"]
    assert set(as_list(queues["Resource"])) == {
        arn(deployment, "sqs", f"{prefix}-{n}") for n in QUEUE_NAMES
    }
    assert set(as_list(queues["Action"])) == WORKER_QUEUE_ACTIONS
    results = by_sid["ReadAndWriteResults"]
    assert set(as_list(results["Resource"])) == {table, f"{table}/index/failures"}
    # Claim (UpdateItem), finish (PutItem), and what tasks may do: enqueue and read results.
    assert set(as_list(results["Action"])) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    }
    (logs,) = policies["write-logs"]
    assert as_list(logs["Resource"]) == [
        arn(deployment, "logs", f"log-group:/aws/lambda/{prefix}-task-worker:*")
    ]
    schedule, pass_role = by_sid["ScheduleLongWaits"], by_sid["PassSchedulerRole"]
    assert as_list(schedule["Resource"]) == [
        arn(deployment, "scheduler", f"schedule/{prefix}-schedules/*")
    ]
    assert as_list(pass_role["Resource"]) == [deployment.outputs["SchedulerRoleArn"]]


def test_scheduler_role_sends_to_the_task_queues_only(deployment: Deployment) -> None:
    prefix = deployment.prefix
    policies = role_statements(deployment, deployment.outputs["SchedulerRoleArn"])

    send, dead_letters = policies["send-to-task-queues"]
    assert as_list(send["Action"]) == as_list(dead_letters["Action"]) == ["sqs:SendMessage"]
    assert set(as_list(send["Resource"])) == {
        arn(deployment, "sqs", f"{prefix}-{n}") for n in QUEUE_NAMES
    }
    assert set(as_list(dead_letters["Resource"])) == {
        arn(deployment, "sqs", f"{prefix}-{n}-dlq") for n in QUEUE_NAMES
    }


def test_dead_letter_role_reaches_the_dead_letter_queues_and_updates_results(
    deployment: Deployment,
) -> None:
    prefix = deployment.prefix
    policies = role_statements(deployment, function(deployment, "DeadLetterFunctionName")["Role"])

    (queues,) = policies["dead-letter-queues"]
    assert set(as_list(queues["Resource"])) == {
        arn(deployment, "sqs", f"{prefix}-{n}-dlq") for n in QUEUE_NAMES
    }
    assert set(as_list(queues["Action"])) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    (results,) = policies["results-table"]
    # UpdateItem fails a result; GetItem reads one whose update was refused.
    assert set(as_list(results["Action"])) == {"dynamodb:UpdateItem", "dynamodb:GetItem"}
    assert as_list(results["Resource"]) == [
        arn(deployment, "dynamodb", f"table/{prefix}-task-results")
    ]


def test_producer_policy_is_scoped_to_the_task_queues_and_table(deployment: Deployment) -> None:
    iam = deployment.client("iam")
    policy_arn = deployment.outputs["ProducerPolicyArn"]
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = policy_document(
        iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"]
    )
    prefix = deployment.prefix
    table = arn(deployment, "dynamodb", f"table/{prefix}-task-results")

    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert set(as_list(by_sid["EnqueueTasks"]["Resource"])) == {
        arn(deployment, "sqs", f"{prefix}-{n}") for n in QUEUE_NAMES
    }
    assert as_list(by_sid["ScheduleLongWaits"]["Resource"]) == [
        arn(deployment, "scheduler", f"schedule/{prefix}-schedules/*")
    ]
    assert as_list(by_sid["PassSchedulerRole"]["Resource"]) == [
        deployment.outputs["SchedulerRoleArn"]
    ]
    assert set(as_list(by_sid["ReadAndWriteResults"]["Resource"])) == {
        table,
        f"{table}/index/failures",
    }


# ----------------------------------------------------------------- tasks through the stack
def test_tasks_run_through_the_deployed_queues_and_table(
    deployment: Deployment, lambda_environment: dict[str, str]
) -> None:
    from django.tasks import TaskResultStatus

    from example import tasks
    from sqs_tasks.testing import drain

    added = tasks.add.enqueue(2, 3)
    emailed = tasks.add.using(queue_name="emails").enqueue(20, 22)
    failed = tasks.fail.enqueue("boom")
    sqs = deployment.client("sqs")
    emails_url = sqs.get_queue_url(QueueName=f"{deployment.parameters['Prefix']}-emails")[
        "QueueUrl"
    ]
    waiting = sqs.get_queue_attributes(
        QueueUrl=emails_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert waiting == "1"

    assert drain() == 3
    for result in (added, emailed, failed):
        result.refresh()

    assert added.status == TaskResultStatus.SUCCESSFUL
    assert added.return_value == 5
    assert emailed.status == TaskResultStatus.SUCCESSFUL
    assert emailed.return_value == 42
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class is ValueError

    # The results live in the deployed table, the failure in its sparse "failures" index.
    dynamodb = deployment.client("dynamodb")
    table = lambda_environment["SQS_TASKS_TABLE"]
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": added.id}})["Item"]
    assert item["status"]["S"] == "SUCCESSFUL"
    assert "failure_pk" not in item
    failures = [
        i
        for shard in range(8)
        for i in dynamodb.query(
            TableName=table,
            IndexName="failures",
            KeyConditionExpression="failure_pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"default#{shard}"}},
        )["Items"]
    ]
    assert [i["id"]["S"] for i in failures] == [failed.id]


def test_dead_lettered_task_is_marked_failed_by_the_dead_letter_handler(
    deployment: Deployment, lambda_environment: dict[str, str]
) -> None:
    from django.tasks import TaskResultStatus

    from example import tasks
    from lambda_handler.dlq import handler
    from sqs_tasks.exceptions import WorkerLost
    from sqs_tasks.testing import DrainContext, lambda_record

    result = tasks.add.enqueue(1, 2)
    sqs = deployment.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{deployment.parameters['Prefix']}-default")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=f"{deployment.parameters['Prefix']}-default-dlq")[
        "QueueUrl"
    ]
    # Workers that die mid-task: every receive ends with the message visible again, until
    # the deployed redrive policy (maxReceiveCount) moves it to the dead-letter queue.
    for _ in range(int(deployment.parameters["MaxReceiveCount"])):
        assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]) == 1
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) == []
    (dead,) = sqs.receive_message(QueueUrl=dlq_url, MessageSystemAttributeNames=["All"])["Messages"]

    # What the dead-letter queue's event source mapping would deliver to its function.
    response = handler({"Records": [lambda_record(dead, dlq_url, "us-east-1")]}, DrainContext())

    assert response["batchItemFailures"] == []
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class is WorkerLost
