"""The worker outside Lambda: long polls, the Lambda handler's code path, clean stops."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.tasks import TaskResultStatus, default_task_backend

from sqs_tasks.testing import Stack
from sqs_tasks.worker.batch import backoff_seconds
from sqs_tasks.worker.poller import Worker
from tests import worker_tasks

ROOT = Path(__file__).resolve().parents[1]
# Hard limits for the subprocess test: each wait fails the test instead of hanging it.
STEP_TIMEOUT_S = 30


@pytest.fixture(autouse=True)
def _fresh_tasks() -> Iterator[None]:
    worker_tasks.reset()
    yield
    worker_tasks.block_release.set()  # never leave a worker thread blocked
    worker_tasks.reset()


def _backend() -> Any:
    return default_task_backend


def _depth(queue: str = "default") -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = (
        _backend()
        .client("sqs")
        .get_queue_attributes(
            QueueUrl=_backend().queue.url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    )
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def _runs(log: Path) -> Counter[str]:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def _statuses(ids: list[str]) -> Counter[str]:
    return Counter(str(_backend().get_result(i).status) for i in ids)


def test_backoff_doubles_per_receive_up_to_its_cap() -> None:
    assert [backoff_seconds(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]
    assert backoff_seconds(3, base=1, cap=2) == 2


def test_worker_runs_every_task_until_the_queues_are_empty(stack: Stack, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    ids = [worker_tasks.note.enqueue(str(log)).id for _ in range(20)]
    ids += [worker_tasks.note_email.enqueue(str(log)).id for _ in range(10)]

    stats = Worker(wait_time=0, until_empty=True).run()

    assert (stats.received, stats.deleted, stats.backed_off, stats.released) == (30, 30, 0, 0)
    assert _statuses(ids) == {"SUCCESSFUL": 30}
    assert _runs(log) == Counter(ids)  # each ran, once
    result = _backend().get_result(ids[0])
    assert result.return_value == ids[0]
    assert result.worker_ids[0].startswith(f"{os.uname().nodename}-{os.getpid()}-")
    assert _depth("default") == _depth("emails") == (0, 0)


def test_tasks_enqueued_by_tasks_run_in_the_same_run(stack: Stack) -> None:
    from tests import tasks

    parent = tasks.spawn.enqueue(4)

    Worker(wait_time=0, until_empty=True).run()

    parent.refresh()
    children = [_backend().get_result(i) for i in parent.return_value]
    assert [c.status for c in children] == [TaskResultStatus.SUCCESSFUL] * 4


def test_failed_message_is_hidden_for_a_backoff(
    stack: Stack, tmp_path: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime.now(UTC), tick=True)
    sqs, url = _backend().client("sqs"), _backend().queue.url("default")
    # A forged body: the handler reports it in batchItemFailures; the good task still runs.
    sqs.send_message(QueueUrl=url, MessageBody='{"v":1,"forged":true}')
    good = worker_tasks.note.enqueue(str(tmp_path / "runs.log"))

    stats = Worker(queues=["default"], wait_time=0, until_empty=True).run()

    assert (stats.deleted, stats.backed_off) == (1, 1)
    assert _backend().get_result(good.id).status == TaskResultStatus.SUCCESSFUL
    assert _depth() == (0, 1)  # hidden, not deleted
    # First receive: 30 s of backoff, not the queue's 180 s visibility timeout.
    time_machine.shift(timedelta(seconds=25))
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    time_machine.shift(timedelta(seconds=10))
    (again,) = sqs.receive_message(
        QueueUrl=url, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert again["Body"] == '{"v":1,"forged":true}'
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_concurrency_runs_batches_at_once(stack: Stack) -> None:
    # Each task waits at a 3-party barrier: they can only all succeed if they run together.
    ids = [worker_tasks.rendezvous.enqueue().id for _ in range(3)]

    stats = Worker(queues=["default"], concurrency=3, batch_size=1, wait_time=0, until_empty=True)
    stats.run()

    results = [_backend().get_result(i) for i in ids]
    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL] * 3
    assert sorted(r.return_value for r in results) == [0, 1, 2]
    assert len({r.worker_ids[0] for r in results}) == 3  # a fresh worker id per batch


def test_receives_stay_batched_at_concurrency_2_while_tasks_trickle_in(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fan_out enqueues ten tasks one at a time while it runs. A free second slot must not
    # take each as it lands (a receive, a batch and a delete per task): the poller waits for
    # fan_out's batch to settle (the window is long here) and receives the ten at once.
    log = tmp_path / "ran.log"
    worker_tasks.fan_out.enqueue(str(log), 10)
    sizes: list[int] = []
    receiver = Worker._receiver

    def counted(worker: Worker) -> Any:
        client = receiver(worker)
        client.meta.events.register(
            "after-call.sqs.ReceiveMessage",
            lambda parsed, **kwargs: sizes.append(len(parsed.get("Messages", []))),
            unique_id="test-receive-sizes",
        )
        return client

    monkeypatch.setattr(Worker, "_receiver", counted)
    worker = Worker(
        queues=["default"], concurrency=2, wait_time=1, until_empty=True, batch_window=20
    )
    stats = worker.run()

    assert [size for size in sizes if size] == [1, 10]
    assert stats.deleted == 11
    assert len(set(log.read_text().split())) == 11


def test_the_next_batch_runs_while_the_last_one_is_deleted(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At concurrency 1 the slot is free once a batch has run: its DeleteMessageBatch is held
    # here until the second batch's task has started, which it could not before.
    from django.tasks.signals import task_started

    log = str(tmp_path / "runs.log")
    ids = [worker_tasks.note.enqueue(log).id for _ in range(2)]
    started: list[str] = []
    both_started = threading.Event()
    held: list[bool] = []

    def on_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
        started.append(task_result.id)
        if len(started) == 2:
            both_started.set()

    def hold_first_delete(**kwargs: Any) -> None:
        if not held:
            held.append(both_started.wait(STEP_TIMEOUT_S))

    batch_client = Worker._sqs

    def holding(worker: Worker) -> Any:
        client = batch_client(worker)
        client.meta.events.register(
            "before-call.sqs.DeleteMessageBatch", hold_first_delete, unique_id="test-hold"
        )
        return client

    monkeypatch.setattr(Worker, "_sqs", holding)
    task_started.connect(on_started, dispatch_uid="test-next-batch")
    try:
        stats = Worker(
            queues=["default"], concurrency=1, batch_size=1, wait_time=0, until_empty=True
        ).run()
    finally:
        task_started.disconnect(dispatch_uid="test-next-batch")

    assert held == [True]
    assert stats.deleted == 2
    assert _statuses(ids) == {"SUCCESSFUL": 2}


@pytest.mark.parametrize("wait_time", [0, 20])
def test_long_polls_are_not_cut_short_by_the_read_timeout(stack: Stack, wait_time: int) -> None:
    # An empty 20 s long poll answers after 20 s plus a round trip: a read timeout of 20 s
    # (the backend's default) would time every one of them out and retry it.
    worker = Worker(queues=["default"], wait_time=wait_time)
    worker.prepare()
    receiver = worker._receiver()

    assert receiver.meta.config.read_timeout >= wait_time + 10
    assert receiver.meta.endpoint_url == _backend().client("sqs").meta.endpoint_url
    assert receiver.receive_message(QueueUrl=_backend().queue.url("default"))  # it works


def test_stop_finishes_the_running_task_and_hands_back_the_rest(
    stack: Stack, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    blocker = worker_tasks.block.enqueue()  # priority 10: first in its batch
    waiting = [worker_tasks.note.enqueue(str(log)).id for _ in range(4)]
    worker = Worker(queues=["default"], wait_time=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert worker_tasks.block_started.wait(STEP_TIMEOUT_S)
        worker.stop()
        worker_tasks.block_release.set()
    finally:
        thread.join(STEP_TIMEOUT_S)
    assert not thread.is_alive()

    blocker.refresh()
    assert (blocker.status, blocker.attempts) == (TaskResultStatus.SUCCESSFUL, 1)
    # Never started, never claimed: READY, and their messages visible again right away.
    assert _statuses(waiting) == {"READY": 4}
    assert [_backend().get_result(i).attempts for i in waiting] == [0] * 4
    assert (worker.stats.deleted, worker.stats.released) == (1, 4)
    assert _depth() == (4, 0)

    Worker(wait_time=0, until_empty=True).run()

    assert _statuses(waiting) == {"SUCCESSFUL": 4}
    assert _runs(log) == Counter(waiting)


def test_worker_command_runs_until_empty(stack: Stack, tmp_path: Path) -> None:
    ids = [worker_tasks.note.enqueue(str(tmp_path / "runs.log")).id for _ in range(3)]
    out = StringIO()

    call_command(
        "sqs_tasks_worker", "--until-empty", "--wait-time", "0", "--concurrency", "2", stdout=out
    )

    assert _statuses(ids) == {"SUCCESSFUL": 3}
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(
        "polling default, emails of backend 'default' (concurrency 2, batch size 10, wait 0 s)."
    )
    assert lines[-1] == (
        "Stopped: 3 messages received in 1 batch: 3 done, 0 failed (backed off), "
        "0 handed back unstarted."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "11"], "Batch size must be 1 to 10, not 11."),
        (["--wait-time", "21"], "Wait time must be 0 to 20 seconds, not 21."),
        (["--concurrency", "0"], "Concurrency must be at least 1, not 0."),
        (["--visibility-timeout", "0"], "Visibility timeout must be 10 to 43200 seconds, not 0."),
        (["--queue", "nope"], "Queue 'nope' is not one of backend 'default''s QUEUES"),
        (["--backend", "nope"], "Unknown task backend 'nope'"),
    ],
)
def test_worker_command_refuses_bad_options(stack: Stack, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("sqs_tasks_worker", *args)


class _Lines:
    """Lines from a pipe, read with select() so that no wait is unbounded."""

    def __init__(self, fd: int, *, eof_ends: bool = True) -> None:
        self.fd = fd
        self.eof_ends = eof_ends  # a named pipe's EOF only means that no task has it open
        self.buffer = b""
        self.seen: list[str] = []

    def next(self, timeout: float = STEP_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line within {timeout} s; got {self.seen}")
            readable, _, _ = select.select([self.fd], [], [], left)
            if readable:
                chunk = os.read(self.fd, 65536)
                if not chunk and self.eof_ends:
                    raise EOFError(f"closed; got {self.seen}")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.seen.append(line.decode())
        return self.seen[-1]

    def until(self, text: str) -> str:
        while text not in (line := self.next()):
            pass
        return line


def _worker_env(stack: Stack) -> dict[str, str]:
    options = stack.tasks["default"]["OPTIONS"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQS_TASKS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # no OPTIONS: the backend reads the env
        SQS_TASKS_TABLE=options["TABLE_NAME"],
        SQS_TASKS_QUEUE_URLS=json.dumps(options["QUEUE_URLS"]),
        AWS_ENDPOINT_URL=str(stack.endpoint_url),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=stack.region,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    return env


def _start_worker(stack: Stack, stderr: Any, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "django", "sqs_tasks_worker", "--wait-time", "1", "-v", "2"]
    return subprocess.Popen(
        [*command, *args],
        cwd=ROOT,
        env=_worker_env(stack),
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def test_sigterm_loses_nothing_and_runs_nothing_twice(stack: Stack, tmp_path: Path) -> None:
    log, gate, fifo = tmp_path / "runs.log", tmp_path / "gate", tmp_path / "started"
    os.mkfifo(fifo)
    # Held open for the whole test, so a hold() run can always say it started.
    started = _Lines(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), eof_ends=False)
    # Some quick tasks run first; then hold() blocks its batch; the rest wait in the queues.
    quick = [worker_tasks.note.enqueue(str(log)).id for _ in range(20)]
    holds = [worker_tasks.hold.enqueue(str(log), str(fifo), str(gate)).id for _ in range(4)]
    quick += [worker_tasks.note.enqueue(str(log)).id for _ in range(16)]
    quick += [worker_tasks.note_email.enqueue(str(log)).id for _ in range(10)]
    everything = holds + quick
    stderr = (tmp_path / "worker.err").open("wb")
    first = _start_worker(stack, stderr, "--concurrency", "2", "--batch-size", "5")
    try:
        assert first.stdout is not None
        output = _Lines(first.stdout.fileno())
        output.until("polling default, emails")
        running = started.next()  # a hold() is in flight, blocking its batch
        assert running in holds
        first.send_signal(signal.SIGTERM)
        output.until("SIGTERM: stopping")  # the worker stopped starting records...
        gate.touch()  # ...before the running hold() could finish
        assert first.wait(STEP_TIMEOUT_S) == 0, (tmp_path / "worker.err").read_text()
        summary = output.until("Stopped:")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    # Nothing is left RUNNING or hidden in SQS: every message was deleted or handed back.
    statuses = _statuses(everything)
    assert set(statuses) <= {"SUCCESSFUL", "READY"}, statuses
    assert statuses["READY"] >= 2  # at most 2 hold()s ran; the others were handed back
    assert _backend().get_result(running).status == TaskResultStatus.SUCCESSFUL
    assert _depth("default")[1] == _depth("emails")[1] == 0
    assert _depth("default")[0] + _depth("emails")[0] == statuses["READY"]
    handed_back = re.search(r"0 failed \(backed off\), (\d+) handed back unstarted", summary)
    assert handed_back is not None, summary
    assert int(handed_back[1]) >= 2

    second = _start_worker(stack, stderr, "--concurrency", "2", "--until-empty")
    try:
        assert second.wait(STEP_TIMEOUT_S) == 0, (tmp_path / "worker.err").read_text()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        stderr.close()
        os.close(started.fd)

    assert _statuses(everything) == {"SUCCESSFUL": 50}
    assert [_backend().get_result(i).attempts for i in everything] == [1] * 50
    assert _runs(log) == Counter(everything)  # every task ran, and ran once
    assert _depth("default") == _depth("emails") == (0, 0)
