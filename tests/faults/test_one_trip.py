"""Promise 6: enqueue takes one round trip: the item is written while its message is sent.

Whichever arrives first and whichever fails, a task runs once or not at all, and says so: a
message whose item is not there yet goes back for a second and runs nothing; one whose write
failed (enqueue raised) is dropped once STORE_BOUND old, before the dead-letter queue; a send
that failed leaves no READY result. The order of arrival is forced with botocore event hooks
and threading events (no sleeps); time passes on the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError
from django.tasks import TaskResultStatus
from django.tasks.signals import task_enqueued

from lambda_handler import dlq
from sqs_tasks.aws.store import COND_NEW
from sqs_tasks.exceptions import BulkEnqueueError, EnqueueError
from sqs_tasks.message import Envelope, peek_result_id
from sqs_tasks.producer import STORE_BOUND
from sqs_tasks.testing import MAX_RECEIVE_COUNT, Stack, drain
from sqs_tasks.worker.unstored import wait_seconds
from tests.faults import tasks
from tests.faults.inject import FAULTS, Inject, response_lost, send_for_real
from tests.faults.support import (
    all_items,
    backend,
    client,
    delete,
    deliver,
    dlq_url,
    item,
    queue_depth,
    receive_all,
)

# How long an ordering hook waits for its cue before the test fails: never, when it works.
CUE = 30

# Every test but the first enqueue's runs as after it: the write and the send overlap.
pytestmark = pytest.mark.usefixtures("table_found")


def _is_new(request: dict[str, Any]) -> bool:
    return request.get("ConditionExpression") == COND_NEW


@contextmanager
def _hook(service: str, event: str, fn: Callable[..., Any]) -> Iterator[None]:
    """fn on one botocore event of the backend's own client of service, while in the block."""
    events = client(service).meta.events
    events.register(event, fn)
    try:
        yield
    finally:
        events.unregister(event, fn)


def _ran_once(result: Any) -> None:
    """One delivery drained, and it ran the task once to success."""
    assert drain() == 1
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert tasks.runs[result.id] == 1


def _cue() -> tuple[threading.Event, Callable[..., None], Callable[..., None]]:
    """An event, a hook that sets it, and a hook that waits for it (failing after CUE s)."""
    cue = threading.Event()

    def give(**kwargs: Any) -> None:
        cue.set()

    def wait(**kwargs: Any) -> None:
        assert cue.wait(CUE), "the other request never came"

    return cue, give, wait


