"""What enqueue refuses before writing, what it writes, and what it costs."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.test import override_settings

from sqs_tasks.exceptions import EnqueueError, PayloadTooLarge
from sqs_tasks.results import item_size
from sqs_tasks.testing import Stack, drain
from tests import tasks
from tests.conftest import queue_depth


def _backend() -> Any:
    return default_task_backend


def _scan() -> list[dict[str, Any]]:
    store = _backend().store
    items: list[dict[str, Any]] = store._client().scan(TableName=store.table_name)["Items"]
    return items


def test_oversized_arguments_are_refused_before_anything_is_written(stack: Stack) -> None:
    with pytest.raises(PayloadTooLarge, match=r"take 500,\d+ bytes .* the limit is 393,216 bytes"):
        tasks.echo.enqueue("x" * 500_000)

    assert _scan() == []
    assert queue_depth() == 0


@pytest.mark.parametrize("bad", [object(), {1, 2}, float("nan"), datetime(2026, 1, 1)])
def test_non_json_arguments_raise_type_error_before_anything_is_written(
    stack: Stack, bad: object
) -> None:
    with pytest.raises(TypeError):
        tasks.echo.enqueue(value=bad)

    assert _scan() == []
    assert queue_depth() == 0


def test_invalid_task_options_are_refused(stack: Stack) -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        tasks.add.using(queue_name="nope").enqueue(1, 2)
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        tasks.add.using(run_after=datetime.now()).enqueue(1, 2)


@pytest.mark.parametrize(("priority", "stored"), [(5.0, "5"), (True, "1"), (-3, "-3")])
def test_any_whole_number_priority_runs(stack: Stack, priority: object, stored: str) -> None:
    # Django accepts a whole number of any type: it must not make a message no worker reads.
    result = tasks.add.using(priority=priority).enqueue(2, 3)
    drain()

    assert _backend().store.get(result.id)["priority"] == {"N": stored}
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.task.priority == int(stored)


def test_naive_run_after_without_use_tz_is_in_time_zone(stack: Stack) -> None:
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Kolkata"):
        result = tasks.add.using(run_after=datetime(2030, 1, 1, 5, 30)).enqueue(1, 1)

    item = _backend().store.get(result.id)
    assert item["run_after"] == {"S": "2030-01-01T00:00:00.000000+00:00"}


@pytest.mark.parametrize("bad", ["", "x" * 2049])
def test_ids_no_item_can_have_do_not_exist(stack: Stack, bad: str) -> None:
    # DynamoDB refuses such keys with a ValidationException: a view's 404 must still work.
    with pytest.raises(TaskResultDoesNotExist):
        _backend().get_result(bad)
    with pytest.raises(TaskResultDoesNotExist, match="1 of 2 results do not exist"):
        _backend().get_results([bad, tasks.add.enqueue(1, 1).id])
    with pytest.raises(TypeError, match="Result ids must be strings, not 123"):
        _backend().get_result(123)


def test_happy_path_item_is_small_and_readable(stack: Stack) -> None:
    result = tasks.add.enqueue(2, 3)
    drain()

    item = _backend().store.get(result.id)
    assert item_size(item) < 1024
    assert item["status"] == {"S": "SUCCESSFUL"}
    assert item["task_path"] == {"S": "tests.tasks.add"}
    assert item["queue_name"] == {"S": "default"}
    assert item["args"] == {"S": "[2,3]"}
    assert item["return_value"] == {"S": "5"}
    assert item["attempts"] == {"N": "1"}
    assert item["finished_at"]["S"].endswith("+00:00")
    assert "failure_pk" not in item and "lease_until" not in item


def test_happy_path_costs_four_requests(stack: Stack, calls: list[str]) -> None:
    result = tasks.add.enqueue(2, 3)
    drain()
    result.refresh()

    # The event source mapping's receives and deletes are drain()'s, on clients of its own.
    # The put and the send go at once, in either order.
    assert sorted(calls[:2]) == ["PutItem", "SendMessage"]
    assert calls[2:] == ["UpdateItem", "PutItem", "GetItem"]


def test_queue_prefix_is_resolved_once(stack: Stack) -> None:
    options = dict(stack.tasks["default"]["OPTIONS"])
    urls = options.pop("QUEUE_URLS")
    prefixed = {**options, "QUEUE_NAME_PREFIX": "sqs-tasks-default-"}
    with override_settings(TASKS={"default": {**stack.tasks["default"], "OPTIONS": prefixed}}):
        made: list[str] = []
        _backend().client("sqs").meta.events.register(
            "before-call.*.*", lambda model, **kw: made.append(model.name)
        )

        for i in range(3):
            tasks.add.enqueue(i, i)

        assert made == ["GetQueueUrl", "SendMessage", "SendMessage", "SendMessage"]
        assert _backend().queue.url("default") == urls["default"]


def _refuse_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQS refuses every send, as it does when the queue's KMS key may not be used."""

    def refused(*args: Any, **kwargs: Any) -> None:
        error = {"Error": {"Code": "KmsAccessDenied", "Message": "no kms:GenerateDataKey"}}
        raise ClientError(error, "SendMessage")

    monkeypatch.setattr(_backend().client("sqs"), "send_message", refused)


