"""The templates' key properties: as written, and after the SAM transform.

The nested templates (infra/*.yaml) are plain CloudFormation, so they are checked as
written; the root template is checked after the SAM transform too, as CloudFormation
receives it (that part needs the sam tool venv, see conftest). Properties that moto
does not emulate (TTL, PITR, table SSE, Architectures, managed policies, queue
policies, alarms) are asserted here rather than in test_deploy.
"""

from __future__ import annotations

import json
from typing import Any

from sqs_tasks.worker.metrics import TIMINGS, Metric
from tests.infra.conftest import WORKER_QUEUE_ACTIONS, resources_of

# What a web app and a worker may do on the results table: enqueue, claim, finish, read.
RESULTS_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
}

CORE_ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE",
    "SQS_TASKS_SIGNING_SECRET",
    "SQS_TASKS_TABLE",
    "SQS_TASKS_QUEUE_PREFIX",
    "SQS_TASKS_QUEUES",
    "SQS_TASKS_RESULT_TTL",
    "SQS_TASKS_SCHEDULE_GROUP",
    "SQS_TASKS_SCHEDULER_ROLE_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
    "SQS_TASKS_TRACING",
}
EXTRA_QUEUE_SLOTS = 4
# The generated secret, or the one SigningSecretArn names.
SIGNING_SECRET = {
    "Fn::If": ["MakeSigningSecret", {"Ref": "SigningSecret"}, {"Ref": "SigningSecretArn"}]
}


