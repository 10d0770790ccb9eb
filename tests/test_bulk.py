"""enqueue_many(): batched writes and sends, input order kept, and nothing silently dropped."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import InvalidTask
from django.tasks.signals import task_enqueued

from sqs_tasks.exceptions import BulkEnqueueError, PayloadTooLarge
from sqs_tasks.testing import Stack, drain
from tests import tasks
from tests.conftest import queue_depth
from tests.faults.support import all_items


def _backend() -> Any:
    return default_task_backend


def _items() -> dict[str, dict[str, Any]]:
    """Every item in the table, by id."""
    return {item["id"]["S"]: item for item in all_items()}


@pytest.fixture
def enqueued() -> Iterator[list[str]]:
    """Ids of the results task_enqueued was sent for, in order."""
    ids: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        ids.append(task_result.id)

    task_enqueued.connect(receiver)
    yield ids
    task_enqueued.disconnect(receiver)


@contextmanager
def _hook(client: Any, event: str, handler: Any) -> Iterator[None]:
    """A botocore event handler, registered for the with block."""
    client.meta.events.register(event, handler)
    try:
        yield
    finally:
        client.meta.events.unregister(event, handler)


def _forged(**changes: Any) -> Any:
    """tests.tasks.add with attributes Django would refuse at Task creation."""
    task = tasks.add.using(priority=1)
    for name, value in changes.items():
        object.__setattr__(task, name, value)
    return task


def test_results_come_back_in_input_order(stack: Stack, enqueued: list[str]) -> None:
    entries: list[Any] = [
        (tasks.add, [1, 2], {}),
        (tasks.send_email, ["a@example.com"], {}),
        (tasks.echo, (), {"k": [1, 2.5, "é"]}),
        (tasks.add.using(priority=7), (3,), {"b": 4}),
    ]

    results = _backend().enqueue_many(entries)

    assert [r.task.module_path for r in results] == [
        "tests.tasks.add",
        "tests.tasks.send_email",
        "tests.tasks.echo",
        "tests.tasks.add",
    ]
    assert [r.status for r in results] == [TaskResultStatus.READY] * 4
    assert enqueued == [r.id for r in results]
    assert results[3].task.priority == 7
    assert drain() == 4
    for result in results:
        result.refresh()
    assert [r.return_value for r in results] == [
        3,
        "sent to a@example.com",
        {"args": [], "kwargs": {"k": [1, 2.5, "é"]}},
        7,
    ]


@pytest.mark.slow
def test_a_thousand_tasks_are_enqueued_and_all_succeed(stack: Stack) -> None:
    results = _backend().enqueue_many([(tasks.add, [i, 1], {}) for i in range(1000)])

    assert len({r.id for r in results}) == 1000
    assert drain() == 1000
    items = _items()
    assert {items[r.id]["status"]["S"] for r in results} == {"SUCCESSFUL"}
    assert [items[r.id]["return_value"]["S"] for r in results] == [str(i + 1) for i in range(1000)]


def test_a_thousand_tasks_cost_one_call_per_25_writes_and_10_sends(
    stack: Stack, calls: list[str]
) -> None:
    entries: list[Any] = [
        (tasks.send_email, [str(i)], {}) if i % 3 == 0 else (tasks.add, [i, 1], {})
        for i in range(1000)
    ]

    _backend().enqueue_many(entries)

    emails = sum(1 for t, _, _ in entries if t is tasks.send_email)
    assert calls.count("BatchWriteItem") == math.ceil(1000 / 25)
    assert calls.count("SendMessageBatch") == math.ceil(emails / 10) + math.ceil(
        (1000 - emails) / 10
    )
    assert set(calls) == {"BatchWriteItem", "SendMessageBatch"}


def test_one_queue_of_a_thousand_takes_exactly_140_calls(stack: Stack, calls: list[str]) -> None:
    _backend().enqueue_many([(tasks.add, [i, 1], {}) for i in range(1000)])

    assert calls.count("BatchWriteItem") == 40
    assert calls.count("SendMessageBatch") == 100
    assert len(calls) == 140


def test_mixed_queues_and_run_after(stack: Stack, time_machine: Any) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=True)
    soon, later = start + timedelta(minutes=5), start + timedelta(days=3)
    entries: list[Any] = [
        (tasks.count, ["now"], {}),
        (tasks.send_email.using(run_after=soon), ["soon@example.com"], {}),
        (tasks.count.using(run_after=later), ["later"], {}),
        (tasks.send_email, ["now@example.com"], {}),
    ]

    results = _backend().enqueue_many(entries)

    # The 3-day wait is handed to EventBridge Scheduler (aws_stack provides one), the rest to SQS.
    scheduler = _backend().client("scheduler")
    schedules = scheduler.list_schedules(GroupName=_backend().scheduler.group)["Schedules"]
    assert [s["Name"].split("-")[0] for s in schedules] == [results[2].id]
    assert queue_depth("default") == 1 and queue_depth("emails") == 2
    assert drain() == 2  # Only the two due now.
    time_machine.move_to(soon + timedelta(seconds=1), tick=True)
    drain()
    time_machine.move_to(later - timedelta(minutes=1), tick=True)
    drain()
    for result in results:
        result.refresh()
    ok, waiting = TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY
    assert [r.status for r in results] == [ok, ok, waiting, ok]
    assert results[1].started_at >= soon
    time_machine.move_to(later + timedelta(minutes=15, seconds=1), tick=True)
    drain()
    results[2].refresh()
    assert results[2].status == TaskResultStatus.SUCCESSFUL
    assert results[2].started_at >= later
    assert tasks.runs["later"] == 1


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ((tasks.echo, [object()], {}), TypeError, r"echo argument args\[0\] is a object"),
        ((tasks.echo, [float("nan")], {}), TypeError, "not JSON serializable"),
        ((tasks.echo, ["x" * 500_000], {}), PayloadTooLarge, "the limit is 393,216 bytes"),
        ((_forged(queue_name="nope"), [1, 2], {}), InvalidTask, "Queue 'nope'"),
        ((_forged(run_after=datetime.now()), [1, 2], {}), InvalidTask, "aware"),
        ((_forged(backend="other"), [1, 2], {}), InvalidTask, "uses backend 'other'"),
        ((tasks.add, [1, 2]), TypeError, "not a .task, args, kwargs. triple"),
        ((print, [1], {}), TypeError, "expected a Task"),
        ((tasks.add, 12, {}), TypeError, "args must be a list"),
    ],
    ids=[
        "object",
        "nan",
        "too-large",
        "queue",
        "naive-run-after",
        "other-backend",
        "pair",
        "callable",
        "args",
    ],
)
def test_one_invalid_entry_means_nothing_is_written(
    stack: Stack, calls: list[str], bad: Any, error: type[Exception], match: str
) -> None:
    entries = [(tasks.add, [i, 1], {}) for i in range(30)] + [bad]

    with pytest.raises(error, match=match) as raised:
        _backend().enqueue_many(entries)

    assert "entries[30]" in "".join([str(raised.value), *getattr(raised.value, "__notes__", [])])
    assert calls == []
    assert _items() == {}
    assert queue_depth("default") == 0


def test_a_queue_that_fails_marks_its_results_failed_and_lists_them(
    stack: Stack, calls: list[str], enqueued: list[str]
) -> None:
    entries: list[Any] = [
        (tasks.send_email, [f"{i}@example.com"], {}) if i % 4 == 1 else (tasks.add, [i, 1], {})
        for i in range(40)
    ]
    emails = [i for i in range(40) if i % 4 == 1]
    sqs = _backend().client("sqs")
    url = _backend().queue.url("emails")  # Resolved, then the queue goes away.
    sqs.delete_queue(QueueUrl=url)

    with pytest.raises(BulkEnqueueError) as raised:
        _backend().enqueue_many(entries)

    error = raised.value
    assert sorted(error.failures) == emails
    assert all("not sent: SendMessageBatch failed" in why for why in error.failures.values())
    assert all(why.endswith("(marked FAILED)") for why in error.failures.values())
    assert "10 of 40 entries failed (30 enqueued" in str(error)
    assert "entries[1] tests.tasks.send_email result " in str(error)
    assert [i for i, r in enumerate(error.results) if r is None] == emails
    ok = [r for r in error.results if r is not None]
    assert enqueued == [r.id for r in ok]
    items = _items()
    assert len(items) == 40
    failed = [item for item in items.values() if item["status"]["S"] == "FAILED"]
    assert len(failed) == 10
    assert {f["errors"]["L"][0]["M"]["exception_class_path"]["S"] for f in failed} == {
        "sqs_tasks.exceptions.EnqueueError"
    }
    assert all(f["failure_pk"]["S"].startswith("emails#") for f in failed)
    assert sqs.create_queue(QueueName=url.rsplit("/", 1)[1])["QueueUrl"] == url  # For drain().
    assert drain() == 30
    for result in ok:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL


def test_unprocessed_items_are_written_again_after_a_pause(
    stack: Stack, calls: list[str], pauses: list[int]
) -> None:
    dynamodb = _backend().client("dynamodb")
    table = _backend().store.table_name
    held: list[Any] = []
    seen: list[int] = []

    def hold_three(params: Any, **kwargs: Any) -> None:
        seen.append(len(params["RequestItems"][table]))
        if len(seen) == 1:  # Only on the first call, as a briefly throttled table would.
            held.extend(params["RequestItems"][table][-3:])
            params["RequestItems"] = {table: params["RequestItems"][table][:-3]}

    def report(parsed: Any, **kwargs: Any) -> None:
        if held:
            parsed["UnprocessedItems"] = {table: held[:]}
            held.clear()

    with (
        _hook(dynamodb, "before-parameter-build.dynamodb.BatchWriteItem", hold_three),
        _hook(dynamodb, "after-call.dynamodb.BatchWriteItem", report),
    ):
        results = _backend().enqueue_many([(tasks.add, [i, 1], {}) for i in range(10)])

    assert pauses == [1]
    assert seen == [10, 3]
    assert calls.count("BatchWriteItem") == 2
    assert set(_items()) == {r.id for r in results}
    assert drain() == 10


def test_items_left_unprocessed_past_the_bound_are_reported_and_run_nothing(
    stack: Stack, calls: list[str], pauses: list[int]
) -> None:
    dynamodb = _backend().client("dynamodb")
    table = _backend().store.table_name
    stuck: list[Any] = []  # The put of add(0, 1), which DynamoDB never gets round to.
    alone: list[bool] = []

    def hold(params: Any, **kwargs: Any) -> None:
        requests = params["RequestItems"][table]
        mine = [r for r in requests if r["PutRequest"]["Item"]["args"]["S"] == "[0,1]"]
        stuck[:] = mine
        alone[:] = [mine == requests]
        if mine and not alone[0]:
            params["RequestItems"] = {table: [r for r in requests if r not in mine]}

    def answer_alone(**kwargs: Any) -> Any:
        if alone[0]:  # Nothing else left to send: answer as a throttled table, without a call.
            return SimpleNamespace(status_code=200), {"UnprocessedItems": {table: stuck[:]}}
        return None

    def report(parsed: Any, **kwargs: Any) -> None:
        if stuck:
            parsed["UnprocessedItems"] = {table: stuck[:]}

    entries = [(tasks.add, [i, 1], {}) for i in range(30)]
    with (
        pytest.raises(BulkEnqueueError, match="1 of 30 entries failed") as raised,
        _hook(dynamodb, "before-parameter-build.dynamodb.BatchWriteItem", hold),
        _hook(dynamodb, "before-call.dynamodb.BatchWriteItem", answer_alone),
        _hook(dynamodb, "after-call.dynamodb.BatchWriteItem", report),
    ):
        _backend().enqueue_many(entries)

    assert pauses == [1, 2, 3, 4, 5]
    (why,) = raised.value.failures.values()
    assert why == "not stored: unprocessed after 6 attempts"
    assert raised.value.results[0] is None
    assert [r is None for r in raised.value.results].count(True) == 1
    assert calls.count("BatchWriteItem") == 6 + 1
    assert len(_items()) == 29
    assert drain() == 29  # add(0, 1)'s message was never sent
    assert len(_items()) == 29
    assert {item["status"]["S"] for item in _items().values()} == {"SUCCESSFUL"}


def test_sends_sqs_could_not_take_are_retried_unless_the_sender_is_at_fault(
    stack: Stack, calls: list[str], pauses: list[int]
) -> None:
    sqs = _backend().client("sqs")
    first = True

    def drop(params: Any, **kwargs: Any) -> None:
        if first:
            params["Entries"] = [e for e in params["Entries"] if e["Id"] not in {"2", "5"}]

    def report(parsed: Any, **kwargs: Any) -> None:
        nonlocal first
        if first:
            parsed.setdefault("Failed", []).extend(
                [
                    {"Id": "2", "Code": "InternalError", "SenderFault": False},
                    {"Id": "5", "Code": "InvalidMessageContents", "SenderFault": True},
                ]
            )
            first = False

    with (
        pytest.raises(BulkEnqueueError) as raised,
        _hook(sqs, "before-parameter-build.sqs.SendMessageBatch", drop),
        _hook(sqs, "after-call.sqs.SendMessageBatch", report),
    ):
        _backend().enqueue_many([(tasks.add, [i, 1], {}) for i in range(10)])

    assert pauses == [1]
    assert calls.count("SendMessageBatch") == 2
    assert raised.value.failures == {5: "not sent: InvalidMessageContents (marked FAILED)"}
    assert drain() == 9
    statuses = sorted(item["status"]["S"] for item in _items().values())
    assert statuses == ["FAILED"] + ["SUCCESSFUL"] * 9


def test_aenqueue_many(stack: Stack) -> None:
    results = async_to_sync(_backend().aenqueue_many)([(tasks.add, [2, 2], {})] * 3)

    assert len({r.id for r in results}) == 3
    assert drain() == 3
    assert {_backend().get_result(r.id).return_value for r in results} == {4}
