"""Fixtures of the infrastructure tests: the templates, and the stack deployed into moto.

The pipeline is the real one, minus AWS, in sqs_tasks.local.stack (`sqs-tasks local`
deploys through it too): `sam build` (Makefile build of the code package), `sam package`
against a moto server (uploads the code zips and nested templates to moto's S3, rewrites
CodeUri/Location), the SAM transform (aws-sam-translator, run with the sam tool venv's
interpreter), then CloudFormation create_stack on moto. It is done once per session.

The tools come from the `.venv-sam` virtualenv that `bin/check-infra` creates; without
it the tests that need them are skipped (run `bin/check-infra` first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqs_tasks.local.build import build
from sqs_tasks.local.environment import moto_server
from sqs_tasks.local.run import WORKDIR
from sqs_tasks.local.stack import Deployment, deploy
from sqs_tasks.local.tools import DeployError, SamTools

REPO = Path(__file__).resolve().parents[2]

# What the deployment test gives the stack: non-default values, to see them arrive.
QUEUE_NAMES = ["default", "emails"]
# What the worker may do on the task queues: poll, settle, and send (enqueues, deferrals).
WORKER_QUEUE_ACTIONS = {
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:SendMessage",
}
FUNCTION_TIMEOUT = 60
DEPLOY_PARAMETERS = {
    "QueueNames": ",".join(QUEUE_NAMES),
    "FunctionTimeout": str(FUNCTION_TIMEOUT),
    "FunctionMemorySize": "1024",
    "BatchSize": "5",
    "MaximumBatchingWindow": "2",
    "MaximumConcurrency": "7",
    "MaxReceiveCount": "3",
    "ResultTtlSeconds": "3600",
    "LogLevel": "DEBUG",
    "EnableTracing": "true",
    # moto's event source mappings would drain the queues without running any code.
    "EnableEventSourceMappings": "false",
}


# ----------------------------------------------------------------- templates as data
class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short-form tags become their long-form mappings."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation/SAM YAML template as plain data."""
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)
    return data


@pytest.fixture(scope="session")
def source_template() -> dict[str, Any]:
    """template.yaml as written (before the SAM transform)."""
    return load_template(REPO / "template.yaml")


@pytest.fixture(scope="session")
def queue_template() -> dict[str, Any]:
    """infra/queue.yaml, the nested stack of one task queue."""
    return load_template(REPO / "infra" / "queue.yaml")


@pytest.fixture(scope="session")
def table_template() -> dict[str, Any]:
    """infra/results-table.yaml, the nested stack of the results table."""
    return load_template(REPO / "infra" / "results-table.yaml")


# ----------------------------------------------------------------- build
@pytest.fixture(scope="session")
def sam_build(sam_tools: SamTools) -> Path:
    """`sam build` of template.yaml, as `sqs-tasks local` makes it; returns the built template."""
    # sqs-tasks local's build directory: a build of the same files and tools is made once
    # for these tests and the local runs of tests/test_local.py (bin/check-infra builds afresh).
    build_dir = REPO / WORKDIR / "build"
    try:
        return build(REPO / "template.yaml", build_dir, sam_tools)
    except DeployError as e:
        pytest.fail(str(e))


# ----------------------------------------------------------------- moto
@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server in a process of its own, so its state is never the embedded AWS's."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server.url


# ----------------------------------------------------------------- the deployed stack
@pytest.fixture(scope="session")
def deployment(
    sam_build: Path, moto: str, sam_tools: SamTools, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    # moto never rolls a failed create back: unique names per run.
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    parameters = {**DEPLOY_PARAMETERS, "Prefix": prefix}
    try:
        deployed = deploy(
            REPO / "template.yaml",
            moto,
            parameters,
            tmp_path_factory.mktemp("deploy"),
            stack_name=f"{prefix}-stack",
            built_template=sam_build,
            tools=sam_tools,
        )
    except DeployError as e:
        pytest.fail(str(e))
    # moto skips these types (asserted on the templates in test_template instead).
    assert set(deployed.skipped) <= {
        "AWS::SQS::QueuePolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::Scheduler::ScheduleGroup",
    }, deployed.skipped
    return deployed


@pytest.fixture(scope="session")
def translated(deployment: Deployment) -> dict[str, Any]:
    """The root template after the SAM transform (what CloudFormation received)."""
    return deployment.template


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of a template with Type kind, by logical id."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


# ----------------------------------------------------------------- the worker's process
@pytest.fixture
def lambda_environment(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The process configured as the deployed worker is: its environment, example's TASKS."""
    from django.test import override_settings

    variables = deployment.environment(deployment.outputs["WorkerFunctionName"])
    for key, value in variables.items():
        monkeypatch.setenv(key, str(value))
    # What the Lambda runtime provides, pointed at moto.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", deployment.endpoint_url)
    # example/settings.py's TASKS, evaluated in this environment: no OPTIONS at all, the
    # backend reads SQS_TASKS_TABLE / SQS_TASKS_QUEUE_PREFIX / SQS_TASKS_RESULT_TTL itself.
    tasks = {
        "default": {
            "BACKEND": "sqs_tasks.SQSBackend",
            "QUEUES": variables["SQS_TASKS_QUEUES"].split(","),
        }
    }
    with override_settings(TASKS=tasks):
        yield {key: str(value) for key, value in variables.items()}
