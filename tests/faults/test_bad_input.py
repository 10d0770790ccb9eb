"""Promise 4: bad input never runs and never crashes a batch.

One Lambda batch holds 5 good messages and 21 bad ones: malformed, forged, tampered,
oversized, smuggled pickles, unknown ids and paths to things that are not Tasks. The good
ones succeed; nothing else runs; the batch response lists exactly the messages SQS should
deliver again (and, after maxReceiveCount, dead-letter).
"""

from __future__ import annotations

import json
import pickle
import sys
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.tasks import TaskResult, TaskResultStatus
from django.test import override_settings

from lambda_handler import dlq
from sqs_tasks.exceptions import ArgumentsTooDeep
from sqs_tasks.message import Envelope
from sqs_tasks.producer import STORE_BOUND
from sqs_tasks.results import MAX_ARGUMENT_DEPTH
from sqs_tasks.testing import MAX_RECEIVE_COUNT, QUEUE_ATTRIBUTES, Stack, drain
from sqs_tasks.worker.unstored import wait_seconds
from tests.faults import tasks
from tests.faults.support import (
    all_items,
    backend,
    body_of,
    client,
    delete,
    deliver,
    dlq_url,
    item,
    queue_depth,
    receive_all,
    send,
)

GOOD = 5
VISIBILITY = timedelta(seconds=int(QUEUE_ATTRIBUTES["VisibilityTimeout"]))
OVERSIZED = 300 * 1024


class _Smuggled:
    """A pickle that, if anything ever unpickled it, would call tasks.pwned."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (tasks.pwned, ("pickle",))


def _refused_bodies(genuine: str) -> dict[str, str]:
    """Bodies the worker must refuse and hand back to SQS (to end in the DLQ)."""
    fields: dict[str, Any] = json.loads(genuine)
    unsigned = {k: v for k, v in fields.items() if k != "sig"}
    sig = fields["sig"]
    with override_settings(SECRET_KEY="an-attackers-guess-at-the-key"):
        other_key = Envelope(
            fields["id"], fields["backend"], fields["task"], fields["q"], fields["p"]
        ).encode()
    return {
        "malformed JSON": genuine[:-7],
        "JSON array": "[]",
        "JSON null": "null",
        "JSON string": json.dumps(genuine),
        "unknown version": json.dumps({**fields, "v": 2}),
        "missing fields": json.dumps({k: v for k, v in fields.items() if k not in {"task", "q"}}),
        "wrong field type": json.dumps({**fields, "p": "high"}),
        "bool for an int": json.dumps({**fields, "p": True}),
        "extra field": json.dumps({**fields, "args": ["rm -rf /"]}),
        "unsigned": json.dumps(unsigned),
        "tampered (task changed)": json.dumps({**fields, "task": "os.system"}),
        "wrong HMAC": json.dumps({**fields, "sig": sig[::-1]}),
        "signed with another key": other_key,
        "oversized (300 KB)": json.dumps({**fields, "pad": "x" * OVERSIZED}),
        "deeply nested (300 KB)": "[" * OVERSIZED,
        "pickle": pickle.dumps(_Smuggled(), protocol=0).decode("ascii"),
        "unknown backend": Envelope(
            fields["id"], "no-such-backend", fields["task"], fields["q"], fields["p"]
        ).encode(),
    }


def _victim(task_path: str | None = None) -> TaskResult[..., Any]:
    """A result whose genuine message was consumed; its item may name task_path instead."""
    result = tasks.tally.enqueue(0)
    if task_path is not None:
        store = backend().store
        client("dynamodb").update_item(
            TableName=store.table_name,
            Key={"id": {"S": result.id}},
            UpdateExpression="SET task_path = :p",
            ExpressionAttributeValues={":p": {"S": task_path}},
        )
    return result


def test_one_batch_of_good_and_bad_messages(stack: Stack, clock: Any) -> None:
    """5 good + 21 bad messages in 1 batch: 5 SUCCESSFUL, 0 bad ones run, 0 crashes;
    17 handed back, 1 (no result) hidden a second then dropped once STORE_BOUND old,
    3 results FAILED (InvalidTaskPath); nothing READY/RUNNING."""
    wrong_path = _victim()
    not_a_task = _victim("tests.faults.tasks.pwned")  # a plain function
    missing_module = _victim("tests.faults.no_such_module.tally")
    delete(receive_all())  # the victims' genuine messages went elsewhere
    good = [tasks.tally.enqueue(n) for n in range(GOOD)]
    refused = _refused_bodies(body_of(good[0]))
    # Signed, but its result is not stored: it may yet be (enqueue writes while it sends).
    unstored = Envelope("no-such-result", "default", "tests.faults.tasks.tally", "default", 0)
    settled = {  # signed, so accepted, and each one deleted without running anything
        "signed, naming another callable": Envelope(
            wrong_path.id, "default", "os.system", "default", 0
        ).encode(),
        "result naming a non-Task": Envelope(
            not_a_task.id, "default", "tests.faults.tasks.pwned", "default", 0
        ).encode(),
        "result naming a missing module": Envelope(
            missing_module.id, "default", "tests.faults.no_such_module.tally", "default", 0
        ).encode(),
    }
    unknown = {"unknown result id": unstored.encode()}
    for body in [*refused.values(), *settled.values(), *unknown.values()]:
        send(body)

    batch = receive_all()
    label = {body: name for name, body in {**refused, **settled, **unknown}.items()}
    failed = deliver(batch)

    handed_back = sorted(label[m["Body"]] for m in batch if m["MessageId"] in failed)
    assert len(batch) == GOOD + len(refused) + len(settled) + 1 == 26
    assert handed_back == sorted([*refused, *unknown]), "the refused go back, and the unstored"
    for result in good:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
    assert sorted(tasks.runs.values()) == [1] * GOOD  # only the good bodies ran
    assert set(tasks.runs) == {r.id for r in good}  # and no payload, pickled or not
    for victim, why in [
        (wrong_path, "message names 'os.system'"),
        (not_a_task, "is not a Task"),
        (missing_module, "cannot be imported"),
    ]:
        stored = item(victim.id)  # read raw: a TaskResult cannot be built for a non-Task
        assert stored is not None
        assert stored["status"]["S"] == "FAILED"
        (error,) = stored["errors"]["L"]
        assert error["M"]["exception_class_path"]["S"] == "sqs_tasks.exceptions.InvalidTaskPath"
        assert why in error["M"]["traceback"]["S"]
    statuses = sorted(i["status"]["S"] for i in all_items())
    assert statuses == ["FAILED"] * 3 + ["SUCCESSFUL"] * GOOD  # 0 READY, 0 RUNNING
    assert queue_depth() == (0, len(refused) + 1)
    clock.shift(timedelta(seconds=wait_seconds(1)))
    (again,) = receive_all()  # only the unstored one is back this soon
    assert label[again["Body"]] == "unknown result id"
    assert deliver([again]) == {again["MessageId"]}  # 1 s old: back in 6 s
    clock.shift(STORE_BOUND)
    last = {label[m["Body"]]: m for m in receive_all()}
    assert deliver([last["unknown result id"]]) == set()  # its write clearly failed: dropped
    assert queue_depth() == (0, len(refused))
    assert sum(tasks.runs.values()) == GOOD


def test_refused_messages_are_dead_lettered_and_settled_without_running(
    stack: Stack, clock: Any
) -> None:
    """17 refused messages, 5 deliveries each: all dead-lettered; the DLQ handler runs
    nothing and deletes none (it cannot verify them: each stays for a human, or a redrive)."""
    result = tasks.tally.enqueue(1)
    delete(receive_all())
    refused = _refused_bodies(body_of(result))
    for body in refused.values():
        send(body)

    deliveries = 0
    for _ in range(MAX_RECEIVE_COUNT):
        deliveries += drain()
        clock.shift(VISIBILITY + timedelta(seconds=1))
    assert drain() == 0  # past maxReceiveCount: moved to the DLQ
    dead = receive_all(dlq_url())
    failed = deliver(dead, dlq_url(), entry=dlq.handler)
    result.refresh()

    assert deliveries == MAX_RECEIVE_COUNT * len(refused)
    assert sorted(m["Body"] for m in dead) == sorted(refused.values())
    assert failed == {m["MessageId"] for m in dead}
    assert queue_depth(dlq_url()) == (0, len(refused))
    assert result.status == TaskResultStatus.READY  # no forged copy touched it
    assert sum(tasks.runs.values()) == 0


def _nested(depth: int) -> list[Any]:
    """A list holding a list ... depth lists in all."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_arguments_nested_past_the_limit_are_refused_at_enqueue(stack: Stack, where: str) -> None:
    """Depth 100 (args list included) enqueues; 101 raises ArgumentsTooDeep naming the limit,
    before anything is written or sent."""
    # The args list and the kwargs mapping are one level each.
    fits = _nested(MAX_ARGUMENT_DEPTH - 1)
    too_deep = _nested(MAX_ARGUMENT_DEPTH)
    ok = tasks.tally.enqueue(fits) if where == "args" else tasks.tally.enqueue(n=fits)
    delete(receive_all())

    with pytest.raises(ArgumentsTooDeep, match=f"the limit is {MAX_ARGUMENT_DEPTH}"):
        if where == "args":
            tasks.tally.enqueue(too_deep)
        else:
            tasks.tally.enqueue(n=too_deep)

    assert [i["id"]["S"] for i in all_items()] == [ok.id]
    assert queue_depth() == (0, 0)


