"""sqs-tasks measured against the bare AWS calls it makes, and end to end through the handler."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.tasks import TaskResultStatus, task_backends

from benchmarks.tasks import noop
from sqs_tasks.aws.store import COND_OWNER
from sqs_tasks.results import item_size
from sqs_tasks.worker.events import lambda_event
from sqs_tasks.worker.settle import delete_messages

FINISHED = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}
# How often a waiting caller reads a result again: as the Celery producer's get(interval=...).
POLL_SECONDS = 0.05


def backend() -> Any:
    """The benchmark's SQSBackend."""
    return task_backends["default"]


@contextmanager
def counting(*clients: Any) -> Iterator[Counter[str]]:
    """Count the operations the clients call, by name, with botocore's before-call event."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()  # The benchmark's event source mapping counts from two threads.

    def count(model: Any, **kwargs: Any) -> None:
        with lock:
            counts[model.name] += 1

    for client in clients:
        client.meta.events.register("before-call.*.*", count)
    try:
        yield counts
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", count)


@contextmanager
def capturing(client: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    """The parameters of each call of operation, as the caller passed them."""
    seen: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **kwargs: Any) -> None:
        seen.append(json.loads(json.dumps(params)))

    event = f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(event, keep)
    try:
        yield seen
    finally:
        client.meta.events.unregister(event, keep)


_override: Any = None
# Where the backend's requests go when not straight to moto (the latency proxy's URL).
ENDPOINT: str | None = None


def straight_to_moto() -> None:
    """Stop going through the latency proxy: the next fresh_queue() points at moto itself."""
    global ENDPOINT, _override
    ENDPOINT = None
    if _override is not None:
        _override.disable()
        _override = None


def fresh_queue(tag: str) -> str:
    """Point the backend at a new, empty queue (moto allows one PurgeQueue a minute)."""
    global _override
    from django.test import override_settings

    from benchmarks.settings import TASKS
    from sqs_tasks.testing import QUEUE_ATTRIBUTES

    sqs = backend().client("sqs")
    name = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    url: str = sqs.create_queue(QueueName=name, Attributes=dict(QUEUE_ATTRIBUTES))["QueueUrl"]
    if _override is not None:
        _override.disable()
    options: dict[str, Any] = {"QUEUE_URLS": {"default": url}}
    if ENDPOINT is not None:
        options["ENDPOINT_URL"] = ENDPOINT
    _override = override_settings(TASKS={"default": {**TASKS["default"], "OPTIONS": options}})
    _override.enable()
    return url


def _fresh(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "id": {"S": uuid.uuid4().hex}}


def _compare(ours: list[float], floor: list[float], per: int) -> dict[str, float]:
    """Medians per operation, and the median of the paired rounds' ratios (noise-robust)."""
    return {
        "ours_ms": statistics.median(ours) / per * 1000,
        "floor_ms": statistics.median(floor) / per * 1000,
        "ratio": statistics.median(o / f for o, f in zip(ours, floor, strict=True)),
        "ratio_of_sums": sum(ours) / sum(floor),
        "rounds": len(ours),
    }


def _on_fresh_queue(tag: str) -> tuple[Any, Any, Any, str]:
    """The backend on a new queue, its clients made (not to be timed), and the queue URL."""
    url = fresh_queue(tag)
    b = backend()
    return b, b.client("dynamodb"), b.client("sqs"), url


def enqueue_single(n: int, rounds: int) -> dict[str, Any]:
    """n enqueue() calls per round against the same PutItem + SendMessage made directly, one
    after the other (the floor), and against one SendMessage alone: what django-tasks-sqs's
    enqueue() and Celery's (after its first call) send, with no result stored."""
    b, ddb, sqs, _ = _on_fresh_queue("single")
    with (
        counting(ddb, sqs) as calls,
        capturing(ddb, "PutItem") as puts,
        capturing(sqs, "SendMessage") as sends,
    ):
        first = noop.enqueue()
    ready = b.store.get(first.id)
    template, send = puts[0], sends[0]
    times: dict[str, list[float]] = {"ours": [], "floor": [], "one_send": []}
    for r in range(rounds):
        turns = list(times)
        for turn in turns[r % 3 :] + turns[: r % 3]:  # Each goes first in turn.
            # A fresh, empty queue for each turn, so no turn inherits another's messages.
            b, ddb, sqs, url = _on_fresh_queue("single")
            start = time.perf_counter()
            if turn == "ours":
                for _ in range(n):
                    noop.enqueue()
            elif turn == "floor":
                for _ in range(n):
                    ddb.put_item(**{**template, "Item": _fresh(template["Item"])})
                    sqs.send_message(**{**send, "QueueUrl": url})
            else:
                for _ in range(n):
                    sqs.send_message(**{**send, "QueueUrl": url})
            times[turn].append(time.perf_counter() - start)
    one_send = _compare(times["ours"], times["one_send"], per=n)
    return {
        "calls": dict(calls),
        **_compare(times["ours"], times["floor"], per=n),
        "one_send_ms": one_send["floor_ms"],
        "vs_one_send": one_send["ratio"],
        "ready_item": ready,
        "send_bytes": len(send["MessageBody"].encode()),
    }


