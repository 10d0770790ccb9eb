"""`sqs-tasks local --no-sam`: the project's TASKS on a moto server, in seconds, without SAM.

What the SAM stack would name (Prefix `local`) is made directly: the results table, one queue
and dead-letter queue per QUEUES entry, the schedule group with the project's periodic tasks;
tasks are run by the same worker as `manage.py sqs_tasks_worker` in this process, with the
project's settings, and due schedules fire as EventBridge Scheduler fires them. No template,
no code package, no event source mappings: for daily work on tasks. `sqs-tasks local` (with
SAM) is the one that checks the stack itself.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..stack.generate import ProjectError, settings_from_manage_py
from .console import Console
from .emf import tapped
from .environment import configure_logging, moto_server, preimport
from .periodic import sync_declared
from .serve import serve
from .tools import FAKE_CREDENTIALS, REGION, DeployError
from .workers import start_clock

PREFIX = "local-"
SMOKE_TIMEOUT = 60
EXIT_OK, EXIT_WRONG, EXIT_SETUP = 0, 1, 3


def environment(endpoint_url: str, settings_module: str) -> dict[str, str]:
    """What the project runs with: moto, fake credentials, the stack's names for Prefix=local."""
    from ..testing.embedded import SCHEDULER_ROLE_ARN

    return {
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "SQS_TASKS_TABLE": f"{PREFIX}task-results",
        "SQS_TASKS_QUEUE_PREFIX": PREFIX,
        "SQS_TASKS_SCHEDULE_GROUP": f"{PREFIX}schedules",
        "SQS_TASKS_SCHEDULER_ROLE_ARN": SCHEDULER_ROLE_ARN,
    }


def provision(backend: Any) -> list[str]:
    """The default backend's table, queues (each with its dead-letter queue) and schedule group."""
    from ..testing.embedded import MAX_RECEIVE_COUNT, QUEUE_ATTRIBUTES, TABLE_DEFINITION

    config = backend.config
    backend.client("dynamodb").create_table(TableName=config.table_name, **TABLE_DEFINITION)
    sqs = backend.client("sqs")
    made = [config.table_name]
    for name in sorted(backend.queues):
        queue = f"{config.queue_name_prefix}{name}"
        dlq = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
        redrive = json.dumps(
            {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        )
        sqs.create_queue(QueueName=queue, Attributes={**QUEUE_ATTRIBUTES, "RedrivePolicy": redrive})
        made.append(queue)
    if config.schedule_group:
        backend.client("scheduler").create_schedule_group(Name=config.schedule_group)
    return made


def main(project: Path, keep_running: bool, env_file: Path | None) -> int:
    """Run `sqs-tasks local --no-sam` for the project at project; returns the exit status."""
    console = Console()
    began = time.monotonic()
    workdir = project / ".aws-sam" / "local-quick"
    try:
        settings_module = os.environ.get("DJANGO_SETTINGS_MODULE") or settings_from_manage_py(
            project
        )
    except ProjectError as e:
        console.say(f"sqs-tasks local --no-sam: {e}")
        return EXIT_SETUP
    configure_logging(workdir / "run.log", "INFO")
    console.say("sqs-tasks local --no-sam: your TASKS on an embedded AWS (moto), no SAM stack")
    threading.Thread(target=preimport, name="preimport", daemon=True).start()
    try:
        with moto_server(workdir / "moto.log") as server:
            env = environment(server.url, settings_module)
            os.environ.update(env)
            sys.path.insert(0, str(project))
            import django

            django.setup()
            configure_logging(workdir / "run.log", "INFO", append=True)
            from django.tasks import default_task_backend

            from ..worker.poller import Worker

            made = provision(default_task_backend)
            console.say(f"[1/2] {settings_module} on {server.url}: made {', '.join(made)}")
            for change in sync_declared(default_task_backend):
                console.say(f"    periodic tasks, as `sqs_tasks_schedules sync` does: {change}")
            worker = Worker(concurrency=2, wait_time=1)
            # The worker's EMF lines go to the log, not between the report's lines.
            with tapped(workdir / "run.log"):
                thread = threading.Thread(target=worker.run, name="worker", daemon=True)
                thread.start()
                # EventBridge Scheduler's part: deferred tasks and periodic firings, when due.
                stopping = threading.Event()
                start_clock(stopping)
                try:
                    status = smoke_check(console)
                    took = time.monotonic() - began
                    console.say(f"    up in {took:.1f} s")
                    if status == EXIT_OK and keep_running:
                        serve(console, env, env_file)
                finally:
                    stopping.set()
                    worker.stop()
                    thread.join(timeout=30)
            return status
    except DeployError as e:
        console.say(f"sqs-tasks local --no-sam: {e}")
        return EXIT_SETUP


def smoke_check(console: Console) -> int:
    """ping() on each queue, run by the worker; EXIT_OK when each came back SUCCESSFUL."""
    from .expectations import Tracker, judge
    from .smoke import enqueue_smoke

    tracker = Tracker()
    ids = enqueue_smoke(tracker)
    from django.tasks import default_task_backend

    deadline = time.monotonic() + SMOKE_TIMEOUT
    results = default_task_backend.get_results(ids)  # type: ignore[attr-defined]
    while not all(r.is_finished for r in results) and time.monotonic() < deadline:
        time.sleep(0.2)
        results = default_task_backend.get_results(ids)  # type: ignore[attr-defined]
    wrong = 0
    for result in results:
        expected = tracker.expected[result.id]
        problem = judge(result, expected)
        wrong += problem is not None
        console.say(f"[2/2] {expected.label}: {result.status} {problem or 'ok'}")
    return EXIT_WRONG if wrong else EXIT_OK