def test_failed_send_marks_the_result_failed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_sends(monkeypatch)

    with pytest.raises(EnqueueError, match="is marked FAILED"):
        tasks.send_email.enqueue("lost@example.com")

    (item,) = _scan()
    assert item["status"] == {"S": "FAILED"}
    assert item["errors"]["L"][0]["M"]["exception_class_path"] == {
        "S": "sqs_tasks.exceptions.EnqueueError"
    }
    assert item["failure_pk"]["S"].startswith("emails#")


def test_a_send_that_went_after_all_is_not_called_failed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = _backend().queue
    send = queue.send
    stored = threading.Event()

    def sent_then_timed_out(*args: Any, **kwargs: Any) -> None:
        send(*args, **kwargs)
        assert stored.wait(30)  # The put, made at the same time, has landed.
        drain()  # A worker got the message before the caller heard back.
        raise ReadTimeoutError(endpoint_url="https://sqs")

    monkeypatch.setattr(queue, "send", sent_then_timed_out)

    def landed(**kwargs: Any) -> None:
        stored.set()

    events = _backend().client("dynamodb").meta.events
    events.register("after-call.dynamodb.PutItem", landed)
    try:
        with pytest.raises(EnqueueError, match="not marked FAILED: no READY result") as raised:
            tasks.add.enqueue(2, 3)
    finally:
        events.unregister("after-call.dynamodb.PutItem", landed)

    (item,) = _scan()
    assert item["status"] == {"S": "SUCCESSFUL"}
    assert item["id"]["S"] in str(raised.value)


def test_a_result_that_cannot_be_marked_failed_says_so(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_sends(monkeypatch)
    store = _backend().store

    def unreachable(*args: Any, **kwargs: Any) -> bool:
        raise EndpointConnectionError(endpoint_url="https://dynamodb")

    monkeypatch.setattr(store, "fail_abandoned", unreachable)
    with pytest.raises(EnqueueError, match=r"not marked FAILED .*: it may stay READY"):
        tasks.send_email.enqueue("lost@example.com")


def test_a_put_that_landed_but_timed_out_leaves_no_ready_orphan(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _backend().store
    put = store.put_new
    _backend().producer.table_found = True  # Not the first enqueue: the send goes at once.

    def landed_then_timed_out(item: dict[str, Any]) -> None:
        put(item)
        raise ReadTimeoutError(endpoint_url="https://dynamodb")

    monkeypatch.setattr(store, "put_new", landed_then_timed_out)
    with pytest.raises(ReadTimeoutError) as raised:
        tasks.add.enqueue(2, 3)

    (item,) = _scan()
    assert item["status"] == {"S": "FAILED"}
    assert "could not be stored" in item["errors"]["L"][0]["M"]["traceback"]["S"]
    assert "the result is marked FAILED and will not run" in "\n".join(raised.value.__notes__)
    # Its message went at the same time: it finds the result FAILED and runs nothing.
    assert queue_depth() == 1
    assert drain() == 1
    assert queue_depth() == 0
    assert _scan()[0]["status"] == {"S": "FAILED"}


def test_failures_are_listed_from_the_sparse_index(stack: Stack) -> None:
    failed = {tasks.fail.enqueue(str(i)).id for i in range(5)}
    tasks.add.enqueue(1, 1)
    drain()

    listed = _backend().store.failures("default")

    assert {item["id"]["S"] for item in listed} == failed
    stamps = [item["finished_at"]["S"] for item in listed]
    assert stamps == sorted(stamps, reverse=True)


def test_run_after_sets_the_sqs_delay(stack: Stack) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    result = tasks.add.using(run_after=soon).enqueue(1, 1)

    assert drain() == 0
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert queue_depth() == 1


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_enqueue_works_in_a_process_forked_after_one(stack: Stack) -> None:
    """A child forked after its parent enqueued (a preforking server) enqueues, not hangs."""
    _backend().producer.table_found = True
    tasks.add.enqueue(1, 1)  # The parent's overlap pool has a thread now.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # The child: report the result id, or die of SIGALRM if the send hangs.
        signal.alarm(30)
        try:
            os.write(write, tasks.add.enqueue(2, 2).id.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_id = pipe.read()
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert child_id
    assert drain() == 2
    assert _backend().get_result(child_id).status == TaskResultStatus.SUCCESSFUL
