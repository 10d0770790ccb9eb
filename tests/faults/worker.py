"""A worker process the SIGKILL tests start: one Lambda invocation on one SQS message.

    python -m tests.faults.worker QUEUE_URL WORKER_ID NOW

The environment carries AWS_* (as aws_stack set them) and SQS_TASKS_FAULTS_TASKS, the JSON
TASKS setting aws_stack patched (table, queue URLs, moto's endpoint). NOW is the test's
clock, which moto (in the test process) follows, so leases and visibility agree.
It prints RECEIVED <message id> and the handler's response; the task prints STARTED.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

ENV_TASKS = "SQS_TASKS_FAULTS_TASKS"


def main(queue_url: str, worker_id: str, now: str) -> int:
    """Receive one message and run it through lambda_handler.handler.handler."""
    import time_machine

    time_machine.travel(datetime.fromisoformat(now), tick=True).start()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.test import override_settings

    override_settings(TASKS=json.loads(os.environ[ENV_TASKS])).enable()

    from lambda_handler.handler import handler
    from sqs_tasks.testing import lambda_record
    from tests.faults.support import WorkerContext, client, receive

    messages = receive(queue_url, limit=1)
    if not messages:
        print("EMPTY", flush=True)
        return 3
    print(f"RECEIVED {messages[0]['MessageId']}", flush=True)
    region = client("sqs").meta.region_name
    event: dict[str, Any] = {"Records": [lambda_record(messages[0], queue_url, region)]}
    print(json.dumps(handler(event, WorkerContext(worker_id))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
