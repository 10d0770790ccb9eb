"""Promise 1: SQS delivers at least once, yet each task body runs exactly once.

1,000 tasks, each message delivered two or three times (1,500 duplicate copies), processed
by 4 concurrent workers against moto server over HTTP. Each worker is a thread standing in
for a Lambda container: its own Django backend, boto3 clients and batch processor.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sqs_tasks.testing import QUEUE_ATTRIBUTES, Stack, drain
from tests.faults import tasks
from tests.faults.support import (
    all_items,
    body_of,
    client,
    deliver,
    queue_depth,
    queue_url,
    receive,
)

TASKS = 1_000
WORKERS = 4
ROUND = 100  # tasks enqueued before the workers drain them
BLOCK = 10  # one SQS batch: a block's copies sit right behind its originals in the queue
VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))


@dataclass
class WorkerLog:
    """What one worker saw: deliveries handled, and those it handed back to SQS."""

    delivered: int = 0
    handed_back: int = 0


def _worker(url: str) -> WorkerLog:
    """Poll the queue and run each batch through the Lambda handler until none is visible."""
    log = WorkerLog()
    while messages := receive(url):
        failed = deliver(messages, url)
        log.delivered += len(messages)
        log.handed_back += len(failed)
    return log


def _enqueue_with_duplicates(first: int, count: int) -> tuple[dict[str, int], int]:
    """Enqueue count tallies; behind each block send 1 or 2 extra copies of every message."""
    expected: dict[str, int] = {}
    copies = 0
    sqs = client("sqs")
    url = queue_url()
    for start in range(first, first + count, BLOCK):
        numbers = range(start, start + BLOCK)
        block = [tasks.tally.enqueue(n) for n in numbers]
        expected.update({r.id: n * 2 for r, n in zip(block, numbers, strict=True)})
        # Every task gets one extra copy, every other task a second: 2 or 3 deliveries each.
        for extra in (block, block[::2]):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": body_of(r)} for i, r in enumerate(extra)],
            )
            copies += len(extra)
    return expected, copies


@pytest.mark.slow
def test_duplicate_deliveries_to_concurrent_workers_run_each_body_once(
    stack: Stack, time_machine: Any
) -> None:
    """1,000 tasks, 2,500 deliveries (1,500 duplicates), 4 workers: 0 double runs, 0 lost."""
    url = queue_url()
    expected: dict[str, int] = {}
    copies = 0
    logs: list[WorkerLog] = []
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="worker") as pool:
        # In rounds, so the queue holds hundreds of messages, not thousands (moto scans it).
        for first in range(0, TASKS, ROUND):
            enqueued, sent = _enqueue_with_duplicates(first, ROUND)
            expected.update(enqueued)
            copies += sent
            logs += pool.map(_worker, [url] * WORKERS)
    deliveries = TASKS + copies
    handed_back = sum(log.handed_back for log in logs)
    # A copy that met its task RUNNING under another worker's live lease was handed back;
    # SQS shows it again after the visibility timeout, when it finds the result finished.
    time_machine.move_to(datetime.now(UTC) + VISIBILITY + timedelta(seconds=1), tick=True)
    redelivered = drain()
    items = all_items()

    runs = Counter(tasks.runs)
    statuses = Counter(i["status"]["S"] for i in items)
    double = sorted(rid for rid, n in runs.items() if n > 1)
    never = sorted(set(expected) - set(runs))
    figures = (
        f"{TASKS:,} tasks, {deliveries:,} deliveries ({copies:,} duplicates) to {WORKERS} "
        f"workers, {handed_back} handed back under a live lease, {redelivered} redelivered: "
        f"{len(double)} double runs, {len(never)} never ran, statuses {dict(statuses)}"
    )
    print(figures)  # pytest -rP shows it
    # moto may hand one message to two concurrent receivers: more duplicates, never fewer.
    assert sum(log.delivered for log in logs) >= deliveries, figures
    assert redelivered <= handed_back, figures
    assert (double, never) == ([], []), figures
    assert sum(runs.values()) == TASKS, figures
    assert statuses == {"SUCCESSFUL": TASKS}, figures  # 0 lost (READY), 0 stuck (RUNNING)
    assert {i["id"]["S"]: int(i["return_value"]["S"]) for i in items} == expected, figures
    assert {int(i["attempts"]["N"]) for i in items} == {1}, figures
    assert queue_depth(url) == (0, 0), figures  # every copy was deleted
    assert len(tasks.threads) > 1, f"one worker ran everything: {figures}"
