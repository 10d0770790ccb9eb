"""sqs_tasks_worker's heartbeat: a task that outlives its batch's visibility timeout is not
delivered again, and its lease does not lapse, while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus, default_task_backend

from lambda_handler.handler import handler
from sqs_tasks.results import timestamp
from sqs_tasks.testing import Stack
from sqs_tasks.worker.context import LambdaContext
from sqs_tasks.worker.events import lambda_event
from sqs_tasks.worker.heartbeat import Heartbeat
from sqs_tasks.worker.poller import Worker
from tests import tasks

VISIBILITY = 60  # seconds a receive hides the batch
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Batch:
    """One message received as the worker receives it, its task running on a thread."""

    def __init__(self) -> None:
        backend: Any = default_task_backend
        self.result = tasks.hold.enqueue()
        self.store = backend.store
        self.sqs = backend.client("sqs")
        self.url = backend.queue.url("default")
        self.messages = self.receive(VisibilityTimeout=VISIBILITY)
        assert len(self.messages) == 1
        self.context = LambdaContext(
            "test-worker-1", time.monotonic() + VISIBILITY, threading.Event()
        )
        event = lambda_event(self.messages, self.url, self.sqs.meta.region_name)
        self.thread = threading.Thread(target=handler, args=(event, self.context))
        self.thread.start()
        assert tasks.hold_started.wait(timeout=30)

    def receive(self, **kwargs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, **kwargs
        ).get("Messages", [])
        return found

    def lease(self) -> str:
        lease: str = self.store.get(self.result.id)["lease_until"]["S"]
        return lease

    def finish(self) -> None:
        tasks.hold_release.set()
        self.thread.join(timeout=30)


@pytest.fixture
def batch(stack: Stack, time_machine: Any) -> Iterator[Batch]:
    tasks.hold_started.clear()
    tasks.hold_release.clear()
    time_machine.move_to(START, tick=False)
    running = Batch()
    yield running
    running.finish()


def test_without_a_beat_the_message_of_a_long_task_comes_back(
    batch: Batch, time_machine: Any
) -> None:
    time_machine.move_to(START + timedelta(seconds=VISIBILITY + 20))

    assert [m["MessageId"] for m in batch.receive()] == [batch.messages[0]["MessageId"]]


def test_a_beat_keeps_the_message_hidden_and_the_attempt_leased(
    batch: Batch, time_machine: Any
) -> None:
    leased = batch.lease()
    time_machine.move_to(START + timedelta(seconds=50))

    Heartbeat(batch.sqs, batch.url, batch.messages, batch.context, VISIBILITY).beat()
    time_machine.move_to(START + timedelta(seconds=VISIBILITY + 20))

    assert batch.receive() == []
    assert batch.lease() == timestamp(START + timedelta(seconds=50 + VISIBILITY + 30))
    assert batch.lease() > leased
    assert batch.context.get_remaining_time_in_millis() > (VISIBILITY - 5) * 1000
    batch.finish()
    batch.result.refresh()
    assert (batch.result.status, batch.result.attempts) == (TaskResultStatus.SUCCESSFUL, 1)
    assert tasks.runs["hold"] == 1
    assert "lease_until" not in batch.store.get(batch.result.id)


def test_a_beat_after_the_attempt_finished_leaves_the_result_alone(batch: Batch) -> None:
    attempts = batch.store.get(batch.result.id)["attempts"]
    batch.finish()
    finished = batch.store.get(batch.result.id)

    Heartbeat(batch.sqs, batch.url, batch.messages, batch.context, VISIBILITY).beat()

    assert batch.store.get(batch.result.id) == finished
    assert not batch.store.extend_lease(batch.result.id, attempts, START)


def test_a_worker_beats_while_its_batch_runs(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks.hold_started.clear()
    tasks.hold_release.clear()
    beats = threading.Event()
    beat = Heartbeat.beat

    def beat_and_tell(self: Heartbeat) -> None:
        task_running = tasks.hold_started.is_set()  # then its attempt is registered to extend
        beat(self)
        if task_running:
            beats.set()

    monkeypatch.setattr(Heartbeat, "beat", beat_and_tell)
    backend: Any = default_task_backend
    result = tasks.hold.enqueue()
    worker = Worker(wait_time=0, until_empty=True, visibility_timeout=10)
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        assert tasks.hold_started.wait(timeout=30)
        assert beats.wait(timeout=30)  # a third of the visibility timeout into the task
        leased = backend.store.get(result.id)["lease_until"]["S"]
    finally:
        tasks.hold_release.set()
        running.join(timeout=60)

    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.SUCCESSFUL, 1)
    # Claimed with 10 s left, so leased to start + 40 s; the beat, 3.3 s later, to + 43.3 s.
    assert result.started_at is not None
    assert leased > timestamp(result.started_at + timedelta(seconds=10 + 30))


def test_a_batch_that_waited_for_its_slot_beats_before_its_first_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Received, then held while every slot was busy: one second of its visibility is left.
    backend: Any = default_task_backend
    result = tasks.count.enqueue("late start")
    sqs, url = backend.client("sqs"), backend.queue.url("default")
    messages = sqs.receive_message(QueueUrl=url, VisibilityTimeout=VISIBILITY)["Messages"]
    context = LambdaContext("test-worker-2", time.monotonic() + 1, threading.Event())
    left_at_start: list[int] = []

    def handle(event: dict[str, Any], lambda_context: Any) -> Any:
        left_at_start.append(lambda_context.get_remaining_time_in_millis())
        return handler(event, lambda_context)

    with Heartbeat(sqs, url, messages, context, VISIBILITY):
        handle(lambda_event(messages, url, sqs.meta.region_name), context)

    # Hidden and leased for a whole visibility timeout again, so the record ran, once.
    assert left_at_start[0] > (VISIBILITY - 5) * 1000
    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.SUCCESSFUL, 1)
    assert tasks.runs["late start"] == 1


def test_a_stale_attempt_neither_extends_nor_finishes_over_a_newer_one(
    batch: Batch, time_machine: Any
) -> None:
    """Its lease lapsed and another worker claimed the result: the stale attempt's beat leaves
    the newer lease alone, and its outcome is refused when its task returns."""
    now = START + timedelta(seconds=VISIBILITY + 31)  # past the lease, START + 90 s
    time_machine.move_to(now)
    newer = batch.store.claim(batch.result.id, "test-worker-2", now, now + timedelta(minutes=5))
    assert newer.claimed

    Heartbeat(batch.sqs, batch.url, batch.messages, batch.context, VISIBILITY).beat()
    assert batch.store.get(batch.result.id) == newer.item

    batch.finish()
    assert batch.store.get(batch.result.id) == newer.item
    assert tasks.runs["hold"] == 1
