"""The signing key in Secrets Manager: its own key, read once a while, rotated without loss."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskResultStatus, default_task_backend
from django.test import override_settings

from sqs_tasks.aws import secrets as signing_secrets
from sqs_tasks.aws.secrets import Keyring, parse_keyring
from sqs_tasks.exceptions import WorkerLost
from sqs_tasks.message import Envelope, MessageError, decode, django_keyring
from sqs_tasks.testing import DrainContext, Stack, aws_stack, drain, lambda_record
from tests import tasks

SECRET = "tests-signing-key"


@pytest.fixture
def signed_stack() -> Iterator[Stack]:
    """The embedded AWS, with the default backend's messages signed by a secret's key."""
    tasks.runs.clear()
    default = {**settings.TASKS["default"], "OPTIONS": {"SIGNING_SECRET": SECRET}}
    with override_settings(TASKS={"default": default}), aws_stack() as made:
        yield made


def secretsmanager() -> Any:
    return default_task_backend.client("secretsmanager")  # type: ignore[attr-defined]


def current_secret() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        secretsmanager().get_secret_value(SecretId=SECRET)["SecretString"]
    )
    return value


def rotate() -> tuple[str, str]:
    """Rotate as the docs say: a new key, the old one kept as a fallback. (old, new)"""
    old = current_secret()["key"]
    new = secrets.token_urlsafe(48)
    value = json.dumps({"key": new, "fallbacks": [old]})
    secretsmanager().put_secret_value(SecretId=SECRET, SecretString=value)
    return old, new


def in_new_container[T](work: Callable[[], T]) -> T:
    """Run work as a fresh Lambda container would: a thread of its own has its own backend."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


def sqs() -> Any:
    return default_task_backend.client("sqs")  # type: ignore[attr-defined]


def queue_url() -> str:
    url: str = default_task_backend.queue.url("default")  # type: ignore[attr-defined]
    return url


def dead_letter(result_id: str) -> dict[str, Any]:
    """Move a result's message to the dead-letter queue, as the redrive policy would."""
    (message,) = sqs().receive_message(QueueUrl=queue_url())["Messages"]
    assert json.loads(message["Body"])["id"] == result_id
    sqs().send_message(QueueUrl=queue_url() + "-dlq", MessageBody=message["Body"])
    sqs().delete_message(QueueUrl=queue_url(), ReceiptHandle=message["ReceiptHandle"])
    (dead,) = sqs().receive_message(
        QueueUrl=queue_url() + "-dlq", MessageSystemAttributeNames=["All"]
    )["Messages"]
    return dead  # type: ignore[no-any-return]


def settle_dead_letter(dead: dict[str, Any]) -> dict[str, Any]:
    from lambda_handler.dlq import handler

    record = lambda_record(dead, queue_url() + "-dlq", "us-east-1")
    response: dict[str, Any] = handler({"Records": [record]}, DrainContext())  # type: ignore[assignment]
    return response


# ----------------------------------------------------------------- its own key
def test_messages_are_signed_with_the_secrets_key_not_secret_key(signed_stack: Stack) -> None:
    result = tasks.add.enqueue(1, 2)
    (message,) = sqs().receive_message(QueueUrl=queue_url())["Messages"]
    key = current_secret()["key"]

    assert decode(message["Body"]).result_id == result.id
    assert Envelope.of(result).encode(Keyring(key)) == message["Body"]
    # Whoever holds the web app's SECRET_KEY (a session or password-reset key) forges no task.
    forged = Envelope.of(result).encode(django_keyring())
    with pytest.raises(MessageError, match="signature does not match"):
        decode(forged)


def test_a_signing_secret_that_cannot_be_read_fails_enqueue_before_any_write(
    signed_stack: Stack,
) -> None:
    secretsmanager().delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)
    backend: Any = default_task_backend
    table = backend.config.table_name

    with pytest.raises(Exception, match=SECRET):
        tasks.add.enqueue(1, 2)

    assert backend.client("dynamodb").scan(TableName=table)["Items"] == []
    assert sqs().receive_message(QueueUrl=queue_url()).get("Messages", []) == []


# ----------------------------------------------------------------- rotation
def test_rotation_loses_no_task_queued_or_dead_lettered(signed_stack: Stack) -> None:
    dead_lettered = tasks.add.enqueue(1, 1)
    dead = dead_letter(dead_lettered.id)
    queued = tasks.add.enqueue(2, 2)  # Signed with the old key, still in its queue.

    rotate()
    after = in_new_container(lambda: tasks.add.enqueue(3, 3))  # Signed with the new key.
    # Containers started after the rotation know the new key, the old one as a fallback.
    assert in_new_container(drain) == 2
    response = in_new_container(lambda: settle_dead_letter(dead))

    assert response["batchItemFailures"] == []
    for result in (queued, after, dead_lettered):
        result.refresh()
    assert (queued.status, queued.return_value) == (TaskResultStatus.SUCCESSFUL, 4)
    assert (after.status, after.return_value) == (TaskResultStatus.SUCCESSFUL, 6)
    # Verified, so settled truthfully: not dropped as a forgery.
    assert dead_lettered.status == TaskResultStatus.FAILED
    assert dead_lettered.errors[-1].exception_class is WorkerLost