def only(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (resource,) = resources.values()
    return resource["Properties"]


def strings_in(value: Any) -> list[str]:
    """Every string inside value (intrinsic functions included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def actions(statement: dict[str, Any]) -> set[str]:
    found = statement["Action"]
    return {found} if isinstance(found, str) else set(found)


# ----------------------------------------------------------------- results table
def test_results_table_schema_is_the_one_the_core_uses(table_template: dict[str, Any]) -> None:
    table = only(resources_of(table_template, "AWS::DynamoDB::Table"))

    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "failure_pk", "AttributeType": "S"},
        {"AttributeName": "finished_at", "AttributeType": "S"},
        {"AttributeName": "id", "AttributeType": "S"},
    ]
    assert table["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "failures",
            "KeySchema": [
                {"AttributeName": "failure_pk", "KeyType": "HASH"},
                {"AttributeName": "finished_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    assert "LocalSecondaryIndexes" not in table


def test_results_table_is_on_demand_expiring_recoverable_and_encrypted(
    table_template: dict[str, Any],
) -> None:
    # moto ignores TTL, PITR and SSE from CloudFormation: asserted on the template.
    table = only(resources_of(table_template, "AWS::DynamoDB::Table"))

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in table
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_results_table_outlives_the_stack_and_is_protected_by_default(
    source_template: dict[str, Any], table_template: dict[str, Any]
) -> None:
    # `sam delete`, or a new Prefix (a new table name: a replacement), must keep every result.
    (resource,) = resources_of(table_template, "AWS::DynamoDB::Table").values()
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    protection = resource["Properties"]["DeletionProtectionEnabled"]
    assert protection == {"Fn::If": ["Protected", True, False]}
    assert table_template["Conditions"]["Protected"] == {
        "Fn::Equals": [{"Ref": "DeletionProtection"}, "true"]
    }
    parameter = source_template["Parameters"]["TableDeletionProtection"]
    assert parameter["Default"] == "true"
    nested = source_template["Resources"]["ResultsTable"]["Properties"]["Parameters"]
    assert nested["DeletionProtection"] == {"Ref": "TableDeletionProtection"}


def test_queues_and_dead_letter_queues_outlive_the_stack(queue_template: dict[str, Any]) -> None:
    # Queued messages are tasks still to run, dead letters the evidence of failed ones.
    queues = resources_of(queue_template, "AWS::SQS::Queue")

    assert set(queues) == {"Queue", "DeadLetterQueue"}
    for resource in queues.values():
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


# ----------------------------------------------------------------- one task queue
def test_queue_redrives_to_an_encrypted_14_day_dead_letter_queue(
    queue_template: dict[str, Any],
) -> None:
    queues = resources_of(queue_template, "AWS::SQS::Queue")
    queue, dlq = queues["Queue"]["Properties"], queues["DeadLetterQueue"]["Properties"]

    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    for properties in (queue, dlq):
        assert properties["SqsManagedSseEnabled"] is True
        assert properties["VisibilityTimeout"] == {"Ref": "VisibilityTimeout"}
    assert queue["QueueName"] == {"Fn::Sub": "${QueuePrefix}${QueueName}"}
    assert dlq["QueueName"] == {"Fn::Sub": "${QueuePrefix}${QueueName}-dlq"}


def test_queue_policy_denies_every_request_without_tls(queue_template: dict[str, Any]) -> None:
    # moto does not create AWS::SQS::QueuePolicy from CloudFormation: asserted here.
    policy = only(resources_of(queue_template, "AWS::SQS::QueuePolicy"))

    assert policy["Queues"] == [{"Ref": "Queue"}, {"Ref": "DeadLetterQueue"}]
    (statement,) = statements(policy["PolicyDocument"])
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert actions(statement) == {"sqs:*"}
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["Queue", "Arn"]},
        {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    ]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_event_source_mappings_report_partial_failures_and_cap_concurrency(
    queue_template: dict[str, Any],
) -> None:
    mappings = resources_of(queue_template, "AWS::Lambda::EventSourceMapping")
    worker, dead = (
        mappings["WorkerMapping"]["Properties"],
        mappings["DeadLetterMapping"]["Properties"],
    )

    assert worker["EventSourceArn"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert worker["FunctionName"] == {"Ref": "WorkerFunctionName"}
    assert worker["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaximumConcurrency"}}
    assert worker["BatchSize"] == {"Ref": "BatchSize"}
    assert worker["MaximumBatchingWindowInSeconds"] == {"Ref": "MaximumBatchingWindow"}
    assert dead["EventSourceArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert dead["FunctionName"] == {"Ref": "DeadLetterFunctionName"}
    assert dead["ScalingConfig"]["MaximumConcurrency"] >= 2
    for mapping in (worker, dead):
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # A boolean, not the parameter's string: "false" would read as enabled.
        assert mapping["Enabled"] == {"Fn::If": ["MappingsEnabled", True, False]}


def test_dead_letter_alarms_fire_on_any_dead_letter(queue_template: dict[str, Any]) -> None:
    # moto does not create AWS::CloudWatch::Alarm from CloudFormation: asserted here.
    alarms = resources_of(queue_template, "AWS::CloudWatch::Alarm")
    depth = alarms["DeadLetterAlarm"]["Properties"]
    received = alarms["DeadLetteredAlarm"]["Properties"]

    # Depth: dead letters wait (the dead-letter function fails or lags).
    assert depth["MetricName"] == "ApproximateNumberOfMessagesVisible"
    # Received: the dead-letter function took some (results marked FAILED).
    assert received["MetricName"] == "NumberOfMessagesReceived"
    assert received["Statistic"] == "Sum"
    for alarm in (depth, received):
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
        ]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == 0
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


def dashboard_metrics(queue_template: dict[str, Any]) -> list[list[Any]]:
    """The metric lines of the queue's dashboard, its !Sub variables left as ${Name}."""
    body, variables = only(resources_of(queue_template, "AWS::CloudWatch::Dashboard"))[
        "DashboardBody"
    ]["Fn::Sub"]
    assert set(variables) == {"SqsName", "DeadLetters"}
    # A number where the body takes one; every other ${...} stays inside a JSON string.
    widgets = json.loads(body.replace("${OldestMessageAlarmSeconds}", "1800"))["widgets"]
    return [line for widget in widgets for line in widget["properties"]["metrics"]]


def test_dashboard_and_alarms_name_exactly_the_metrics_the_code_emits(
    queue_template: dict[str, Any],
) -> None:
    namespace = {"Ref": "MetricsNamespace"}
    by_queue = [{"Name": "queue", "Value": {"Ref": "QueueName"}}]
    alarms = resources_of(queue_template, "AWS::CloudWatch::Alarm")
    alarmed = set()
    for query in alarms["FailureRateAlarm"]["Properties"]["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            assert (metric["Namespace"], metric["Dimensions"]) == (namespace, by_queue)
            alarmed.add(metric["MetricName"])
    shown = set()
    for line in dashboard_metrics(queue_template):
        if line[0] == "${MetricsNamespace}":
            assert line[2:4] == ["queue", "${QueueName}"]  # the one dimension the code writes
            shown.add(line[1])
            # Percentiles of the timings (one value per task), sums of the counts.
            assert (line[4].get("stat", "Sum") in {"p50", "p99"}) == (Metric(line[1]) in TIMINGS)

    assert shown == {m.value for m in Metric}
    assert alarmed == {Metric.SUCCEEDED, Metric.FAILED, Metric.DEAD_LETTERED}


def test_dashboard_shows_the_queue_and_the_worker_function(queue_template: dict[str, Any]) -> None:
    lines = dashboard_metrics(queue_template)
    shown = {(line[0], line[1], line[3]) for line in lines}

    for metric in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
    ):
        assert ("AWS/SQS", metric, "${SqsName}") in shown
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "${DeadLetters}") in shown
    for metric in ("Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"):
        assert ("AWS/Lambda", metric, "${WorkerFunctionName}") in shown


