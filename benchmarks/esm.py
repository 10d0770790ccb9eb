"""A Lambda container fed by an SQS event source mapping, for the benchmark.

Run by run.py as its own process (python -m benchmarks.esm BATCH EXPECTED [CONCURRENCY]), so
its peak RSS is the handler's. The mapping is `sqs-tasks local`'s emulator
(sqs_tasks/local/mapping.py) feeding one container, as a reserved concurrency of one would:
batches of up to BATCH messages, one invocation of lambda_handler.handler.handler at a time
(CONCURRENCY at a time, on threads of this process, if given), DeleteMessageBatch for
what succeeded while the next batch runs. It stops once EXPECTED messages were deleted or
nothing moved for IDLE_SECONDS, and prints one JSON line: counts, times, calls, peak RSS and
CPU (in all, and at the first batch).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

IDLE_SECONDS = 5.0


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM: ru_maxrss would count the parent's pages at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main(batch_size: int, expected: int, concurrency: int = 1) -> dict[str, Any]:
    """Handle expected messages in batches of batch_size; return what it took."""
    import boto3
    from django.tasks import task_backends

    from benchmarks.ours import counting
    from lambda_handler.handler import handler
    from sqs_tasks.local.mapping import EventSourceMapping
    from sqs_tasks.local.mapping_config import FunctionConfig, MappingConfig
    from sqs_tasks.worker.events import queue_arn

    if os.environ.get("BENCH_CLAIM_AHEAD") == "0":
        from benchmarks.drain import claim_ahead_off

        claim_ahead_off()
    backend: Any = task_backends["default"]
    # The event source mapping's requests are AWS's, on a client of their own.
    sqs = boto3.session.Session().client("sqs")
    url = backend.queue.url("default")
    region = sqs.meta.region_name
    name = "sqs-tasks-benchmark"
    function = FunctionConfig(
        name=name,
        arn=f"arn:aws:lambda:{region}:123456789012:function:{name}",
        handler="lambda_handler.handler.handler",
        timeout=900,
        memory_size=512,
    )
    config = MappingConfig(
        uuid=name,
        function=function,
        queue_url=url,
        queue_arn=queue_arn(url, region),
        region=region,
        batch_size=batch_size,
        # AWS asks a batching window of at least a second of a mapping whose batches exceed 10.
        batching_window=0 if batch_size <= 10 else 1,
        report_batch_item_failures=True,
        # 1: one container (AWS's mapping setting has a floor of 2); more share this process.
        maximum_concurrency=concurrency,
        visibility_timeout=900,
        max_receive_count=None,
        dead_letter_arn=None,
    )
    in_handler: list[float] = []
    counted = ExitStack()
    tallies: dict[int, Counter[str]] = {}

    def timed(event: dict[str, Any], context: Any) -> Any:
        # Django's backends are per thread: count the invoking thread's own clients.
        used: Any = task_backends["default"]
        if id(used) not in tallies:
            clients = (used.client("dynamodb"), used.client("sqs"))
            tallies[id(used)] = counted.enter_context(counting(*clients))
        began = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            in_handler.append(time.perf_counter() - began)

    mapping = EventSourceMapping(config, timed, sqs)
    enough = threading.Event()

    def settled(config: MappingConfig, message: Any, outcome: str) -> None:
        if mapping.stats.deleted >= expected:
            enough.set()

    mapping.listeners.append(settled)
    ready_cpu = sum(os.times()[:2])  # The container booted, before the first batch.
    with counted, counting(sqs) as esm:
        start = time.perf_counter()
        mapping.start()
        progress: tuple[int, int] | None = None
        while not enough.wait(IDLE_SECONDS):
            stats = mapping.stats
            now = (stats.received, stats.deleted + stats.failed)
            if now == progress and now[0] == now[1]:
                break  # Nothing received, nothing running, for IDLE_SECONDS.
            progress = now
        seconds = time.perf_counter() - start
        mapping.stop()
        mapping.join()
    return {
        "handled": mapping.stats.deleted,
        "invocations": mapping.stats.invocations,
        "seconds": seconds,
        "handler_seconds": sum(in_handler),
        "calls_ours": dict(sum(tallies.values(), Counter())),
        "calls_esm": dict(esm),
        "maxrss_kb": peak_rss_kb(),
        "cpu_seconds": sum(os.times()[:2]),
        "ready_cpu_seconds": ready_cpu,
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    # The handler's EMF lines (one per invocation, as in Lambda's log) must not fill the pipe
    # the parent reads only the report line from.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    print(json.dumps(main(*(int(arg) for arg in sys.argv[1:4]))), file=sys.__stdout__, flush=True)
