"""What a 3-day run_after costs while it waits, counted on an in-process moto with the clock moved.

The clock can only be moved for a moto in this process, so this part runs on its own stack
(sqs_tasks.testing.aws_stack, as the test suite does); request counts do not depend on the
server. Two set-ups: SQS alone (a re-send per 15 minutes) and with EventBridge Scheduler.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.ours import counting
from benchmarks.tasks import noop

DAYS = 3


def measure(scheduler: bool) -> dict[str, Any]:
    """Requests made while one task waits DAYS days, by whom, split into wait and run."""
    import time_machine
    from django.tasks import TaskResultStatus, task_backends
    from django.test import override_settings

    from sqs_tasks.testing import aws_stack, drain, emulator_client

    with aws_stack() as stack:
        tasks = stack.tasks
        if not scheduler:
            options = {
                k: v
                for k, v in tasks["default"]["OPTIONS"].items()
                if k not in {"SCHEDULE_GROUP", "SCHEDULER_ROLE_ARN"}
            }
            tasks = {"default": {**tasks["default"], "OPTIONS": options}}
        with override_settings(TASKS=tasks):
            backend: Any = task_backends["default"]
            start = datetime.now(UTC)
            due = start + timedelta(days=DAYS)
            step = timedelta(minutes=15, seconds=1) if not scheduler else timedelta(hours=6)
            esm: Counter[str] = Counter()
            sqs = emulator_client(backend, "sqs")

            def received(parsed: dict[str, Any], **kwargs: Any) -> None:
                if parsed.get("Messages"):  # Empty polls are the mapping's, not this task's.
                    esm["ReceiveMessage"] += len(parsed["Messages"])

            def deleted(params: dict[str, Any], **kwargs: Any) -> None:
                esm["DeleteMessage"] += len(params["Entries"])

            sqs.meta.events.register("after-call.sqs.ReceiveMessage", received)
            sqs.meta.events.register("provide-client-params.sqs.DeleteMessageBatch", deleted)
            clients = [backend.client(s) for s in ("dynamodb", "sqs", "scheduler")]
            with time_machine.travel(start, tick=True) as traveller, counting(*clients) as ours:
                result_id = noop.using(run_after=due).enqueue().id
                enqueued = Counter(ours)
                moment = start
                while backend.get_result(result_id).status != TaskResultStatus.SUCCESSFUL:
                    if moment >= due + timedelta(minutes=16):
                        raise RuntimeError("the deferred task did not run once due")
                    moment = min(moment + step, due + timedelta(minutes=16))
                    traveller.move_to(moment)
                    drain()
            reads = ours.pop("GetItem", 0)
            sqs.meta.events.unregister("after-call.sqs.ReceiveMessage", received)
            sqs.meta.events.unregister("provide-client-params.sqs.DeleteMessageBatch", deleted)
    waiting = Counter(ours)
    waiting.subtract(enqueued)
    waiting.subtract({"UpdateItem": 1, "PutItem": 1})  # The claim and finish of the run itself.
    esm.subtract({"ReceiveMessage": 1, "DeleteMessage": 1})  # The delivery that ran it.
    return {
        "days": DAYS,
        "scheduler": scheduler,
        "enqueue": dict(enqueued),
        "ours": dict(ours),
        "esm": dict(esm),
        "status_reads": reads,
        "waiting_ours_per_day": {k: v / DAYS for k, v in (+waiting).items()},
        "waiting_esm_per_day": {k: v / DAYS for k, v in (+esm).items()},
    }