def test_a_container_that_read_the_old_key_reads_the_new_one_when_it_meets_it(
    signed_stack: Stack,
) -> None:
    before = tasks.add.enqueue(1, 2)  # This container reads (and caches) the old key.
    rotate()
    after = in_new_container(lambda: tasks.add.enqueue(20, 22))

    assert drain() == 2  # In this container, within the cache's max_age.

    for result in (before, after):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
    assert after.return_value == 42


def test_forged_messages_cost_one_secret_read_per_interval(
    signed_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tasks.add.enqueue(1, 2)
    reads: list[str] = []
    secretsmanager().meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **_: reads.append("read")
    )
    forged = Envelope.of(result).encode(Keyring("an-attackers-guess-at-the-key-" * 2))

    for _ in range(20):
        with pytest.raises(MessageError):
            decode(forged)
    assert reads == ["read"]  # One forced read, then none for MIN_REFRESH_SECONDS.

    backend: Any = default_task_backend
    clock = backend.signing._clock()
    monkeypatch.setattr(
        backend.signing, "_clock", lambda: clock + signing_secrets.MIN_REFRESH_SECONDS
    )
    with pytest.raises(MessageError):
        decode(forged)
    assert reads == ["read", "read"]


# ----------------------------------------------------------------- the secret's value
def test_secret_values_are_checked_without_quoting_them() -> None:
    assert parse_keyring("s", "k" * 32) == Keyring("k" * 32)
    assert parse_keyring("s", json.dumps({"key": "k" * 32, "fallbacks": ["f" * 40]})) == Keyring(
        "k" * 32, ("f" * 40,)
    )
    bad = {
        "short key": json.dumps({"key": "short-secret-value"}),
        "short fallback": json.dumps({"key": "k" * 32, "fallbacks": ["short-secret-value"]}),
        "fallbacks not a list": json.dumps({"key": "k" * 32, "fallbacks": "short-secret-value"}),
        "unknown field": json.dumps({"key": "k" * 32, "keys": "short-secret-value"}),
        "not an object": json.dumps(["short-secret-value"]),
    }
    for why, value in bad.items():
        with pytest.raises(ImproperlyConfigured) as caught:
            parse_keyring("my-secret", value)
        message = str(caught.value)
        assert "'my-secret'" in message, why
        assert "short-secret-value" not in message, why
    with pytest.raises(ImproperlyConfigured, match="at least 32 characters"):
        parse_keyring("my-secret", "k" * 31)


# ----------------------------------------------------------------- the arguments
def test_arguments_changed_in_the_table_are_failed_not_run(stack: Stack) -> None:
    # Whoever can write the table but not sign cannot make a pending task run on other data.
    result = tasks.count.enqueue("victim")
    backend: Any = default_task_backend
    store = backend.store
    store._client().update_item(
        TableName=store.table_name,
        Key={"id": {"S": result.id}},
        UpdateExpression="SET args = :a",
        ExpressionAttributeValues={":a": {"S": '["attacker"]'}},
    )

    drain()
    result.refresh()

    assert tasks.runs["victim"] == tasks.runs["attacker"] == 0
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "sqs_tasks.exceptions.TamperedArguments"


def test_messages_signed_before_the_digest_existed_still_run(stack: Stack) -> None:
    result = tasks.add.enqueue(2, 3)
    (message,) = sqs().receive_message(QueueUrl=queue_url())["Messages"]
    sqs().delete_message(QueueUrl=queue_url(), ReceiptHandle=message["ReceiptHandle"])
    envelope = decode(message["Body"])
    assert envelope.args_digest is not None
    old = Envelope(result.id, "default", envelope.task_path, "default", 0).encode()
    assert '"a"' not in old
    sqs().send_message(QueueUrl=queue_url(), MessageBody=old)

    drain()
    result.refresh()

    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 5)


# ----------------------------------------------------------------- the operator's rotation
def test_the_rotate_command_keeps_queued_messages_running_then_retires_old_keys(
    signed_stack: Stack,
) -> None:
    from io import StringIO

    from django.core.management import call_command

    queued = tasks.add.enqueue(1, 2)
    old = current_secret()["key"]

    out = StringIO()
    call_command("sqs_tasks_rotate_key", stdout=out)
    rotated = current_secret()
    assert rotated["key"] != old and rotated["fallbacks"] == [old]
    assert "1 older key(s) still verify" in out.getvalue()
    after = in_new_container(lambda: tasks.add.enqueue(20, 22))
    assert in_new_container(drain) == 2
    for result in (queued, after):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL

    call_command("sqs_tasks_rotate_key", retire_fallbacks=True, stdout=StringIO())
    assert current_secret() == {"key": rotated["key"], "fallbacks": []}


def test_the_rotate_command_refuses_a_backend_without_a_signing_secret(stack: Stack) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="SECRET_KEY_FALLBACKS"):
        call_command("sqs_tasks_rotate_key")