def test_a_result_its_worker_cannot_rebuild_fails_at_its_first_receive(
    stack: Stack, clock: Any
) -> None:
    """Arguments nested past the recursion limit (stored before enqueue refused them, by a
    version whose messages carried no digest of them): the first receive ends the result
    FAILED with the RecursionError, body never run, nothing redelivered or dead-lettered."""
    result = tasks.tally.enqueue(0)
    client("dynamodb").update_item(
        TableName=backend().store.table_name,
        Key={"id": {"S": result.id}},
        UpdateExpression="SET args = :a",
        ExpressionAttributeValues={":a": {"S": json.dumps(_nested(sys.getrecursionlimit()))}},
    )
    url = backend().queue.url(result.task.queue_name)
    client("sqs").purge_queue(QueueUrl=url)
    undigested = replace(Envelope.of(result), args_digest=None)
    client("sqs").send_message(QueueUrl=url, MessageBody=undigested.encode())

    for _ in range(MAX_RECEIVE_COUNT + 1):
        drain()
        clock.shift(VISIBILITY + timedelta(seconds=1))
    stored = item(result.id)

    assert stored is not None
    assert (stored["status"]["S"], stored["attempts"]["N"]) == ("FAILED", "1")
    (error,) = stored["errors"]["L"]
    assert error["M"]["exception_class_path"]["S"] == "builtins.RecursionError"
    assert tasks.runs[result.id] == 0
    assert queue_depth() == (0, 0)
    assert queue_depth(dlq_url()) == (0, 0)
