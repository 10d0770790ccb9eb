"""Fixtures of the infrastructure tests: the templates, and the stack deployed into moto.

The pipeline is the real one, minus AWS: `sam build` (Makefile build of the code
package), `sam package` against a moto server (uploads the code zips and nested
templates to moto's S3, rewrites CodeUri/Location), the SAM transform
(aws-sam-translator, run with the sam tool venv's interpreter), then
CloudFormation create_stack on moto. It is done once per session.

The tools come from the `.venv-sam` virtualenv that `bin/check-infra` creates; without
it the tests that need them are skipped (run `bin/check-infra` first).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SAM_VENV = Path(os.environ.get("SQS_TASKS_SAM_VENV", REPO / ".venv-sam"))
REGION = "us-east-1"
TOOL_TIMEOUT = 600

# What the deployment test gives the stack: non-default values, to see them arrive.
QUEUE_NAMES = ["default", "emails"]
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


# ----------------------------------------------------------------- tools
def sam_tools() -> tuple[Path, Path]:
    """The sam CLI and the Python of its venv, or skip with how to get them."""
    sam, python = SAM_VENV / "bin" / "sam", SAM_VENV / "bin" / "python"
    if not (sam.exists() and python.exists()):
        pytest.skip(
            f"aws-sam-cli venv not found at {SAM_VENV.name}/: run bin/check-infra first "
            "(it creates it), or set SQS_TASKS_SAM_VENV"
        )
    return sam, python


def tool_env(**extra: str) -> dict[str, str]:
    """The environment of the sam subprocesses: sam venv first on PATH, fake credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{SAM_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        SAM_CLI_TELEMETRY="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    env.update(extra)
    return env


def run(command: list[str | Path], env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    if done.returncode:
        pytest.fail(
            f"{' '.join(map(str, command[:3]))} failed ({done.returncode}):\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of template.yaml into a fresh directory; returns the built template."""
    sam, _ = sam_tools()
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    run(
        [
            sam,
            "build",
            "--template-file",
            REPO / "template.yaml",
            "--build-dir",
            build_dir,
            "--parallel",
        ],
        tool_env(),
    )
    return build_dir / "template.yaml"


# ----------------------------------------------------------------- moto
@dataclass
class Moto:
    """A moto server on 127.0.0.1; `url` says localhost (moto reads 127.0.0.1 as an S3 bucket)."""

    url: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name=REGION,
        ).client(service, endpoint_url=self.url)


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    try:
        yield Moto(url=f"http://localhost:{port}")
    finally:
        server.stop()


# ----------------------------------------------------------------- the deployed stack
@dataclass
class Deployment:
    """The stack as created in moto, and the template CloudFormation was given."""

    moto: Moto
    stack_name: str
    prefix: str
    parameters: dict[str, str]
    template: dict[str, Any]  # after the SAM transform
    outputs: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def deployment(sam_build: Path, moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    sam, sam_python = sam_tools()
    work = tmp_path_factory.mktemp("deploy")
    # moto never rolls a failed create back: unique names per run.
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    parameters = {
        **DEPLOY_PARAMETERS,
        "Prefix": prefix,
        "DjangoSecretKey": secrets.token_urlsafe(50),
    }
    bucket = f"{prefix}-artifacts"
    moto.client("s3").create_bucket(Bucket=bucket)

    packaged = work / "packaged.yaml"
    run(
        [
            sam,
            "package",
            "--template-file",
            sam_build,
            "--s3-bucket",
            bucket,
            "--output-template-file",
            packaged,
            "--region",
            REGION,
        ],
        tool_env(AWS_ENDPOINT_URL=moto.url),
    )
    (work / "parameters.json").write_text(json.dumps(parameters))
    translated_path = work / "translated.json"
    run(
        [
            sam_python,
            Path(__file__).with_name("sam_translate.py"),
            packaged,
            work / "parameters.json",
            translated_path,
        ],
        tool_env(),
    )
    template: dict[str, Any] = json.loads(translated_path.read_text())

    cloudformation = moto.client("cloudformation")
    stack_name = f"{prefix}-stack"
    with warnings.catch_warnings():
        # moto skips these types (asserted on the templates in test_template instead).
        warnings.filterwarnings(
            "ignore",
            message="Tried to parse AWS::(SQS::QueuePolicy|CloudWatch::Alarm|Scheduler::Sch)",
            category=UserWarning,
        )
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return Deployment(
        moto=moto,
        stack_name=stack_name,
        prefix=prefix,
        parameters=parameters,
        template=template,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    )


@pytest.fixture(scope="session")
def translated(deployment: Deployment) -> dict[str, Any]:
    """The root template after the SAM transform (what CloudFormation received)."""
    return deployment.template


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of a template with Type kind, by logical id."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}