def _elsewhere[R](fn: Callable[[], R]) -> R:
    """fn() on a thread of its own, as a worker elsewhere runs (with clients of its own)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(CUE)


def test_the_first_enqueue_writes_before_it_sends(stack: Stack) -> None:
    """Until a write has found the table, the send waits for it: a missing table (a settings
    mistake) sends nothing. Then the two overlap."""
    backend().producer.table_found = False
    order: list[str] = []

    def stored(**kwargs: Any) -> None:
        order.append("stored")

    def sending(**kwargs: Any) -> None:
        order.append("sending")

    with (
        _hook("dynamodb", "after-call.dynamodb.PutItem", stored),
        _hook("sqs", "before-call.sqs.SendMessage", sending),
    ):
        tasks.tally.enqueue(1)

    assert order == ["stored", "sending"]
    assert backend().producer.table_found


def test_the_write_and_the_send_are_in_flight_at_once(stack: Stack) -> None:
    """PutItem and SendMessage each wait until the other is on its way: they meet."""
    both = threading.Barrier(2)

    def meet(**kwargs: Any) -> None:
        both.wait(CUE)

    with (
        _hook("dynamodb", "before-call.dynamodb.PutItem", meet),
        _hook("sqs", "before-call.sqs.SendMessage", meet),
    ):
        result = tasks.tally.enqueue(21)

    _ran_once(result)


def test_task_enqueued_is_sent_once_from_the_callers_thread_after_both(stack: Stack) -> None:
    """The write's hand-off to a pool thread changes nothing for task_enqueued's receivers."""
    heard: list[tuple[str, str, bool]] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        stored = item(task_result.id) is not None
        heard.append((task_result.id, threading.current_thread().name, stored))

    task_enqueued.connect(receiver)
    try:
        result = tasks.tally.enqueue(21)
    finally:
        task_enqueued.disconnect(receiver)

    assert heard == [(result.id, threading.current_thread().name, True)]
    assert queue_depth() == (1, 0)  # and the message was sent before it


def test_a_message_before_its_item_runs_nothing_and_comes_back_in_a_second(
    stack: Stack, clock: Any
) -> None:
    """The message is delivered while the write waits: handed back for 1 s, nothing run;
    once the item is there, the next delivery runs it once."""
    _, sent, after_send = _cue()
    early: list[set[str]] = []

    def deliver_first(**kwargs: Any) -> None:
        after_send()
        messages = receive_all()
        early.append({m["MessageId"] for m in messages})
        assert _elsewhere(lambda: deliver(messages)) == early[0]  # failed: handed back

    with (
        _hook("sqs", "after-call.sqs.SendMessage", sent),
        _hook("dynamodb", "before-call.dynamodb.PutItem", deliver_first),
    ):
        result = tasks.tally.enqueue(21)

    assert len(early[0]) == 1
    assert tasks.runs == {}
    assert queue_depth() == (0, 1)  # hidden, for wait_seconds(1)
    stored = item(result.id)
    assert stored is not None and stored["status"]["S"] == "READY"
    assert stored["attempts"]["N"] == "0"  # the early delivery claimed nothing
    clock.shift(timedelta(seconds=wait_seconds(1), milliseconds=100))
    _ran_once(result)
    assert result.attempts == 1
    assert queue_depth() == (0, 0)


def test_an_item_before_its_message_runs_once(stack: Stack) -> None:
    """The send waits until the write is done: the one delivery runs it."""
    _, stored, after_store = _cue()
    with (
        _hook("dynamodb", "after-call.dynamodb.PutItem", stored),
        _hook("sqs", "before-call.sqs.SendMessage", after_store),
    ):
        result = tasks.tally.enqueue(21)

    _ran_once(result)
    assert queue_depth() == (0, 0)


def test_a_failed_write_raises_and_its_message_goes_before_the_dead_letter_queue(
    inject: Inject, clock: Any
) -> None:
    """PutItem failing all 6 requests: enqueue raises; the message is handed back 1, 6, 36
    and 216 s, runs nothing, and is dropped on its 5th receive, STORE_BOUND old: 0 runs,
    0 items, 0 messages, 0 dead letters."""
    inject("dynamodb", "PutItem", FAULTS["500"], when=_is_new)

    with pytest.raises(ClientError) as raised:
        tasks.tally.enqueue(1)
    notes = "\n".join(raised.value.__notes__)

    assert "its message went: it runs nothing and is dropped" in notes
    assert "If the write landed after all, the result is not READY" in notes
    receives, waited = 0, timedelta(0)
    while queue_depth() != (0, 0) and receives < MAX_RECEIVE_COUNT:
        receives += drain()
        assert all_items() == [] and tasks.runs == {}
        if queue_depth() == (0, 1):  # handed back: comes again after its wait
            wait = timedelta(seconds=wait_seconds(receives), milliseconds=100)
            clock.shift(wait)
            waited += wait
    assert receives == MAX_RECEIVE_COUNT
    assert waited >= STORE_BOUND
    assert queue_depth() == (0, 0)
    assert queue_depth(dlq_url()) == (0, 0)
    assert all_items() == []
    assert tasks.runs == {}


def test_a_send_that_fails_before_the_write_lands_leaves_no_ready_result(
    inject: Inject,
) -> None:
    """SendMessage failing all 6 requests before PutItem is sent: the item is marked FAILED
    once written (never READY with no message); EnqueueError says so."""
    inject("sqs", "SendMessage", FAULTS["500"])
    _, failed, after_failure = _cue()

    with (
        _hook("sqs", "after-call.sqs.SendMessage", failed),
        _hook("dynamodb", "before-call.dynamodb.PutItem", after_failure),
        pytest.raises(EnqueueError, match=r"could not be sent .*the result is marked FAILED"),
    ):
        tasks.tally.enqueue(1)

    (stored,) = all_items()
    assert stored["status"]["S"] == "FAILED"
    assert queue_depth() == (0, 0)
    assert drain() == 0
    assert tasks.runs == {}


def test_a_write_that_landed_but_raised_is_failed_and_its_message_runs_nothing(
    inject: Inject,
) -> None:
    """PutItem landed, its response lost, then 5 retries fail: enqueue raises; the item it
    wrote is marked FAILED, so the message finds it FAILED and runs nothing."""
    inject("dynamodb", "PutItem", response_lost, times=1, when=_is_new)
    inject("dynamodb", "PutItem", FAULTS["500"], when=_is_new)

    with pytest.raises(ClientError) as raised:
        tasks.tally.enqueue(1)

    assert "the result is marked FAILED and will not run" in "\n".join(raised.value.__notes__)
    (stored,) = all_items()
    assert stored["status"]["S"] == "FAILED"
    assert drain() == 1
    assert tasks.runs == {}
    assert queue_depth() == (0, 0)


def test_a_write_that_landed_and_ran_before_enqueue_raised_says_it_may_run(
    inject: Inject,
) -> None:
    """The residual case: PutItem landed, a worker ran the task before enqueue heard back,
    then the retries failed. enqueue raises, and its note says the task may have run."""
    _, sent, after_send = _cue()

    def landed_and_ran(request: AWSPreparedRequest) -> AWSResponse:
        send_for_real(request)
        after_send()
        _elsewhere(drain)
        raise ReadTimeoutError(endpoint_url=request.url)

    inject("dynamodb", "PutItem", landed_and_ran, times=1, when=_is_new)
    inject("dynamodb", "PutItem", FAULTS["500"], when=_is_new)

    with (
        _hook("sqs", "after-call.sqs.SendMessage", sent),
        pytest.raises(ClientError) as raised,
    ):
        tasks.tally.enqueue(1)

    assert "a worker took it first and may run it" in "\n".join(raised.value.__notes__)
    (stored,) = all_items()
    assert stored["status"]["S"] == "SUCCESSFUL"
    assert sum(tasks.runs.values()) == 1


def test_a_send_whose_response_was_lost_then_failed_runs_nothing(inject: Inject) -> None:
    """SendMessage went, its response lost, then 5 retries fail: EnqueueError; the item is
    marked FAILED, so the message that went finds it FAILED and runs nothing."""
    inject("sqs", "SendMessage", response_lost, times=1)
    inject("sqs", "SendMessage", FAULTS["500"])

    with pytest.raises(EnqueueError, match="the result is marked FAILED"):
        tasks.tally.enqueue(1)

    (stored,) = all_items()
    assert stored["status"]["S"] == "FAILED"
    assert drain() == 1
    assert tasks.runs == {}
    assert queue_depth() == (0, 0)


def test_enqueue_many_sends_what_is_written_while_it_writes_the_rest(stack: Stack) -> None:
    """30 entries, two writes: the first write's messages go while the second is written,
    and no message goes before its item is stored."""
    both = threading.Barrier(2)
    writes: list[int] = []
    sends: list[list[str]] = []
    stored_first: list[bool] = []

    def on_write(**kwargs: Any) -> None:
        writes.append(len(writes))
        if len(writes) == 2:
            both.wait(CUE)

    def on_send(params: dict[str, Any], **kwargs: Any) -> None:
        ids = [peek_result_id(e["MessageBody"]) or "" for e in params["Entries"]]
        stored_first.append(set(backend().store.get_many(ids)) == set(ids))
        sends.append(ids)
        if len(sends) == 1:
            both.wait(CUE)

    with (
        _hook("dynamodb", "before-call.dynamodb.BatchWriteItem", on_write),
        _hook("sqs", "before-parameter-build.sqs.SendMessageBatch", on_send),
    ):
        results = backend().enqueue_many([(tasks.tally, [n], {}) for n in range(30)])

    assert len(writes) == 2
    assert [len(ids) for ids in sends] == [10, 10, 10]  # 5 of the first write wait for 5 more
    assert stored_first == [True] * 3
    assert drain() == 30
    assert all(tasks.runs[r.id] == 1 for r in results)


def test_enqueue_many_whose_writes_fail_lists_them_and_sends_nothing(inject: Inject) -> None:
    """BatchWriteItem failing all 6 requests: each entry is listed "not stored" and no message
    goes; what may have landed is failed, and nothing is left READY."""
    inject("dynamodb", "BatchWriteItem", FAULTS["500"])

    with pytest.raises(BulkEnqueueError, match="3 of 3 entries failed") as raised:
        backend().enqueue_many([(tasks.tally, [n], {}) for n in range(3)])

    for why in raised.value.failures.values():
        assert why.startswith("not stored: BatchWriteItem failed")
        assert "no READY result" in why  # The 500 may have been applied: it was checked.
    assert all_items() == []
    assert queue_depth() == (0, 0)
    assert drain() == 0
    assert tasks.runs == {}


def test_a_letter_dead_lettered_before_its_item_is_kept_until_the_write_has_surely_ended(
    stack: Stack, clock: Any
) -> None:
    """With a MaxReceiveCount under 5 a message can be dead-lettered before its item lands:
    the dead-letter handler keeps it until STORE_BOUND, fails the item if it came, and
    drops the letter if none did."""
    late = tasks.tally.enqueue(1)
    never = Envelope("never-stored", "default", "tests.faults.tasks.tally", "default", 0)
    delete(receive_all())
    for body in (Envelope.of(late).encode(), never.encode()):
        client("sqs").send_message(QueueUrl=dlq_url(), MessageBody=body)
    stored = item(late.id)
    assert stored is not None
    backend().store._client().delete_item(  # Not landed yet, when the letters first come.
        TableName=backend().store.table_name, Key={"id": {"S": late.id}}
    )

    letters = receive_all(dlq_url())
    assert deliver(letters, dlq_url(), entry=dlq.handler) == {m["MessageId"] for m in letters}
    backend().store.put_new(stored)  # The write lands, late.
    clock.shift(STORE_BOUND)
    letters = receive_all(dlq_url())
    assert deliver(letters, dlq_url(), entry=dlq.handler) == set()

    late.refresh()
    assert late.status == TaskResultStatus.FAILED  # not left READY with no message
    assert queue_depth(dlq_url()) == (0, 0)
    assert tasks.runs == {}
