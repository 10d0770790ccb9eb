"""Promise 3: transient AWS errors are retried by botocore; persistent ones never lie.

Throttling, 5xx and dropped connections are injected into the backend's real clients at
botocore's before-send hook, during enqueue (PutItem, SendMessage) and during execution
(the claim's UpdateItem and the finish's PutItem), so the configured retry policy (standard mode,
max_attempts 5, i.e. 6 requests in all) is what recovers. botocore's backoff is computed as
usual and recorded, but not slept.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.tasks import Task, TaskResultStatus

from sqs_tasks.aws.store import COND_CLAIMABLE, COND_NEW, COND_OWNER
from sqs_tasks.exceptions import EnqueueError
from sqs_tasks.testing import QUEUE_ATTRIBUTES, drain
from tests.faults import tasks
from tests.faults.inject import FAULTS, Inject, response_lost
from tests.faults.support import all_items, backend, client, queue_depth

VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))


def _attempts(service: str) -> int:
    """Requests botocore makes for one call before giving up: the first plus its retries.

    CLIENT_CONFIG's {"max_attempts": 5} counts retries, so that is 6 requests.
    """
    total: int = client(service).meta.config.retries["total_max_attempts"]
    return total


def _is_new(request: dict[str, Any]) -> bool:
    return request.get("ConditionExpression") == COND_NEW


def _is_claim(request: dict[str, Any]) -> bool:
    return request.get("ConditionExpression") == COND_CLAIMABLE


def _is_finish(request: dict[str, Any]) -> bool:
    return request.get("ConditionExpression") == COND_OWNER


# (service, operation, which requests): every AWS request a task makes on the happy path.
ENQUEUE_CALLS = {"put-item": ("dynamodb", "PutItem", _is_new), "send": ("sqs", "SendMessage", None)}
EXECUTION_CALLS = {
    "claim": ("dynamodb", "UpdateItem", _is_claim),
    "finish": ("dynamodb", "PutItem", _is_finish),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call", sorted(ENQUEUE_CALLS))
def test_transient_errors_during_enqueue_are_retried(
    inject: Inject, backoffs: list[float], call: str, fault: str
) -> None:
    """1 task, all but the last of 6 requests failing: enqueued once, ran once, SUCCESSFUL."""
    service, operation, when = ENQUEUE_CALLS[call]
    attempts = _attempts(service)
    injection = inject(service, operation, FAULTS[fault], times=attempts - 1, when=when)

    result = tasks.tally.enqueue(21)
    assert drain() == 1
    result.refresh()

    assert (injection.injected, injection.sent) == (attempts - 1, attempts)
    assert len(backoffs) == attempts - 1
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert tasks.runs[result.id] == 1
    assert len(all_items()) == 1
    assert queue_depth() == (0, 0)


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call", sorted(EXECUTION_CALLS))
def test_transient_errors_during_execution_are_retried(
    inject: Inject, backoffs: list[float], call: str, fault: str
) -> None:
    """1 task, 5 of the 6 requests of its claim or finish failing: ran once, SUCCESSFUL."""
    result = tasks.tally.enqueue(21)
    service, operation, when = EXECUTION_CALLS[call]
    attempts = _attempts(service)
    injection = inject(service, operation, FAULTS[fault], times=attempts - 1, when=when)

    assert drain() == 1
    result.refresh()

    assert (injection.injected, injection.sent) == (attempts - 1, attempts)
    assert len(backoffs) == attempts - 1
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.attempts == 1
    assert tasks.runs[result.id] == 1
    assert queue_depth() == (0, 0)


@pytest.mark.parametrize("fault", ["500", "throttled", "connection-refused"])
def test_persistent_sqs_failure_at_enqueue_raises_and_fails_the_result(
    inject: Inject, fault: str
) -> None:
    """SendMessage failing all 6 requests: EnqueueError; the item is FAILED, never READY."""
    injection = inject("sqs", "SendMessage", FAULTS[fault])

    with pytest.raises(EnqueueError, match="could not be sent"):
        tasks.tally.enqueue(1)
    (item,) = all_items()

    assert injection.sent == _attempts("sqs")
    assert item["status"]["S"] == "FAILED"  # 0 orphans left READY
    (error,) = item["errors"]["L"]
    assert error["M"]["exception_class_path"]["S"] == "sqs_tasks.exceptions.EnqueueError"
    assert [i["id"] for i in backend().store.failures("default")] == [item["id"]]
    assert queue_depth() == (0, 0)
    assert drain() == 0
    assert sum(tasks.runs.values()) == 0


@pytest.mark.usefixtures("table_found")
def test_persistent_dynamodb_failure_at_enqueue_raises_and_its_message_runs_nothing(
    inject: Inject,
) -> None:
    """PutItem failing all 6 requests: enqueue raises; no item; the message sent meanwhile
    finds none and runs nothing (tests/faults/test_one_trip.py follows it to its end)."""
    injection = inject("dynamodb", "PutItem", FAULTS["500"], when=_is_new)

    with pytest.raises(ClientError) as raised:
        tasks.tally.enqueue(1)

    assert injection.sent == _attempts("dynamodb")
    assert "its message went: it runs nothing" in "\n".join(raised.value.__notes__)
    assert all_items() == []
    assert queue_depth() == (1, 0)
    assert drain() == 1
    assert queue_depth() == (0, 1)  # handed back for a second, in case its item was late
    assert all_items() == []
    assert sum(tasks.runs.values()) == 0


@pytest.mark.parametrize(
    ("task", "args", "truth"),
    [(tasks.report_attempt, (), "SUCCESSFUL"), (tasks.fail_on_purpose, ("boom",), "FAILED")],
    ids=["succeeds", "raises"],
)
def test_persistent_dynamodb_failure_at_finish_is_redelivered_and_recorded_truthfully(
    inject: Inject, clock: Any, task: Task[..., Any], args: tuple[str, ...], truth: str
) -> None:
    """The finish fails all 6 requests: the message goes back, the result stays RUNNING
    (never a false outcome); the next delivery runs attempt 2 and records its outcome.

    The body ran twice, because the first run's outcome could not be written anywhere.
    """
    result = task.enqueue(*args)
    injection = inject("dynamodb", "PutItem", FAULTS["500"], when=_is_finish)

    assert drain() == 1
    result.refresh()
    assert injection.sent == _attempts("dynamodb")
    assert (result.status, result.attempts) == (TaskResultStatus.RUNNING, 1)  # no outcome
    assert queue_depth() == (0, 1)  # handed back to SQS, hidden for the visibility timeout

    injection.stop()  # DynamoDB recovers
    clock.shift(VISIBILITY + timedelta(seconds=1))
    assert drain() == 1
    result.refresh()

    assert result.status == TaskResultStatus[truth]
    assert result.attempts == 2
    assert tasks.runs[result.id] == 2
    if truth == "SUCCESSFUL":
        assert result.return_value == 2  # the attempt whose outcome was recorded
        assert result.errors == []
    else:
        (error,) = result.errors  # one error: attempt 2's, the only one recorded
        assert error.exception_class_path == "builtins.ValueError"
    assert queue_depth() == (0, 0)


def test_put_item_whose_response_was_lost_still_enqueues_once(inject: Inject) -> None:
    """PutItem wrote the item but the response was lost; botocore's retry then met its own
    write (ConditionalCheckFailed): enqueue succeeds, 1 item, 1 message, ran once."""
    injection = inject("dynamodb", "PutItem", response_lost, times=1, when=_is_new)

    result = tasks.tally.enqueue(21)
    (item,) = all_items()

    assert injection.outcomes == ["ReadTimeoutError", "ConditionalCheckFailedException"]
    assert item["id"]["S"] == result.id
    assert item["status"]["S"] == "READY"
    assert drain() == 1
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert tasks.runs[result.id] == 1


def test_send_message_whose_response_was_lost_runs_the_body_once(inject: Inject) -> None:
    """SendMessage sent, response lost, retried: 2 messages, 2 deliveries, ran once."""
    injection = inject("sqs", "SendMessage", response_lost, times=1)

    result = tasks.tally.enqueue(21)
    assert injection.outcomes == ["ReadTimeoutError", "OK"]
    assert drain() == 2
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 1
    assert tasks.runs[result.id] == 1
    assert queue_depth() == (0, 0)


def test_claim_whose_response_was_lost_is_redelivered_and_runs_once(
    inject: Inject, clock: Any
) -> None:
    """The claim went through but its response was lost; the retry found the result
    RUNNING under its own live lease, so the message went back. After the lease: attempt
    2 runs it. 0 double runs, 0 lost, 0 stuck."""
    result = tasks.report_attempt.enqueue()
    injection = inject("dynamodb", "UpdateItem", response_lost, times=1, when=_is_claim)

    assert drain() == 1
    result.refresh()
    assert injection.outcomes == ["ReadTimeoutError", "ConditionalCheckFailedException"]
    assert (result.status, result.attempts) == (TaskResultStatus.RUNNING, 1)
    assert tasks.runs[result.id] == 0

    clock.shift(VISIBILITY + timedelta(seconds=1))
    assert drain() == 1
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2
    assert tasks.runs[result.id] == 1
    assert queue_depth() == (0, 0)


def test_finish_whose_response_was_lost_keeps_the_recorded_outcome(inject: Inject) -> None:
    """The finish went through but its response was lost; the retry met the finished
    result (ConditionalCheckFailed). The outcome stands, the message is deleted."""
    result = tasks.report_attempt.enqueue()
    injection = inject("dynamodb", "PutItem", response_lost, times=1, when=_is_finish)

    assert drain() == 1
    result.refresh()

    assert injection.outcomes == ["ReadTimeoutError", "ConditionalCheckFailedException"]
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 1
    assert tasks.runs[result.id] == 1
    assert queue_depth() == (0, 0)
    assert result.errors == []
