"""The embedded AWS: a moto server with each SQSBackend's table, queues and schedule group."""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .moto_fixes import faithful_moto

# The template that provisions the results table: the embedded AWS makes the same table.
RESULTS_TABLE_TEMPLATE = (
    Path(__file__).parent.parent / "stack" / "sources" / "infra" / "results-table.yaml"
)
# The CreateTable arguments the template sets, and so the embedded table has.
TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes")


def _template_table() -> dict[str, Any]:
    """CreateTable's arguments, read from the stack's results-table template."""
    import yaml

    class CloudFormationLoader(yaml.SafeLoader):
        """YAML with CloudFormation's short tags (!Ref, !If, ...) read as plain values."""

    def intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    CloudFormationLoader.add_multi_constructor("!", intrinsic)
    template = yaml.load(RESULTS_TABLE_TEMPLATE.read_text(), Loader=CloudFormationLoader)
    properties = template["Resources"]["ResultsTable"]["Properties"]
    return {key: properties[key] for key in TABLE_KEYS}


TABLE_DEFINITION: dict[str, Any] = _template_table()
# Shorter than the SAM stack's (6 x the function timeout + the batching window), so tests
# that move the clock past it stay readable; redrive after 5 receives.
QUEUE_ATTRIBUTES: dict[str, str] = {"VisibilityTimeout": "180"}
MAX_RECEIVE_COUNT = 5
# moto does not check roles; the SAM stack makes the real one.
SCHEDULER_ROLE_ARN = "arn:aws:iam::123456789012:role/sqs-tasks-scheduler"


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
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
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
        signing_secret = params.get("OPTIONS", {}).get("SIGNING_SECRET")
        if signing_secret is not None and not signing_secret.startswith("arn:"):
            # As the SAM stack generates it: one random key, no fallbacks yet.
            key = json.dumps({"key": secrets.token_urlsafe(48)})
            secretsmanager.create_secret(Name=signing_secret, SecretString=key)
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
        stack.enter_context(faithful_moto())
        if server:
            endpoint_url = _shared_server()
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


_server_lock = threading.Lock()
_server_url: list[str] = []


def _shared_server() -> str:
    """One moto server per process (its state is the process's anyway), started on first use."""
    with _server_lock:
        if not _server_url:
            from moto.server import ThreadedMotoServer

            # One access-log line per request would drown the output of a test or demo.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            atexit.register(server.stop)
            host, port = server.get_host_and_port()
            _server_url.append(f"http://{host}:{port}")
        return _server_url[0]
