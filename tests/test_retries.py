"""Opt-in retries: READY between attempts with each error kept, FAILED after the last."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import django
import pytest
from django.tasks import TaskResultStatus, default_task_backend, task
from django.tasks.exceptions import InvalidTask

from sqs_tasks import SQSTask, retry
from sqs_tasks.results import MAX_ITEM_BYTES, item_size
from sqs_tasks.testing import Stack, drain
from tests import tasks


def _job() -> None:
    """A module-level function to wrap in tasks."""


def test_raising_task_is_retried_until_it_succeeds(stack: Stack, time_machine: Any) -> None:
    time_machine.move_to(datetime.now(UTC), tick=True)
    result = tasks.flaky.enqueue(2)

    drain()
    drained_at = datetime.now(UTC)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert len(result.errors) == 1
    retry_at = tasks.flaky.get_result(result.id).task.run_after
    assert retry_at is not None
    # 0.5 to 1 s after the failure, which came between the attempt's start and drain's end.
    assert retry_at - result.last_attempted_at >= timedelta(seconds=0.5)
    assert retry_at - drained_at <= timedelta(seconds=1)

    drain()  # not due yet: nothing runs early
    assert tasks.runs["flaky"] == 1

    for _ in range(2):
        time_machine.shift(timedelta(seconds=3))
        drain()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert [e.exception_class for e in result.errors] == [ConnectionError, ConnectionError]
    assert "flaky run 2" in result.errors[1].traceback


def test_last_attempt_failure_is_final(stack: Stack, time_machine: Any) -> None:
    time_machine.move_to(datetime.now(UTC), tick=True)
    result = tasks.flaky.enqueue(10)

    for _ in range(4):
        drain()
        time_machine.shift(timedelta(seconds=3))
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert tasks.runs["flaky"] == 3
    assert len(result.errors) == 3
    # The last attempt's finish keeps what earlier attempts recorded, and drops the lease.
    assert len(result.worker_ids) == 3
    assert result.started_at is not None and result.started_at < result.last_attempted_at
    item = default_task_backend.store.get(result.id)  # type: ignore[attr-defined]
    assert "lease_until" not in item and "run_after" in item
    failed = default_task_backend.store.failures("default")  # type: ignore[attr-defined]
    assert [i["id"]["S"] for i in failed] == [result.id]


def test_only_listed_exceptions_are_retried(stack: Stack) -> None:
    result = tasks.picky.enqueue()

    drain()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert tasks.runs["picky"] == 1


def test_without_the_option_failure_is_final(stack: Stack) -> None:
    result = tasks.fail.enqueue("once")

    drain()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be between 1 and 100"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"retry_backoff": 10, "retry_backoff_max": 5}, "retry_backoff must be positive"),
        ({"retry_on": (ValueError, "nope")}, "retry_on must be a non-empty tuple of exception"),
        # isinstance() refuses a list: it would only fail on the worker, at the first failure.
        ({"retry_on": [ValueError]}, r"retry_on must be a non-empty tuple .*\[<class"),
        ({"retry_backoff": float("inf"), "retry_backoff_max": float("inf")}, "at most 31,536,000"),
        ({"retry_backoff": float("nan")}, "retry_backoff must be positive"),
        ({"retry_backoff_max": "60"}, "retry_backoff_max must be a number of seconds"),
    ],
)
def test_bad_retry_settings_are_refused_at_definition(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTask, match=message):
        retry(**{"max_attempts": 2, **options})(task(_job))


@pytest.mark.skipif(django.VERSION < (6, 1), reason="@task forwards extra options from 6.1")
def test_task_decorator_takes_retry_options_on_django_6_1() -> None:
    retried = task(max_attempts=4, retry_backoff=3)(_job)

    assert isinstance(retried, SQSTask)
    assert (retried.max_attempts, retried.retry_backoff) == (4, 3)
    with pytest.raises(InvalidTask, match="max_attempts must be between 1 and 100"):
        task(max_attempts=0)(_job)


def test_retry_decorator_keeps_the_task_settings() -> None:
    retried = retry(max_attempts=2)(
        task(priority=7, queue_name="emails", takes_context=False)(_job)
    )

    assert isinstance(retried, SQSTask)
    assert (retried.priority, retried.queue_name, retried.max_attempts) == (7, "emails", 2)


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    retried: Any = retry(max_attempts=9, retry_backoff=10, retry_backoff_max=60)(task(_job))

    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = {retried.retry_delay(attempt).total_seconds() for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)
        assert len(delays) > 1  # jittered


@pytest.mark.parametrize(
    ("retried", "error"),
    [(tasks.charge, "builtins.TypeError"), (tasks.export, "sqs_tasks.exceptions.ResultTooLarge")],
)
def test_a_body_that_ran_is_not_retried_for_its_return_value(
    stack: Stack, time_machine: Any, retried: Any, error: str
) -> None:
    time_machine.move_to(datetime.now(UTC), tick=True)
    result = retried.using().enqueue(*([7] if retried is tasks.charge else []))

    for _ in range(3):
        drain()
        time_machine.shift(timedelta(seconds=3))
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == [error]
    assert tasks.runs[retried.name] == 1


def test_errors_never_push_a_result_past_the_item_limit(stack: Stack, time_machine: Any) -> None:
    # 380 KB of arguments (accepted) and a 20,000-character CJK message (60 KB) per attempt.
    time_machine.move_to(datetime.now(UTC), tick=True)
    result = tasks.bulky_failure.enqueue("b" * 380_000, 20_000)

    for _ in range(4):
        drain()
        time_machine.shift(timedelta(seconds=3))
    result.refresh()
    item = default_task_backend.store.get(result.id)  # type: ignore[attr-defined]

    assert result.status == TaskResultStatus.FAILED
    assert tasks.runs["bulky_failure"] == 3
    assert item_size(item) <= MAX_ITEM_BYTES
    classes = [e.exception_class_path for e in result.errors]
    assert classes and set(classes) == {"builtins.ValueError"}
    assert "错" in result.errors[-1].traceback  # The newest keeps what fits of its traceback.
