"""At-least-once SQS, exactly-once task bodies: duplicates, dead workers, forged messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus, default_task_backend
from django.test import override_settings

from lambda_handler.handler import handler
from sqs_tasks.message import Envelope
from sqs_tasks.testing import DrainContext, Stack, drain, lambda_record
from tests import tasks


def _backend() -> Any:
    return default_task_backend


def _queue_url(name: str = "default") -> str:
    url: str = _backend().queue.url(name)
    return url


def _send(body: str, queue: str = "default") -> None:
    _backend().client("sqs").send_message(QueueUrl=_queue_url(queue), MessageBody=body)


def _receive_all(queue: str = "default") -> list[dict[str, Any]]:
    response = (
        _backend()
        .client("sqs")
        .receive_message(
            QueueUrl=_queue_url(queue), MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        )
    )
    messages: list[dict[str, Any]] = response.get("Messages", [])
    return messages


def _invoke(messages: list[dict[str, Any]], queue: str = "default") -> set[str]:
    region = _backend().client("sqs").meta.region_name
    event = {"Records": [lambda_record(m, _queue_url(queue), region) for m in messages]}
    return {f["itemIdentifier"] for f in handler(event, DrainContext())["batchItemFailures"]}


def _envelope_of(result_id: str) -> dict[str, Any]:
    (message,) = _receive_all()
    body: dict[str, Any] = json.loads(message["Body"])
    assert body["id"] == result_id
    return body


def test_duplicate_delivery_runs_the_body_once(stack: Stack) -> None:
    result = tasks.count.enqueue("dup")
    body = _envelope_of(result.id)
    for _ in range(2):
        _send(json.dumps(body))

    drain()
    result.refresh()

    assert tasks.runs["dup"] == 1
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 1
    assert drain() == 0  # every copy was deleted


def test_concurrent_duplicate_is_left_for_redelivery(stack: Stack) -> None:
    result = tasks.count.enqueue("concurrent")
    now = datetime.now(UTC)
    # Another worker holds a live claim on this result right now.
    assert _backend().store.claim(result.id, "worker-a", now, now + timedelta(minutes=5)).claimed

    drain()
    result.refresh()

    assert tasks.runs["concurrent"] == 0
    assert result.status == TaskResultStatus.RUNNING
    assert result.worker_ids == ["worker-a"]


def test_expired_lease_is_claimed_again_as_attempt_two(stack: Stack, time_machine: Any) -> None:
    time_machine.move_to(datetime.now(UTC), tick=True)
    result = tasks.with_context.enqueue()
    now = datetime.now(UTC)
    # The first worker claimed it, then died without finishing.
    _backend().store.claim(result.id, "worker-died", now, now + timedelta(seconds=90))
    drain()  # the live lease sends the message back
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING

    # Past the lease and the queue's visibility timeout, SQS delivers again.
    time_machine.shift(timedelta(minutes=4))
    drain()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"id": result.id, "attempt": 2}
    assert result.attempts == 2
    assert result.worker_ids[0] == "worker-died"


def test_stale_worker_cannot_overwrite_a_newer_attempt(stack: Stack) -> None:
    result = tasks.add.enqueue(1, 2)
    store = _backend().store
    now = datetime.now(UTC)
    first = store.claim(result.id, "slow", now - timedelta(hours=1), now - timedelta(minutes=1))
    second = store.claim(result.id, "fresh", now, now + timedelta(minutes=5))
    assert first.claimed and second.claimed

    assert store.finish(second.item, now=now, return_json="3") is True
    assert store.finish(first.item, now=now, return_json="999") is False
    assert tasks.add.get_result(result.id).return_value == 3


def test_forged_signature_never_runs(stack: Stack) -> None:
    result = tasks.count.enqueue("forged")
    body = _envelope_of(result.id)
    forged = {**body, "sig": "0" * len(body["sig"])}
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    os_system = {**body, "task": "os.system"}  # signature no longer matches

    for bad in (forged, unsigned, os_system):
        _send(json.dumps(bad))
    failures = _invoke(_receive_all())

    assert len(failures) == 3
    assert tasks.runs["forged"] == 0
    result.refresh()
    assert result.status == TaskResultStatus.READY


def test_signed_message_naming_another_callable_is_failed_not_run(stack: Stack) -> None:
    result = tasks.count.enqueue("victim")
    _receive_all()  # the genuine message is consumed elsewhere
    forged = Envelope(result.id, "default", "os.system", "default", 0).encode()
    _send(forged)

    drain()
    result.refresh()

    assert tasks.runs["victim"] == 0
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "sqs_tasks.exceptions.InvalidTaskPath"
    assert "os.system" in result.errors[0].traceback


def test_result_naming_a_non_task_is_failed_not_run(stack: Stack) -> None:
    result = tasks.add.enqueue(1, 1)
    store = _backend().store
    store._client().update_item(
        TableName=store.table_name,
        Key={"id": {"S": result.id}},
        UpdateExpression="SET task_path = :p",
        ExpressionAttributeValues={":p": {"S": "tests.tasks.not_a_task"}},
    )
    _receive_all()
    _send(Envelope(result.id, "default", "tests.tasks.not_a_task", "default", 0).encode())

    drain()
    item = store.get(result.id)

    assert item["status"]["S"] == "FAILED"
    assert "is not a Task" in item["errors"]["L"][0]["M"]["traceback"]["S"]


def test_bad_records_do_not_crash_the_batch(stack: Stack) -> None:
    good = tasks.add.enqueue(2, 2)
    for body in ["not json", "[]", '{"v": 99}', json.dumps({"v": 1, "id": "x"})]:
        _send(body)
    unknown = Envelope("no-such-result", "default", "tests.tasks.add", "default", 0).encode()
    _send(unknown)

    messages = _receive_all()
    failures = _invoke(messages)
    good.refresh()

    assert good.status == TaskResultStatus.SUCCESSFUL
    by_body = {m["MessageId"]: m["Body"] for m in messages}
    # Malformed records go back to SQS (and on to the DLQ); an unknown id goes back for a
    # second (its item may be on its way: enqueue writes it while it sends the message).
    assert sorted(by_body[f] for f in failures) == sorted(
        ["not json", "[]", '{"v": 99}', json.dumps({"v": 1, "id": "x"}), unknown]
    )


def test_keyboard_interrupt_propagates_and_leaves_a_lease(stack: Stack) -> None:
    result = tasks.interrupt.enqueue()

    with pytest.raises(KeyboardInterrupt):
        drain()
    result.refresh()

    assert result.status == TaskResultStatus.RUNNING
    assert _backend().store.get(result.id)["lease_until"]["S"] > datetime.now(UTC).isoformat()


def test_result_for_a_queue_the_worker_no_longer_serves_is_failed_not_bounced(
    stack: Stack,
) -> None:
    result = tasks.send_email.enqueue("gone@example.com")
    narrowed = {**stack.tasks["default"], "QUEUES": ["default"]}
    with override_settings(TASKS={"default": narrowed}):
        # The worker's settings dropped "emails"; the message is still delivered to it.
        messages = _receive_all("emails")
        assert _invoke(messages, "emails") == set()
        item = _backend().store.get(result.id)

    assert item["status"]["S"] == "FAILED"
    assert "Queue 'emails' is not valid" in item["errors"]["L"][0]["M"]["traceback"]["S"]
