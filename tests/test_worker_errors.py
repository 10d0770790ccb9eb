"""What sqs_tasks_worker says in its first hour: one line and exit 1, and prompt stops."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from sqs_tasks.testing import Stack
from sqs_tasks.worker.poller import Worker
from tests import tasks

ROOT = Path(__file__).resolve().parents[1]
# Hard limits: each wait fails the test instead of hanging it; none is a timing assertion.
STEP_TIMEOUT_S = 30


def _tasks_with(stack: Stack, **options: Any) -> dict[str, Any]:
    settings = copy.deepcopy(stack.tasks)
    settings["default"]["OPTIONS"].update(options)
    return settings


def test_no_region_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_TASKS_", "AWS_"))} | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SQS_TASKS_TABLE": "results",
        "SQS_TASKS_QUEUE_PREFIX": "app-",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "sqs_tasks_worker", "--until-empty"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "CommandError: No AWS region for task backend 'default': set AWS_DEFAULT_REGION "
        "(or AWS_REGION), or OPTIONS['REGION_NAME']."
    ]


def test_an_unreachable_endpoint_is_one_line(stack: Stack) -> None:
    unreachable = _tasks_with(
        stack, ENDPOINT_URL="http://127.0.0.1:9", CLIENT_CONFIG={"retries": {"max_attempts": 1}}
    )
    with (
        override_settings(TASKS=unreachable),
        pytest.raises(CommandError, match=r"^Cannot reach SQS for task backend 'default': ") as e,
    ):
        call_command("sqs_tasks_worker", "--until-empty", "--wait-time", "0")

    assert "http://127.0.0.1:9" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_missing_queue_names_it(stack: Stack) -> None:
    missing = _tasks_with(stack, QUEUE_NAME_PREFIX="wrong-")
    del missing["default"]["OPTIONS"]["QUEUE_URLS"]
    with (
        override_settings(TASKS=missing),
        pytest.raises(CommandError, match=r"SQS queue 'wrong-default' .*QUEUE_NAME_PREFIX"),
    ):
        call_command("sqs_tasks_worker", "--until-empty", "--wait-time", "0")


def test_a_typo_in_options_is_one_line(stack: Stack) -> None:
    typo = _tasks_with(stack, TABLE="results")
    with (
        override_settings(TASKS=typo),
        pytest.raises(CommandError, match=r"^TASKS\['default'\]\['OPTIONS'\] has unknown option"),
    ):
        call_command("sqs_tasks_worker", "--until-empty", "--wait-time", "0")


def test_until_empty_exits_non_zero_when_messages_failed(stack: Stack) -> None:
    for i in range(3):
        tasks.add.enqueue(i, 1)
    out = StringIO()
    # The worker's table is not there: every message fails for the infrastructure's sake.
    with (
        override_settings(TASKS=_tasks_with(stack, TABLE_NAME="gone")),
        pytest.raises(CommandError, match=r"^3 messages failed \(see the log\): they are still"),
    ):
        call_command("sqs_tasks_worker", "--until-empty", "--wait-time", "0", stdout=out)

    assert "0 done, 3 failed (backed off)" in out.getvalue()


def test_until_empty_exits_zero_when_tasks_ran(stack: Stack) -> None:
    tasks.fail.enqueue("a task's own failure is recorded, not an infrastructure one")
    tasks.add.enqueue(1, 2)
    out = StringIO()

    call_command("sqs_tasks_worker", "--until-empty", "--wait-time", "0", stdout=out)

    assert "2 done, 0 failed" in out.getvalue()


class _WatchedWorker(Worker):
    """A Worker whose pollers say when a long poll starts and when it returns."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.polling = threading.Event()
        self.poll_returned = threading.Event()

    def _receiver(self) -> Any:
        sqs = super()._receiver()
        sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **kw: self.polling.set())
        sqs.meta.events.register(
            "after-call.sqs.ReceiveMessage", lambda **kw: self.poll_returned.set()
        )
        return sqs


def test_an_idle_worker_stops_without_waiting_out_its_long_poll(stack: Stack) -> None:
    worker = _WatchedWorker(queues=["default"], wait_time=20)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()))
    thread.start()
    try:
        assert worker.polling.wait(STEP_TIMEOUT_S)
        worker.stop()
    finally:
        thread.join(STEP_TIMEOUT_S)

    # run() returned while its 20 s long poll was still waiting on SQS.
    assert not thread.is_alive()
    assert not worker.poll_returned.is_set()
    assert worker.abandoned_polls == 1
    assert result[0].received == 0