def test_backlog_and_failure_rate_alarms_take_their_thresholds_from_parameters(
    queue_template: dict[str, Any], source_template: dict[str, Any]
) -> None:
    alarms = resources_of(queue_template, "AWS::CloudWatch::Alarm")
    oldest = alarms["OldestMessageAlarm"]["Properties"]
    rate = alarms["FailureRateAlarm"]["Properties"]

    assert (oldest["Namespace"], oldest["MetricName"]) == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
    )
    assert oldest["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["Queue", "QueueName"]}}
    ]
    assert oldest["Threshold"] == {"Ref": "OldestMessageAlarmSeconds"}
    assert rate["Threshold"] == {"Ref": "FailureRateAlarmPercent"}
    (returned,) = [q for q in rate["Metrics"] if q["ReturnData"]]
    assert "/" in returned["Expression"]
    for alarm in (oldest, rate):
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
    # The root passes its parameters, and the namespace the functions write to, to each queue.
    environment = source_template["Globals"]["Function"]["Environment"]["Variables"]
    applications = resources_of(source_template, "AWS::Serverless::Application")
    for stack in applications.values():
        if stack["Properties"]["Location"] != "infra/queue.yaml":
            continue
        parameters = stack["Properties"]["Parameters"]
        assert parameters["MetricsNamespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
        assert parameters["OldestMessageAlarmSeconds"] == {"Ref": "OldestMessageAlarmSeconds"}
        assert parameters["FailureRateAlarmPercent"] == {"Ref": "FailureRateAlarmPercent"}


# ----------------------------------------------------------------- root template
def test_visibility_timeout_is_at_least_six_function_timeouts(
    source_template: dict[str, Any],
) -> None:
    timeouts = source_template["Parameters"]["FunctionTimeout"]["AllowedValues"]
    visibility = source_template["Mappings"]["VisibilityTimeouts"]

    assert set(visibility) == set(timeouts)
    for timeout in timeouts:
        assert visibility[timeout]["Seconds"] >= 6 * int(timeout)
        assert visibility[timeout]["Seconds"] <= 43200  # SQS's maximum
    assert source_template["Globals"]["Function"]["Timeout"] == {"Ref": "FunctionTimeout"}
    applications = resources_of(source_template, "AWS::Serverless::Application")
    queue_stacks = [
        a for a in applications.values() if a["Properties"]["Location"] == "infra/queue.yaml"
    ]
    assert len(queue_stacks) == 1 + EXTRA_QUEUE_SLOTS
    for stack in queue_stacks:
        assert stack["Properties"]["Parameters"]["VisibilityTimeout"] == {
            "Fn::FindInMap": ["VisibilityTimeouts", {"Ref": "FunctionTimeout"}, "Seconds"]
        }


def test_queue_names_start_with_default_and_fill_conditional_slots(
    source_template: dict[str, Any],
) -> None:
    import re

    pattern = source_template["Parameters"]["QueueNames"]["AllowedPattern"]
    assert source_template["Parameters"]["QueueNames"]["Default"] == "default"
    assert re.fullmatch(pattern, "default,emails,reports,a_b,c-d")
    for wrong in ("emails,default", "default,", "default, emails", "default,a,b,c,d,e", ""):
        assert not re.fullmatch(pattern, wrong), wrong

    applications = resources_of(source_template, "AWS::Serverless::Application")
    assert "Condition" not in applications["DefaultQueue"]
    assert applications["DefaultQueue"]["Properties"]["Parameters"]["QueueName"] == "default"
    for slot in range(1, EXTRA_QUEUE_SLOTS + 1):
        stack = applications[f"ExtraQueue{slot}"]
        assert stack["Condition"] == f"HasQueue{slot}"
        name = stack["Properties"]["Parameters"]["QueueName"]
        assert name["Fn::Select"][0] == slot


def test_translated_functions_run_python_313_on_arm64(translated: dict[str, Any]) -> None:
    functions = resources_of(translated, "AWS::Lambda::Function")
    assert set(functions) == {"WorkerFunction", "DeadLetterFunction"}
    handlers = {
        "WorkerFunction": "lambda_handler.handler.handler",
        "DeadLetterFunction": "lambda_handler.dlq.handler",
    }

    for name, function in functions.items():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]  # moto ignores Architectures
        assert properties["Handler"] == handlers[name]
        assert properties["TracingConfig"] == {
            "Mode": {"Fn::If": ["TracingEnabled", "Active", "PassThrough"]}
        }
        assert set(properties["Code"]) == {"S3Bucket", "S3Key"}  # the packaged Makefile build
        assert set(properties["Environment"]["Variables"]) == CORE_ENVIRONMENT
        variables = properties["Environment"]["Variables"]
        assert variables["DJANGO_SETTINGS_MODULE"] == "example.settings"
        assert variables["SQS_TASKS_QUEUE_PREFIX"] == {"Fn::Sub": "${Prefix}-"}
        assert variables["SQS_TASKS_QUEUES"] == {"Ref": "QueueNames"}
        # The secret's ARN; no key of any kind is a plain environment variable.
        assert variables["SQS_TASKS_SIGNING_SECRET"] == SIGNING_SECRET
        assert "DJANGO_SECRET_KEY" not in variables
    assert functions["WorkerFunction"]["Properties"]["RecursiveLoop"] == "Allow"
    assert "DjangoSecretKey" not in translated["Parameters"]


