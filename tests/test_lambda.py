"""The Lambda entry points: structured logs, dead letters, and the time left in an invocation."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.signals import task_finished, task_started

from lambda_handler import dlq
from lambda_handler.handler import MIN_REMAINING, handler
from sqs_tasks.aws.store import ResultStore
from sqs_tasks.testing import DrainContext, Stack, drain, lambda_record
from sqs_tasks.worker.boot import configure_logging
from sqs_tasks.worker.claim_ahead import ClaimAhead
from tests import tasks


def _backend() -> Any:
    return default_task_backend


def _records() -> list[dict[str, Any]]:
    sqs = _backend().client("sqs")
    url = _backend().queue.url("default")
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    return [lambda_record(m, url, sqs.meta.region_name) for m in messages]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Powertools JSON logging, as a Lambda container gets it, captured in a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(stream)
    yield stream
    root.handlers, root.level = saved[0], saved[1]


def test_every_log_line_of_a_task_carries_its_id_and_path(
    stack: Stack, json_logs: io.StringIO
) -> None:
    result = tasks.chatty.enqueue("hello")

    drain()
    logging.getLogger("tests").warning("after the task")

    lines = {line["message"]: line for line in map(json.loads, json_logs.getvalue().splitlines())}
    assert lines["saying hello"]["task_id"] == result.id
    assert lines["saying hello"]["task_path"] == "tests.tasks.chatty"
    assert lines["saying hello"]["level"] == "INFO"
    assert "task_id" not in lines["after the task"]


class _ShortContext(DrainContext):
    def get_remaining_time_in_millis(self) -> int:
        return 1_000


def test_no_task_starts_without_time_to_run(stack: Stack) -> None:
    result = tasks.count.enqueue("late")

    response = handler({"Records": _records()}, _ShortContext())
    result.refresh()

    # Not a failure: a fresh message, so a receive that ran nothing never counts towards the DLQ.
    assert response["batchItemFailures"] == []
    assert tasks.runs["late"] == 0
    assert result.status == TaskResultStatus.READY
    (record,) = _records()
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert json.loads(record["body"])["id"] == result.id


def test_the_next_claim_goes_out_while_a_result_is_written(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tasks.count.enqueue("first"), tasks.count.enqueue("second")
    claimed_second = threading.Event()
    claim, finish = ResultStore.claim, ResultStore.finish

    def claiming(self: ResultStore, result_id: str, *args: Any) -> Any:
        made = claim(self, result_id, *args)
        if result_id == second.id:
            claimed_second.set()
        return made

    def finishing(self: ResultStore, item: dict[str, Any], **kwargs: Any) -> bool:
        if item["id"]["S"] == first.id:
            # Without the claim ahead, the second claim only starts once this returns.
            assert claimed_second.wait(timeout=10), "the second claim did not overlap"
        return finish(self, item, **kwargs)

    monkeypatch.setattr(ResultStore, "claim", claiming)
    monkeypatch.setattr(ResultStore, "finish", finishing)
    seen: list[tuple[str, str]] = []
    started = lambda sender, task_result, **kw: seen.append(("started", task_result.args[0]))  # noqa: E731
    finished = lambda sender, task_result, **kw: seen.append(("finished", task_result.args[0]))  # noqa: E731
    task_started.connect(started)
    task_finished.connect(finished)
    try:
        response = handler({"Records": _records()}, DrainContext())
    finally:
        task_started.disconnect(started)
        task_finished.disconnect(finished)

    assert response["batchItemFailures"] == []
    # Still one at a time, in order, each outcome told before the next task starts.
    assert seen == [
        ("started", "first"),
        ("finished", "first"),
        ("started", "second"),
        ("finished", "second"),
    ]
    for result in (first, second):
        result.refresh()
        assert (result.status, result.attempts) == (TaskResultStatus.SUCCESSFUL, 1)


def test_a_second_delivery_in_the_batch_is_not_claimed_ahead(stack: Stack) -> None:
    result = tasks.count.enqueue("twice")
    (record,) = _records()
    twin = {**record, "messageId": "twin", "receiptHandle": "twin-handle"}
    ahead = ClaimAhead([record, twin], DrainContext(), MIN_REMAINING)

    claim_next = ahead.after(record["receiptHandle"])

    # Claimed ahead it would meet its twin RUNNING and go back to SQS; in its turn it is a
    # duplicate of a finished result, dropped at once.
    assert claim_next is None
    response = handler({"Records": [record, twin]}, DrainContext())
    assert response["batchItemFailures"] == []
    result.refresh()
    assert (result.status, tasks.runs["twice"]) == (TaskResultStatus.SUCCESSFUL, 1)


def test_dead_letter_of_an_abandoned_result_fails_it(stack: Stack) -> None:
    result = tasks.add.enqueue(1, 2)
    records = _records()
    now = datetime.now(UTC)
    _backend().store.claim(result.id, "died", now - timedelta(hours=1), now - timedelta(minutes=1))

    assert dlq.handler({"Records": records}, DrainContext())["batchItemFailures"] == []
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "sqs_tasks.exceptions.WorkerLost"
    assert "dead-lettered" in result.errors[0].traceback
    assert [i["id"]["S"] for i in _backend().store.failures("default")] == [result.id]


def test_dead_letter_leaves_finished_and_running_results_alone(stack: Stack) -> None:
    running = tasks.add.enqueue(1, 1)
    finished = tasks.add.enqueue(2, 2)
    records = _records()
    now = datetime.now(UTC)
    _backend().store.claim(running.id, "alive", now, now + timedelta(minutes=5))
    claim = _backend().store.claim(finished.id, "done", now, now + timedelta(minutes=5))
    _backend().store.finish(claim.item, now=now, return_json="4")

    response = dlq.handler({"Records": records}, DrainContext())
    running.refresh()
    finished.refresh()

    assert running.status == TaskResultStatus.RUNNING
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert finished.return_value == 4
    # The running result's letter is its last message: kept until the lease has its say.
    kept = {r["messageId"] for r in records if running.id in r["body"]}
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == kept


def test_a_kept_dead_letter_fails_the_result_once_its_lease_lapses(
    stack: Stack, time_machine: Any
) -> None:
    time_machine.move_to(datetime.now(UTC), tick=True)
    result = tasks.add.enqueue(1, 1)
    records = _records()
    now = datetime.now(UTC)
    _backend().store.claim(result.id, "alive", now, now + timedelta(minutes=5))
    assert len(dlq.handler({"Records": records}, DrainContext())["batchItemFailures"]) == 1

    time_machine.shift(timedelta(minutes=6))  # Its worker died: the lease lapsed.
    assert dlq.handler({"Records": records}, DrainContext())["batchItemFailures"] == []
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "sqs_tasks.exceptions.WorkerLost"


def test_a_raising_task_started_receiver_fails_the_attempt(stack: Stack) -> None:
    def broken(sender: Any, task_result: Any, **kwargs: Any) -> None:
        raise RuntimeError("metrics backend down")

    task_started.connect(broken)
    try:
        result = tasks.count.enqueue("watched")
        drain()
    finally:
        task_started.disconnect(broken)
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    assert "metrics backend down" in result.errors[0].traceback
    assert tasks.runs["watched"] == 0


def test_a_lambda_container_makes_its_dynamodb_client_during_init() -> None:
    """As AWS advises: the client every task needs is made at import, not by the first task."""
    code = (
        "import lambda_handler.handler\n"
        "from django.tasks import task_backends\n"
        "print(sorted(task_backends['default'].producer._clients))\n"
    )
    env = {
        **os.environ,
        "AWS_LAMBDA_FUNCTION_NAME": "sqs-tasks-test",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    made = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert made.strip().splitlines()[-1] == "['dynamodb']"
