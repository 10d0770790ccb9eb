"""faithful_moto(): sends stop scanning the queue, yet every count a client asks for is exact."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Queue, SQSBackend

from sqs_tasks.testing.moto_fixes import (
    _DYNAMODB_WRITES,
    _QUEUE_COUNTS,
    MotoChanged,
    _uncounted_send,
    faithful_moto,
    planned_patches,
)


def _originals() -> dict[str, Any]:
    return {name: Queue.__dict__[name] for name in (*_QUEUE_COUNTS, "delete_message")} | {
        "send_message": SQSBackend.__dict__["send_message"]
    }


def test_sends_read_no_count_and_counts_asked_for_are_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[str] = []
    original = Queue.__dict__["approximate_number_of_messages"]

    def spy(self: Any) -> int:
        counted.append(self.name)
        return int(original.fget(self))

    monkeypatch.setattr(Queue, "approximate_number_of_messages", property(spy))
    with mock_aws(), faithful_moto():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="depth")["QueueUrl"]
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(2)]
        )
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
        sent_counting = list(counted)
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)
        hidden = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]

    assert sent_counting == []
    assert attributes == {
        "ApproximateNumberOfMessages": "5",
        "ApproximateNumberOfMessagesDelayed": "1",
    }
    assert hidden == {"ApproximateNumberOfMessagesNotVisible": "2"}


def test_a_send_in_one_thread_leaves_counts_exact_in_the_others() -> None:
    inside, done = threading.Event(), threading.Event()

    def send() -> None:
        inside.set()
        done.wait(timeout=30)

    with mock_aws(), faithful_moto():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="threads")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="one")
        sender = threading.Thread(target=_uncounted_send(send))
        sender.start()
        inside.wait(timeout=30)
        try:
            depth = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        finally:
            done.set()
            sender.join()

    assert depth == {"ApproximateNumberOfMessages": "1"}


def test_a_delete_holds_the_queue_lock_that_sends_and_other_deletes_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Unlocked, two concurrent deletes each rebuild the message list and one puts the other's
    # deleted message back (getmoto/moto#7164): held, the lock leaves no gap for that.
    original = Queue.__dict__["delete_message"]
    held: list[bool] = []

    def spy(self: Any, receipt_handle: str) -> None:
        taken: list[bool] = []

        def try_lock() -> None:
            taken.append(self._messages_lock.acquire(blocking=False))
            if taken[0]:
                self._messages_lock.release()

        other = threading.Thread(target=try_lock)
        other.start()
        other.join()
        held.append(not taken[0])
        original(self, receipt_handle)

    monkeypatch.setattr(Queue, "delete_message", spy)
    with mock_aws(), faithful_moto():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="deletes")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="one")
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        depth = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]

    assert held == [True]
    assert depth == {"ApproximateNumberOfMessagesNotVisible": "0"}


def test_moto_is_itself_again_on_exit() -> None:
    before = _originals()
    with faithful_moto():
        assert _originals() != before
    assert _originals() == before


def test_every_fix_applies_to_the_installed_moto() -> None:
    patched = {(owner.__name__, name) for owner, name, _ in planned_patches()}

    assert patched == {
        *(("DynamoDBBackend", name) for name in _DYNAMODB_WRITES),
        ("SQSBackend", "is_message_valid_based_on_retention_period"),
        ("SQSBackend", "send_message"),
        ("Queue", "delete_message"),
        *(("Queue", name) for name in _QUEUE_COUNTS),
    }


def test_a_moto_internal_that_is_gone_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(SQSBackend, "is_message_valid_based_on_retention_period")

    with pytest.raises(MotoChanged, match=r"SQSBackend\.is_message_valid_based_on_retention"):
        planned_patches()


def test_a_moto_internal_of_another_shape_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Queue, "approximate_number_of_messages", 0)

    with pytest.raises(MotoChanged, match=r"Queue\.approximate_number_of_messages is not the prop"):
        planned_patches()