def test_translated_nested_stacks_come_from_the_packaged_templates(
    translated: dict[str, Any],
) -> None:
    stacks = resources_of(translated, "AWS::CloudFormation::Stack")

    assert set(stacks) == {"ResultsTable", "DefaultQueue"} | {
        f"ExtraQueue{slot}" for slot in range(1, EXTRA_QUEUE_SLOTS + 1)
    }
    for stack in stacks.values():
        assert stack["Properties"]["TemplateURL"].startswith("http")
    # Names and ARNs go down as parameters; nothing reads a nested stack's outputs.
    assert '"Outputs.' not in json.dumps(translated)


def test_iam_statements_are_scoped_to_the_stacks_own_resources(
    translated: dict[str, Any],
) -> None:
    roles = resources_of(translated, "AWS::IAM::Role")
    managed = resources_of(translated, "AWS::IAM::ManagedPolicy")
    assert set(roles) == {"WorkerRole", "DeadLetterRole", "SchedulerRole"}  # none SAM-made
    documents = [p["PolicyDocument"] for r in roles.values() for p in r["Properties"]["Policies"]]
    documents += [p["Properties"]["PolicyDocument"] for p in managed.values()]

    for document in documents:
        for statement in statements(document):
            assert statement["Effect"] == "Allow"
            assert not any("*" in action for action in actions(statement))
            if actions(statement) == {"iam:PassRole"}:
                # Only the stack's scheduler role, and only to EventBridge Scheduler.
                assert statement["Resource"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
                assert statement["Condition"] == {
                    "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
                }
                continue
            if actions(statement) <= {
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
            }:
                assert statement["Resource"] == SIGNING_SECRET  # That secret only.
                continue
            if actions(statement) == {"scheduler:ListSchedules"}:
                # It has no resource-level permissions; it reads names, never a target.
                assert statement["Resource"] == "*"
                continue
            resources = strings_in(statement["Resource"])
            arns = [r for r in resources if r.startswith("arn:") or r.startswith(",arn:")]
            assert arns, statement
            for arn in arns:
                assert arn.lstrip(",").startswith("arn:${AWS::Partition}:"), arn
                assert "${AWS::Region}:${AWS::AccountId}:" in arn, arn
                assert "${Prefix}" in arn, arn
            assert "*" not in resources
    # Only AWS's X-Ray write policy (when tracing is on) and, for the worker, its VPC access
    # policy (when it runs in a VPC) are attached.
    xray = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}
    vpc = {
        "Fn::Sub": (
            "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
        )
    }
    assert roles["DeadLetterRole"]["Properties"]["ManagedPolicyArns"] == {
        "Fn::If": ["TracingEnabled", [xray], {"Ref": "AWS::NoValue"}]
    }
    assert roles["WorkerRole"]["Properties"]["ManagedPolicyArns"] == {
        "Fn::If": [
            "TracingEnabled",
            {"Fn::If": ["InVpc", [xray, vpc], [xray]]},
            {"Fn::If": ["InVpc", [vpc], {"Ref": "AWS::NoValue"}]},
        ]
    }


