"""The whole path over HTTP: enqueue, drain through the Lambda handler, refresh, assert."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started

from sqs_tasks.backend import SQSBackend
from sqs_tasks.results import PENDING_TTL, task_error
from sqs_tasks.testing import Stack, drain
from tests import tasks


def test_success_is_recorded_and_readable(stack: Stack) -> None:
    result = tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY

    assert drain() == 1
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.attempts == 1
    assert len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.errors == []


def test_failure_records_exception_and_traceback(stack: Stack) -> None:
    result = tasks.fail.enqueue("boom")

    drain()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class is ValueError
    assert "boom" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_system_exit_and_non_json_return_are_failures(stack: Stack) -> None:
    exited = tasks.exit_task.enqueue()
    bad = tasks.bad_return.enqueue()

    drain()
    exited.refresh()
    bad.refresh()

    assert exited.status == TaskResultStatus.FAILED
    assert exited.errors[0].exception_class is SystemExit
    assert bad.status == TaskResultStatus.FAILED
    assert bad.errors[0].exception_class is TypeError


def test_get_result_reads_from_another_backend_instance(stack: Stack) -> None:
    result = tasks.add.enqueue(1, 1)
    drain()

    fresh = SQSBackend("default", stack.tasks["default"])
    fetched = fresh.get_result(result.id)

    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 2
    assert fetched.task.func is tasks.add.func
    assert tasks.add.get_result(result.id).id == result.id


def test_unknown_result_id_does_not_exist(stack: Stack) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")


def test_arguments_round_trip_exactly(stack: Stack) -> None:
    args = [2**53 + 1, 1.0, 0.1, -7, "żółć ☃ 😀", None, True, [1, [2, {"a": 3.5}]]]
    kwargs = {"nested": {"list": [1, 2.0], "big": 2**64}, "empty": {}, "text": ""}
    result = tasks.echo.enqueue(*args, **kwargs)

    drain()
    fetched = default_task_backend.get_result(result.id)

    assert fetched.args == args
    assert fetched.kwargs == kwargs
    assert fetched.return_value == {"args": args, "kwargs": kwargs}
    assert type(fetched.return_value["args"][1]) is float
    assert type(fetched.return_value["args"][0]) is int


def test_context_sees_its_id_and_attempt(stack: Stack) -> None:
    result = tasks.with_context.enqueue()

    drain()
    result.refresh()

    assert result.return_value == {"id": result.id, "attempt": 1}


def test_signals_are_sent_with_the_backend_class(stack: Stack) -> None:
    seen: list[tuple[str, type, TaskResultStatus]] = []

    def receiver(signal_name: str):  # type: ignore[no-untyped-def]
        def on(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((signal_name, sender, task_result.status))

        return on

    handlers = {
        s: receiver(n)
        for s, n in [
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_finished, "finished"),
        ]
    }
    for signal, handler in handlers.items():
        signal.connect(handler)
    try:
        tasks.add.enqueue(1, 2)
        drain()
    finally:
        for signal, handler in handlers.items():
            signal.disconnect(handler)

    assert seen == [
        ("enqueued", SQSBackend, TaskResultStatus.READY),
        ("started", SQSBackend, TaskResultStatus.RUNNING),
        ("finished", SQSBackend, TaskResultStatus.SUCCESSFUL),
    ]


def test_async_enqueue_and_async_task(stack: Stack) -> None:
    async def story() -> tuple[object, object]:
        result = await tasks.async_add.aenqueue(20, 22)
        await asyncio.to_thread(drain)
        await result.arefresh()
        fetched = await tasks.async_add.aget_result(result.id)
        return result.return_value, fetched.status

    assert asyncio.run(story()) == (42, TaskResultStatus.SUCCESSFUL)


def test_each_queue_gets_its_own_sqs_queue(stack: Stack) -> None:
    email = tasks.send_email.enqueue("a@example.com")
    plain = tasks.add.enqueue(1, 1)

    urls = stack.tasks["default"]["OPTIONS"]["QUEUE_URLS"]
    sqs = default_task_backend.client("sqs")  # type: ignore[attr-defined]
    depth = {
        name: int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        for name, url in urls.items()
    }
    assert depth == {"default": 1, "emails": 1}

    drain()
    email.refresh()
    plain.refresh()
    assert email.return_value == "sent to a@example.com"
    assert plain.return_value == 2


def test_tasks_enqueued_by_tasks_run_in_the_same_drain(stack: Stack) -> None:
    parent = tasks.spawn.enqueue(3)

    drain()
    parent.refresh()

    children = [default_task_backend.get_result(i) for i in parent.return_value]
    assert [c.status for c in children] == [TaskResultStatus.SUCCESSFUL] * 3
    assert [c.return_value for c in children] == [1, 2, 3]


def test_higher_priority_runs_first_within_a_batch(stack: Stack) -> None:
    for name, priority in [("low", -5), ("mid", 0), ("high", 50), ("top", 100)]:
        tasks.record.using(priority=priority).enqueue(name)

    drain()

    assert tasks.order == ["top", "high", "mid", "low"]


def test_result_expires_after_its_ttl(stack: Stack) -> None:
    result = tasks.add.enqueue(1, 1)
    drain()

    item = default_task_backend.store.get(result.id)  # type: ignore[attr-defined]
    result.refresh()
    expires = int(item["expires_at"]["N"])
    assert expires == int((result.finished_at + timedelta(days=14)).timestamp())


def test_no_waiting_result_expires_while_its_message_may_come(stack: Stack) -> None:
    # RESULT_TTL counts from the end; a READY result outlives SQS's 14-day retention, its wait
    # included, and so does one a retry puts back to wait.
    store = default_task_backend.store  # type: ignore[attr-defined]
    soon = datetime.now(UTC) + timedelta(minutes=10)
    result = tasks.add.using(run_after=soon).enqueue(1, 1)
    item = store.get(result.id)
    assert int(item["expires_at"]["N"]) == int((soon + PENDING_TTL).timestamp())

    now = soon  # due
    claim = store.claim(result.id, "w", now, now + timedelta(minutes=15))
    later = now + timedelta(days=60)
    assert store.retry(claim.item, now=now, error=task_error(RuntimeError("x")), run_after=later)
    item = store.get(result.id)
    assert int(item["expires_at"]["N"]) == int((later + PENDING_TTL).timestamp())
