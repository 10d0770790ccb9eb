"""Promise 2: a worker SIGKILLed mid-task loses nothing and leaves nothing RUNNING for ever.

Real worker processes (python -m tests.faults.worker) receive the message from moto server
and run it through lambda_handler.handler.handler; the task blocks until the test kills
the process with SIGKILL. The test's clock, which moto follows, then moves past the
queue's visibility timeout (180 s) and the claim's lease (60 s left in the invocation
plus 30 s).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from django.tasks import TaskResultStatus

from lambda_handler import dlq
from sqs_tasks.testing import MAX_RECEIVE_COUNT, QUEUE_ATTRIBUTES, Stack, drain
from tests.faults import tasks
from tests.faults.support import (
    backend,
    delete,
    dlq_url,
    invoke,
    queue_depth,
    queue_url,
    receive_all,
)
from tests.faults.worker import ENV_TASKS

REPO = Path(__file__).resolve().parents[2]
VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))
# Only a guard against a wedged child: reaching it fails the test, it never paces it.
GUARD_SECONDS = 60


def _start_worker(stack: Stack, worker_id: str, errors: IO[str]) -> subprocess.Popen[str]:
    """A worker process on the test's clock, pointed at this test's moto server."""
    env = {
        **os.environ,  # AWS_* as aws_stack set them
        ENV_TASKS: json.dumps(stack.tasks),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.faults.worker",
            queue_url(),
            worker_id,
            datetime.now(UTC).isoformat(),
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,  # the hanging task reads it: held open until the kill
        stdout=subprocess.PIPE,
        stderr=errors,  # a file, never a pipe that could fill and block the child
        text=True,
    )


def _read_lines(worker: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    for line in worker.stdout or ():
        lines.put(line.strip())
    lines.put("")  # the worker closed its stdout: it exited


def _kill_worker_once_started(stack: Stack, worker_id: str) -> str:
    """Start a worker, wait for its task's STARTED line, SIGKILL it; return the line."""
    with tempfile.TemporaryFile("w+") as errors:
        worker = _start_worker(stack, worker_id, errors)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(worker, lines))
        reader.start()
        said: list[str] = []
        with suppress(queue.Empty):
            while not (said and said[-1].startswith("STARTED")) and (
                line := lines.get(timeout=GUARD_SECONDS)
            ):
                said.append(line)
        worker.send_signal(signal.SIGKILL)  # mid-task; or wedged before it, and then failed
        returncode = worker.wait()
        reader.join()
        for pipe in (worker.stdin, worker.stdout):
            if pipe is not None:
                pipe.close()
        errors.seek(0)
        assert said and said[-1].startswith("STARTED"), f"worker said {said}: {errors.read()}"
        assert returncode == -signal.SIGKILL, f"worker exited {returncode}: {errors.read()}"
        return said[-1]


def test_worker_killed_mid_task_is_redelivered_and_claimed_again(stack: Stack, clock: Any) -> None:
    """1 task, its worker SIGKILLed mid-run: redelivered, reclaimed, attempt 2 SUCCESSFUL.

    0 lost, 0 stuck RUNNING, the body finished exactly once.
    """
    result = tasks.hang_worker.enqueue(hang_attempts=1)

    started = _kill_worker_once_started(stack, "worker-killed")
    result.refresh()
    assert started == f"STARTED {result.id} attempt=1"
    assert (result.status, result.attempts) == (TaskResultStatus.RUNNING, 1)
    assert result.worker_ids == ["worker-killed"]
    assert drain() == 0  # the message stays hidden for the visibility timeout

    clock.shift(VISIBILITY + timedelta(seconds=1))  # and the 90 s lease has lapsed
    assert drain() == 1
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["attempt"] == 2
    assert result.return_value["pid"] == os.getpid()
    assert result.attempts == 2
    assert result.worker_ids[0] == "worker-killed"
    assert tasks.runs[result.id] == 1  # here; the killed process ran it up to STARTED
    assert queue_depth() == (0, 0)


def test_task_that_kills_every_worker_is_dead_lettered_and_failed(stack: Stack, clock: Any) -> None:
    """1 task killing all 5 workers: the 6th receive dead-letters it; FAILED, WorkerLost.

    0 lost, 0 stuck RUNNING, never RUNNING for ever.
    """
    result = tasks.hang_worker.enqueue(hang_attempts=MAX_RECEIVE_COUNT)

    for attempt in range(1, MAX_RECEIVE_COUNT + 1):
        started = _kill_worker_once_started(stack, f"worker-{attempt}")
        assert started == f"STARTED {result.id} attempt={attempt}"
        clock.shift(VISIBILITY + timedelta(seconds=1))
    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.RUNNING, MAX_RECEIVE_COUNT)
    assert result.worker_ids == [f"worker-{n}" for n in range(1, MAX_RECEIVE_COUNT + 1)]

    assert drain() == 0  # past maxReceiveCount, SQS moves the message to the DLQ
    dead = receive_all(dlq_url())
    assert [json.loads(m["Body"])["id"] for m in dead] == [result.id]
    assert invoke(dead, dlq_url(), entry=dlq.handler) == set()
    delete(dead, dlq_url())
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == MAX_RECEIVE_COUNT
    (error,) = result.errors
    assert error.exception_class_path == "sqs_tasks.exceptions.WorkerLost"
    assert "dead-lettered" in error.traceback
    assert [i["id"]["S"] for i in backend().store.failures("default")] == [result.id]
    assert tasks.runs[result.id] == 0  # it only ever ran in the killed workers
    assert queue_depth() == (0, 0)
    assert queue_depth(dlq_url()) == (0, 0)