def _managed_policy(translated: dict[str, Any], name: str) -> tuple[dict[str, Any], Any]:
    """A managed policy's properties, and the actions each of its statements grants by Sid."""
    policy = resources_of(translated, "AWS::IAM::ManagedPolicy")[name]["Properties"]
    document = policy["PolicyDocument"]
    # Its first statement is on the task queues, never on a dead-letter queue.
    assert not any("-dlq" in arn for arn in strings_in(statements(document)[0]["Resource"]))
    return policy, {s["Sid"]: actions(s) for s in statements(document)}


def test_producer_policy_grants_enqueue_and_results_only(translated: dict[str, Any]) -> None:
    _, granted = _managed_policy(translated, "ProducerPolicy")

    assert granted == {
        "EnqueueTasks": {"sqs:SendMessage", "sqs:GetQueueUrl"},
        "ScheduleLongWaits": {"scheduler:CreateSchedule"},
        "PassSchedulerRole": {"iam:PassRole"},
        "ReadSigningKey": {"secretsmanager:GetSecretValue"},
        "ReadAndWriteResults": RESULTS_ACTIONS,
    }


def test_worker_policy_is_the_worker_roles_and_reaches_no_dead_letter_queue(
    translated: dict[str, Any],
) -> None:
    policy, granted = _managed_policy(translated, "WorkerPolicy")

    assert policy["Roles"] == [{"Ref": "WorkerRole"}]
    assert granted == {
        "TaskQueues": WORKER_QUEUE_ACTIONS,
        "ScheduleLongWaits": {"scheduler:CreateSchedule"},
        "PassSchedulerRole": {"iam:PassRole"},
        "ReadSigningKey": {"secretsmanager:GetSecretValue"},
        "ReadAndWriteResults": RESULTS_ACTIONS,
    }


