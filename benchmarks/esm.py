"""A Lambda container fed by an emulated SQS event source mapping, for the benchmark.

Run by run.py as its own process (python -m benchmarks.esm BATCH EXPECTED), so its peak RSS
is the handler's. Like the mapping, whose pollers are AWS's and not the function's, a poller
thread receives up to BATCH messages (10 per ReceiveMessage) while the function works on the
batch before, holding one batch ready; the function (lambda_handler.handler.handler) is
invoked once per batch, one invocation at a time, and what succeeded is deleted with
DeleteMessageBatch on a thread of its own. It stops once EXPECTED messages were handled or no
batch came for IDLE_SECONDS, and prints one JSON line: counts, times, calls and peak RSS.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
        batches: queue.Queue[list[dict[str, Any]]] = queue.Queue(maxsize=1)
        stop = threading.Event()
        poller = threading.Thread(
            target=poll, args=(sqs, url, batch_size, batches, stop), daemon=True
        )
        handled = invocations = 0
        in_handler = 0.0
        start = time.perf_counter()
        poller.start()
        with ThreadPoolExecutor(max_workers=1) as deleter:
            while handled < expected:
                try:
                    messages = batches.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    break
                began = time.perf_counter()
                response = handler(lambda_event(messages, url, region), DrainContext())
                in_handler += time.perf_counter() - began
                invocations += 1
                failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
                done = [m for m in messages if m["MessageId"] not in failed]
                deleter.submit(delete_messages, sqs, url, done)
                handled += len(done)
            stop.set()
        poller.join()
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


def poll(
    sqs: Any,
    url: str,
    batch_size: int,
    batches: queue.Queue[list[dict[str, Any]]],
    stop: threading.Event,
) -> None:
    """Receive batches until stopped, holding at most one while the function is busy."""
    while not stop.is_set():
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
        while messages and not stop.is_set():
            try:
                batches.put(messages, timeout=0.1)
                break
            except queue.Full:
                continue


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))), flush=True)