def enqueue_bulk(n: int, rounds: int) -> dict[str, Any]:
    """enqueue_many() of n tasks against the same BatchWriteItem + SendMessageBatch calls."""
    b, ddb, sqs, _ = _on_fresh_queue("bulk")
    with (
        counting(ddb, sqs) as calls,
        capturing(ddb, "BatchWriteItem") as writes,
        capturing(sqs, "SendMessageBatch") as batches,
    ):
        b.enqueue_many([(noop, [], {}) for _ in range(n)])
    ours: list[float] = []
    floor: list[float] = []
    for r in range(rounds):
        for turn in (0, 1) if r % 2 == 0 else (1, 0):
            b, ddb, sqs, url = _on_fresh_queue("bulk")
            start = time.perf_counter()
            if turn == 0:
                b.enqueue_many([(noop, [], {}) for _ in range(n)])
                ours.append(time.perf_counter() - start)
            else:
                for write in writes:
                    (table, requests), *_ = write["RequestItems"].items()
                    fresh = [
                        {"PutRequest": {"Item": _fresh(r["PutRequest"]["Item"])}} for r in requests
                    ]
                    ddb.batch_write_item(RequestItems={table: fresh})
                for batch in batches:
                    sqs.send_message_batch(**{**batch, "QueueUrl": url})
                floor.append(time.perf_counter() - start)
    batch_bytes = [sum(len(e["MessageBody"].encode()) for e in c["Entries"]) for c in batches]
    return {
        "calls": dict(calls),
        **_compare(ours, floor, per=1),
        "max_batch_bytes": max(batch_bytes),
    }


def handler_overhead(n: int) -> dict[str, Any]:
    """The handler's time per task against the claim and finish it must make, made raw."""
    from lambda_handler.handler import handler
    from sqs_tasks.testing import DrainContext

    url = fresh_queue("handler")
    b = backend()
    ddb = b.client("dynamodb")
    esm = b.client("sqs")  # Receives and deletes are not timed.
    results = b.enqueue_many([(noop, [], {}) for _ in range(n)])
    template = b.store.get(results[0].id)
    ours: list[float] = []
    floor: list[float] = []
    handled = 0
    with capturing(ddb, "UpdateItem") as claims, capturing(ddb, "PutItem") as puts:
        while handled < n:
            messages = esm.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            event = lambda_event(messages, url, esm.meta.region_name)
            start = time.perf_counter()
            handler(event, DrainContext())
            ours.append(time.perf_counter() - start)
            delete_messages(esm, url, messages)
            # The same writes, made directly on fresh READY items (not timed: the puts).
            finishes = [p for p in puts if p.get("ConditionExpression") == COND_OWNER]
            pairs = zip(claims[-len(messages) :], finishes[-len(messages) :], strict=True)
            fresh = [_fresh(template) for _ in messages]
            for item in fresh:
                ddb.put_item(TableName=b.store.table_name, Item=item)
            start = time.perf_counter()
            for item, (claim, finish) in zip(fresh, pairs, strict=True):
                ddb.update_item(**{**claim, "Key": {"id": item["id"]}})
                ddb.put_item(**{**finish, "Item": {**finish["Item"], "id": item["id"]}})
            floor.append(time.perf_counter() - start)
            handled += len(messages)
    final = b.store.get(results[-1].id)
    return {
        "handled": handled,
        **_compare(ours, floor, per=10),
        "final_item": final,
        "final_bytes": item_size(final),
    }


def end_to_end(
    root: Path, env: dict[str, str], n: int, batch: int, workers: int = 1
) -> dict[str, Any]:
    """Enqueue n tasks (bulk) while handler processes drain them; until all results read."""
    url = fresh_queue(f"e2e-{batch}-{workers}")
    b = backend()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.esm", str(batch), str(n + 1)],
            cwd=root,
            env={**env, "SQS_TASKS_QUEUE_URLS": json.dumps({"default": url})},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        _wait_finished([noop.enqueue().id], timeout=120)  # Warm: a worker has booted.
        ddb, sqs = b.client("dynamodb"), b.client("sqs")
        start = time.perf_counter()
        with counting(ddb, sqs) as enqueue_calls:
            results = b.enqueue_many([(noop, [], {}) for _ in range(n)])
        enqueued = time.perf_counter()
        with counting(ddb) as read_calls:
            _wait_finished([r.id for r in results], timeout=900)
        done = time.perf_counter()
        reports = [
            json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs
        ]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return {
        "n": n,
        "batch": batch,
        "workers": workers,
        "seconds": done - start,
        "enqueue_seconds": enqueued - start,
        "tasks_per_second": n / (done - start),
        "enqueue_calls": dict(enqueue_calls),
        "read_calls": dict(read_calls),
        "worker": _merged(reports),
    }


def _merged(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' reports as one: counts added up, the largest peak RSS."""
    merged: dict[str, Any] = {"calls_ours": Counter(), "calls_esm": Counter()}
    for report in reports:
        for key in ("handled", "invocations", "handler_seconds", "cpu_seconds"):
            merged[key] = merged.get(key, 0) + report[key]
        merged["calls_ours"].update(report["calls_ours"])
        merged["calls_esm"].update(report["calls_esm"])
        merged["maxrss_kb"] = max(merged.get("maxrss_kb", 0), report["maxrss_kb"])
    return {
        **merged,
        "calls_ours": dict(merged["calls_ours"]),
        "calls_esm": dict(merged["calls_esm"]),
    }


def _wait_finished(ids: list[str], timeout: float) -> None:
    """Wait as a caller of many tasks would: on the last result, then read them all at once."""
    deadline = time.monotonic() + timeout
    b = backend()
    pending = list(ids)
    while pending:
        while b.get_result(pending[-1]).status not in FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"result {pending[-1]} not finished after {timeout} s")
            time.sleep(POLL_SECONDS)
        pending = [r.id for r in b.get_results(pending) if r.status not in FINISHED]
