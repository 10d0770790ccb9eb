"""Operator commands: sqs_tasks_result, sqs_tasks_failures, sqs_tasks_retry, sqs_tasks_redrive."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.tasks import TaskResultStatus, default_task_backend

from sqs_tasks.testing import MAX_RECEIVE_COUNT, Stack, drain
from tests import tasks, worker_tasks


@pytest.fixture(autouse=True)
def _fresh_tasks() -> None:
    worker_tasks.reset()


def _backend() -> Any:
    return default_task_backend


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _line(label: str, value: str) -> str:
    return rf"^{label} +{re.escape(value)}$"


def _dlq_url(queue: str = "default") -> str:
    url: str = _backend().queue.url(queue)
    return url + "-dlq"  # as the stack names it


def _depth(url: str) -> int:
    attributes = (
        _backend()
        .client("sqs")
        .get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    )
    return sum(int(v) for v in attributes.values())


def _dead_letter_everything(queue: str = "default") -> None:
    """Receive without deleting until SQS moves each message to the DLQ (maxReceiveCount)."""
    sqs, url = _backend().client("sqs"), _backend().queue.url(queue)
    for _ in range(MAX_RECEIVE_COUNT + 1):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert _depth(url) == 0


def test_result_shows_a_success(stack: Stack) -> None:
    result = tasks.add.enqueue(2, 3)
    drain()
    result.refresh()

    out = _run("sqs_tasks_result", result.id)

    for label, value in [
        ("Result", result.id),
        ("Status", "SUCCESSFUL"),
        ("Task", "tests.tasks.add"),
        ("Queue", "default"),
        ("Priority", "0"),
        ("Args", "[2,3]"),
        ("Kwargs", "{}"),
        ("Attempts", "1"),
        ("Worker ids", result.worker_ids[0]),
        ("Return value", "5"),
        ("Errors", "0"),
    ]:
        assert re.search(_line(label, value), out, re.M), (label, out)
    assert re.search(r"^Finished +\d{4}-\d\d-\d\dT[\d:.]+\+00:00$", out, re.M)


def test_result_shows_a_failure_with_its_last_traceback(stack: Stack) -> None:
    result = tasks.fail.enqueue("boom")
    drain()

    out = _run("sqs_tasks_result", result.id)

    assert re.search(_line("Status", "FAILED"), out, re.M)
    assert re.search(_line("Errors", "1"), out, re.M)
    assert "Return value" not in out
    assert "Last error (1 of 1): builtins.ValueError" in out
    assert "    Traceback (most recent call last):" in out
    assert out.rstrip().splitlines()[-1] == "    ValueError: boom"


def test_result_of_an_unknown_id_is_a_clear_error(stack: Stack) -> None:
    with pytest.raises(
        CommandError,
        match=r"No result 'nope' in table 'sqs-tasks-default-results' \(backend 'default'\)\.",
    ):
        _run("sqs_tasks_result", "nope")
    with pytest.raises(CommandError, match="Unknown task backend 'other'"):
        _run("sqs_tasks_result", "nope", "--backend", "other")


def test_failures_lists_each_queues_newest_first_without_a_scan(stack: Stack) -> None:
    first = tasks.fail.enqueue("first")
    drain()
    second = tasks.fail.enqueue("second")
    tasks.add.enqueue(1, 1)  # successes are not in the failures index
    mail = tasks.fail.using(queue_name="emails").enqueue("mail server down")
    drain()
    calls: list[str] = []
    client = _backend().client("dynamodb")
    client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )

    out = _run("sqs_tasks_failures")

    default, emails = out.strip().split("\n\n")
    assert default.splitlines()[0] == "Queue 'default': 2 most recent failures"
    assert default.splitlines()[1].split() == ["finished", "id", "task", "tries", "last", "error"]
    rows = [line.split(None, 4) for line in default.splitlines()[3:]]
    assert [row[1] for row in rows] == [second.id, first.id]  # newest first
    assert rows[0][2:] == ["tests.tasks.fail", "1", "ValueError: second"]
    assert emails.splitlines()[0] == "Queue 'emails': 1 most recent failure"
    assert mail.id in emails and "ValueError: mail server down" in emails
    assert set(calls) == {"Query"}  # the sparse index, shard by shard; never a Scan

    latest = _run("sqs_tasks_failures", "--queue", "default", "--limit", "1")
    assert "Queue 'default': 1 most recent failure" in latest
    assert second.id in latest and first.id not in latest and "emails" not in latest


def test_failures_of_a_queue_without_any(stack: Stack) -> None:
    assert _run("sqs_tasks_failures", "--queue", "emails") == "Queue 'emails': no failures.\n"


def test_failures_refuses_unknown_queues_and_bad_limits(stack: Stack) -> None:
    with pytest.raises(
        CommandError,
        match=re.escape("Unknown queue 'nope': backend 'default' has default, emails."),
    ):
        _run("sqs_tasks_failures", "--queue", "nope")
    with pytest.raises(CommandError, match=re.escape("--limit must be at least 1, not 0.")):
        _run("sqs_tasks_failures", "--limit", "0")


def test_retry_runs_a_failed_task_again_as_a_new_result(stack: Stack) -> None:
    worker_tasks.broken.add("smtp")
    failed = worker_tasks.fragile.using(queue_name="emails", priority=7).enqueue("smtp")
    drain()
    failed.refresh()
    assert failed.status == TaskResultStatus.FAILED
    worker_tasks.broken.clear()  # the outage is over

    out = _run("sqs_tasks_retry", failed.id)

    match = re.fullmatch(
        rf"Enqueued (\w{{32}}): a retry of {failed.id} "
        r"\(tests\.worker_tasks\.fragile on queue 'emails', priority 7\)\.\n",
        out,
    )
    assert match, out
    retried = _backend().get_result(match[1])
    assert retried.status == TaskResultStatus.READY
    assert (retried.args, retried.kwargs) == (["smtp"], {})
    assert (retried.task.queue_name, retried.task.priority) == ("emails", 7)
    drain()
    retried.refresh()
    assert (retried.status, retried.return_value) == (TaskResultStatus.SUCCESSFUL, "smtp ok")
    failed.refresh()
    assert failed.status == TaskResultStatus.FAILED  # history is kept


def test_retry_refuses_anything_but_a_failed_result(stack: Stack) -> None:
    done = tasks.add.enqueue(1, 2)
    drain()
    waiting = tasks.add.enqueue(3, 4)

    with pytest.raises(
        CommandError,
        match=f"Result {done.id} is SUCCESSFUL, not FAILED: only a failed result can be retried.",
    ):
        _run("sqs_tasks_retry", done.id)
    with pytest.raises(CommandError, match=f"Result {waiting.id} is READY, not FAILED"):
        _run("sqs_tasks_retry", waiting.id)
    with pytest.raises(CommandError, match="No result 'nope' in table"):
        _run("sqs_tasks_retry", "nope")


def test_redrive_moves_dead_letters_back_to_run(stack: Stack) -> None:
    result = tasks.add.enqueue(20, 22)
    _dead_letter_everything()
    assert _depth(_dlq_url()) == 1

    out = _run("sqs_tasks_redrive", "--queue", "default")

    assert out == (
        "Moved 1 message from sqs-tasks-default-default-dlq to sqs-tasks-default-default; "
        "0 could not be sent.\n"
    )
    assert _depth(_dlq_url()) == 0
    drain()
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 42)


def test_redrive_moves_at_most_max(stack: Stack) -> None:
    results = [tasks.send_email.enqueue(f"user{i}@example.com") for i in range(3)]
    _dead_letter_everything("emails")

    out = _run("sqs_tasks_redrive", "--queue", "emails", "--max", "2")

    assert out.startswith("Moved 2 messages from sqs-tasks-default-emails-dlq to ")
    assert _depth(_backend().queue.url("emails")) == 2
    assert _depth(_dlq_url("emails")) == 1
    assert "Moved 1 message " in _run("sqs_tasks_redrive", "--queue", "emails")
    drain()
    assert {r.id: _backend().get_result(r.id).status for r in results} == dict.fromkeys(
        [r.id for r in results], TaskResultStatus.SUCCESSFUL
    )


def test_redrive_refuses_unknown_queues(stack: Stack) -> None:
    with pytest.raises(CommandError, match="Unknown queue 'nope'"):
        _run("sqs_tasks_redrive", "--queue", "nope")
    with pytest.raises(CommandError, match=re.escape("--max must be at least 1, not 0.")):
        _run("sqs_tasks_redrive", "--queue", "default", "--max", "0")
