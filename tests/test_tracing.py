"""Tracing: off, the worker loads no tracer at all; on, each task's subsegment says which task
it was, how it ended, and which traced request enqueued it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.tasks import default_task_backend

from sqs_tasks.testing import Stack, drain
from sqs_tasks.worker import tracing
from tests import tasks
from tests.test_worker import ROOT, _worker_env

PRODUCER_TRACE = "1-5759e988-bd862e3fe1be46a994272793"

# Runs the queues dry with the worker, then says which tracing modules were ever imported.
WORKER_RUN = """
import sys
import django
django.setup()
from sqs_tasks.worker import Worker
stats = Worker(until_empty=True, wait_time=0).run()
print(stats.deleted)
print(sorted(m for m in sys.modules if m.startswith("aws_xray_sdk")))
"""


@pytest.mark.parametrize(
    ("environment", "loaded"),
    [
        ({"SQS_TASKS_TRACING": "false"}, False),  # what the stack sets by default
        ({"SQS_TASKS_TRACING": "true", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"SQS_TASKS_TRACING": "true"}, True),
    ],
    ids=["off", "on-but-disabled", "on"],
)
def test_tracing_off_imports_no_tracer(
    stack: Stack, environment: dict[str, str], loaded: bool
) -> None:
    tasks.add.enqueue(1, 2)
    env = {**_worker_env(stack), **environment}
    done = subprocess.run(
        [sys.executable, "-c", WORKER_RUN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    ran, modules = done.stdout.strip().splitlines()[-2:]

    assert ran == "1"
    assert bool(json.loads(modules.replace("'", '"'))) == loaded


class FakeSubsegment:
    """Keeps what the worker annotates."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.annotations: dict[str, Any] = {}

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value


class FakeProvider:
    """Stands in for the X-Ray recorder: no daemon, no segment, just the subsegments made."""

    def __init__(self) -> None:
        self.subsegments: list[FakeSubsegment] = []

    @contextmanager
    def in_subsegment(self, name: str) -> Iterator[FakeSubsegment]:
        subsegment = FakeSubsegment(name)
        self.subsegments.append(subsegment)
        yield subsegment


class FakeTracer:
    def __init__(self) -> None:
        self.provider = FakeProvider()


@pytest.fixture
def fake_tracer(monkeypatch: pytest.MonkeyPatch) -> FakeTracer:
    fake = FakeTracer()
    monkeypatch.setenv("SQS_TASKS_TRACING", "true")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    monkeypatch.setattr(tracing, "_tracer", fake)
    return fake


def test_each_task_runs_in_an_annotated_subsegment(stack: Stack, fake_tracer: FakeTracer) -> None:
    traced = tasks.add.enqueue(2, 3)
    sqs = default_task_backend.client("sqs")  # type: ignore[attr-defined]
    url = default_task_backend.queue.url("default")  # type: ignore[attr-defined]
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    # As SQS passes on the trace header of a traced producer's SendMessage.
    sqs.send_message(
        QueueUrl=url,
        MessageBody=message["Body"],
        MessageSystemAttributes={
            "AWSTraceHeader": {
                "DataType": "String",
                "StringValue": f"Root={PRODUCER_TRACE};Parent=53995c3f42cd8ad8;Sampled=1",
            }
        },
    )
    failing = tasks.fail.enqueue("on purpose")
    drain()
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])  # a duplicate delivery
    drain()

    annotations = [s.annotations for s in fake_tracer.provider.subsegments]
    assert annotations == [
        {
            "result_id": traced.id,
            "task_path": "tests.tasks.add",
            "queue": "default",
            "producer_trace_id": PRODUCER_TRACE,
            "outcome": "succeeded",
        },
        {
            "result_id": failing.id,
            "task_path": "tests.tasks.fail",
            "queue": "default",
            "outcome": "failed",
        },
        {
            "result_id": traced.id,
            "task_path": "tests.tasks.add",
            "queue": "default",
            "outcome": "duplicate",
        },
    ]
    assert fake_tracer.provider.subsegments[0].name == "## task tests.tasks.add"


def test_the_trace_id_is_read_from_a_trace_header() -> None:
    assert tracing.producer_trace_id("Root=1-a-b;Parent=c;Sampled=1") == "1-a-b"
    assert tracing.producer_trace_id("Sampled=0; Root=1-x-y") == "1-x-y"
    assert tracing.producer_trace_id("Parent=c") is None
    assert tracing.producer_trace_id(None) is None


def test_without_aws_xray_sdk_tasks_run_untraced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    found = tracing.importlib.util.find_spec
    monkeypatch.setattr(
        tracing.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "aws_xray_sdk" else found(name, *a),
    )
    monkeypatch.setattr(tracing, "_tracer", None)

    assert tracing.tracer() is None
    assert tracing.tracer() is None
    assert caplog.text.count("aws-xray-sdk is not installed") == 1