def test_scheduler_role_is_for_eventbridge_scheduler_of_this_account_only(
    translated: dict[str, Any],
) -> None:
    # moto does not create AWS::Scheduler::ScheduleGroup from CloudFormation: asserted here.
    group = only(resources_of(translated, "AWS::Scheduler::ScheduleGroup"))
    assert group["Name"] == {"Fn::Sub": "${Prefix}-schedules"}
    role = resources_of(translated, "AWS::IAM::Role")["SchedulerRole"]["Properties"]

    (trust,) = statements(role["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        # Only schedules of the stack's own group may use the role.
        "ArnEquals": {
            "aws:SourceArn": {
                "Fn::Sub": (
                    "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:"
                    "schedule-group/${Prefix}-schedules"
                )
            }
        },
    }
    (policy,) = role["Policies"]
    send, dead_letters = statements(policy["PolicyDocument"])
    assert actions(send) == actions(dead_letters) == {"sqs:SendMessage"}
    assert not any("-dlq" in arn for arn in strings_in(send["Resource"]))
    # A schedule whose sends keep failing lands in its queue's dead-letter queue.
    dlqs = [arn for arn in strings_in(dead_letters["Resource"]) if "arn:" in arn]
    assert dlqs and all(arn.endswith("-dlq") for arn in dlqs)


def test_the_signing_key_is_a_generated_secret_kept_with_the_data(
    source_template: dict[str, Any],
) -> None:
    from sqs_tasks.aws.secrets import MIN_KEY_LENGTH

    secret = source_template["Resources"]["SigningSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Condition"] == "MakeSigningSecret"
    # Queued and dead-lettered messages outlive the stack: so must the key that verifies them.
    assert secret["DeletionPolicy"] == secret["UpdateReplacePolicy"] == "Retain"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "key"
    assert generated["SecretStringTemplate"] == "{}"
    assert generated["PasswordLength"] >= MIN_KEY_LENGTH
    assert source_template["Conditions"]["MakeSigningSecret"] == {
        "Fn::Equals": [{"Ref": "SigningSecretArn"}, ""]
    }
    assert source_template["Parameters"]["SigningSecretArn"]["Default"] == ""
    assert "DjangoSecretKey" not in source_template["Parameters"]


def test_operator_policy_adds_only_what_redrive_and_the_admin_need(
    translated: dict[str, Any],
) -> None:
    policy = resources_of(translated, "AWS::IAM::ManagedPolicy")["OperatorPolicy"]["Properties"]
    by_sid = {s["Sid"]: s for s in statements(policy["PolicyDocument"])}

    assert {sid: actions(s) for sid, s in by_sid.items()} == {
        "ReadRedrivePolicies": {"sqs:GetQueueAttributes"},
        # GetQueueAttributes: the dead-letter depths the admin's results page shows.
        "RedriveDeadLetters": {
            "sqs:GetQueueUrl",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
        },
        "RotateSigningKey": {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"},
        "SyncPeriodicSchedules": {
            "scheduler:GetSchedule",
            "scheduler:UpdateSchedule",
            "scheduler:DeleteSchedule",
        },
        "ListSchedules": {"scheduler:ListSchedules"},
    }
    assert strings_in(by_sid["SyncPeriodicSchedules"]["Resource"])[-1].endswith(
        "-schedules/periodic.*"
    )
    assert by_sid["RotateSigningKey"]["Resource"] == SIGNING_SECRET
    queues = [a for a in strings_in(by_sid["ReadRedrivePolicies"]["Resource"]) if "arn:" in a]
    dlqs = [a for a in strings_in(by_sid["RedriveDeadLetters"]["Resource"]) if "arn:" in a]
    assert queues and not any(a.endswith("-dlq") for a in queues)
    assert dlqs and all(a.endswith("-dlq") for a in dlqs)


def test_every_stateful_resource_says_what_deleting_the_stack_does(
    source_template: dict[str, Any],
) -> None:
    # cfn-lint I3011: the default is to delete; each says so or keeps its data on purpose.
    logs = resources_of(source_template, "AWS::Logs::LogGroup")
    assert set(logs) == {"WorkerLogGroup", "DeadLetterLogGroup"}
    for resource in logs.values():
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Delete"
