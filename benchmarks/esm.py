"""A Lambda container fed by an emulated SQS event source mapping, for the benchmark.

Run by run.py as its own process (python -m benchmarks.esm BATCH EXPECTED), so its peak RSS
is the handler's. It receives up to BATCH messages (10 per ReceiveMessage, as the event
source mapping does), invokes lambda_handler.handler.handler once per batch, deletes what
succeeded with DeleteMessageBatch, and stops once EXPECTED messages were handled or the queue
stayed empty for IDLE_SECONDS. It prints one JSON line: counts, times, calls and peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

IDLE_SECONDS = 5.0


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM: ru_maxrss would count the parent's pages at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main(batch_size: int, expected: int) -> dict[str, Any]:
    """Handle expected messages in batches of batch_size; return what it took."""
    import boto3
    from django.tasks import task_backends

    from benchmarks.ours import counting
    from lambda_handler.handler import handler
    from sqs_tasks.events import lambda_event
    from sqs_tasks.settle import delete_messages
    from sqs_tasks.testing import DrainContext

    backend: Any = task_backends["default"]
    # The event source mapping's requests are AWS's, on a client of their own.
    sqs = boto3.session.Session().client("sqs")
    with (
        counting(backend.client("dynamodb"), backend.client("sqs")) as ours,
        counting(sqs) as esm,
    ):
        url = backend.queue.url("default")
        region = sqs.meta.region_name
        handled = invocations = 0
        in_handler = 0.0
        start = idle_since = time.perf_counter()
        while handled < expected:
            messages: list[dict[str, Any]] = []
            while len(messages) < batch_size:
                want = min(10, batch_size - len(messages))
                got = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=want,
                    # Long-poll for the first messages of a batch, as the mapping's pollers do.
                    WaitTimeSeconds=0 if messages else 1,
                    MessageSystemAttributeNames=["All"],
                ).get("Messages", [])
                messages += got
                if len(got) < want:
                    break  # The queue has no more right now: invoke with what there is.
            if not messages:
                if time.perf_counter() - idle_since > IDLE_SECONDS:
                    break
                continue
            began = time.perf_counter()
            response = handler(lambda_event(messages, url, region), DrainContext())
            in_handler += time.perf_counter() - began
            invocations += 1
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            done = [m for m in messages if m["MessageId"] not in failed]
            delete_messages(sqs, url, done)
            handled += len(done)
            idle_since = time.perf_counter()
    return {
        "handled": handled,
        "invocations": invocations,
        "seconds": time.perf_counter() - start,
        "handler_seconds": in_handler,
        "calls_ours": dict(ours),
        "calls_esm": dict(esm),
        "maxrss_kb": peak_rss_kb(),
        "cpu_seconds": sum(os.times()[:2]),
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))), flush=True)
