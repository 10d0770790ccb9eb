"""What the operator commands do: read a result, list failures, retry a result, redrive a DLQ.

Kept apart from the management commands (which only parse options and print) so each piece
can be called from a shell or a script as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskResult
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend

from .cli import format_table
from .exceptions import InvalidTaskPath
from .items import Item, load_task
from .store import FAILED, SUCCESSFUL

logger = logging.getLogger("sqs_tasks.ops")

# How long a dead letter being moved stays hidden in its DLQ, should the move be cut short.
REDRIVE_VISIBILITY = 60
# A last traceback line longer than this is cut in the failures table.
ERROR_WIDTH = 80


class OperationError(Exception):
    """An operation that cannot be done; the message says why, for the operator."""


def sqs_backend(alias: str) -> Any:
    """The SQSBackend of alias, or OperationError."""
    from django.tasks import task_backends

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend as e:
        raise OperationError(f"Unknown task backend {alias!r}: {e}") from e
    if not hasattr(backend, "store") or not hasattr(backend, "queue"):
        raise OperationError(f"Task backend {alias!r} is not an sqs_tasks.SQSBackend.")
    return backend


def check_queue(backend: Any, queue_name: str) -> None:
    """Refuse a queue name the backend does not have."""
    if queue_name not in backend.queues:
        raise OperationError(
            f"Unknown queue {queue_name!r}: backend {backend.alias!r} has "
            f"{', '.join(sorted(backend.queues))}."
        )


def load_item(backend: Any, result_id: str) -> Item:
    """The result item of result_id (a consistent read), or OperationError."""
    item: Item | None = backend.store.get(result_id)
    if item is None:
        raise OperationError(
            f"No result {result_id!r} in table {backend.store.table_name!r} "
            f"(backend {backend.alias!r})."
        )
    return item


def _text(item: Item, name: str, default: str = "-") -> str:
    value = item.get(name)
    if value is None:
        return default
    ((_, inner),) = value.items()
    return str(inner)


def last_error_line(item: Item) -> str:
    """The last line of the last traceback: usually `module.Error: message`."""
    errors = item.get("errors", {}).get("L", [])
    if not errors:
        return ""
    last: dict[str, Any] = errors[-1]["M"]
    lines: list[str] = last["traceback"]["S"].strip().splitlines()
    return lines[-1] if lines else str(last["exception_class_path"]["S"])


def describe_item(item: Item) -> str:
    """A result, for people: what ran where, when, by whom, and how it ended."""
    status = item["status"]["S"]
    workers = [w["S"] for w in item.get("worker_ids", {}).get("L", [])]
    rows = [
        ("Result", item["id"]["S"]),
        ("Status", status),
        ("Task", item["task_path"]["S"]),
        ("Queue", item["queue_name"]["S"]),
        ("Priority", item["priority"]["N"]),
        ("Backend", item["backend"]["S"]),
        ("Args", _text(item, "args")),
        ("Kwargs", _text(item, "kwargs")),
        ("Attempts", item["attempts"]["N"]),
        ("Worker ids", ", ".join(workers) or "-"),
        ("Enqueued", _text(item, "enqueued_at")),
        ("Run after", _text(item, "run_after")),
        ("Started", _text(item, "started_at")),
        ("Last attempt", _text(item, "last_attempted_at")),
        ("Finished", _text(item, "finished_at")),
    ]
    if "lease_until" in item:
        rows.append(("Lease until", _text(item, "lease_until")))
    if status == SUCCESSFUL:
        rows.append(("Return value", _text(item, "return_value", "null")))
    errors = item.get("errors", {}).get("L", [])
    rows.append(("Errors", str(len(errors))))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if errors:
        last = errors[-1]["M"]
        lines.append("")
        lines.append(
            f"Last error ({len(errors)} of {len(errors)}): {last['exception_class_path']['S']}"
        )
        lines.extend(f"    {line}" for line in last["traceback"]["S"].rstrip().splitlines())
    return "\n".join(lines)


def failures_report(backend: Any, queue_names: Sequence[str], limit: int) -> str:
    """The newest failures of each queue, from the sparse failures index (no scan)."""
    sections = []
    for queue_name in queue_names:
        items = backend.store.failures(queue_name, limit=limit)
        if not items:
            sections.append(f"Queue {queue_name!r}: no failures.")
            continue
        rows = []
        for item in items:
            error = last_error_line(item)
            if len(error) > ERROR_WIDTH:
                error = error[: ERROR_WIDTH - 3] + "..."
            rows.append(
                [
                    item["finished_at"]["S"],
                    item["id"]["S"],
                    item["task_path"]["S"],
                    item["attempts"]["N"],
                    error,
                ]
            )
        noun = "failure" if len(items) == 1 else "failures"
        table = format_table(["finished", "id", "task", "tries", "last error"], rows)
        sections.append(f"Queue {queue_name!r}: {len(items)} most recent {noun}\n{table}")
    return "\n\n".join(sections)


def retry(backend: Any, result_id: str) -> tuple[Item, TaskResult[..., Any]]:
    """Enqueue a FAILED result's task again as a new result: same args, queue and priority."""
    item = load_item(backend, result_id)
    status = item["status"]["S"]
    if status != FAILED:
        raise OperationError(
            f"Result {result_id} is {status}, not FAILED: only a failed result can be retried."
        )
    try:
        task = load_task(item["task_path"]["S"])
    except InvalidTaskPath as e:
        raise OperationError(f"Result {result_id} cannot be retried: {e}.") from e
    args = json.loads(item["args"]["S"])
    kwargs = json.loads(item["kwargs"]["S"])
    try:
        bound = task.using(
            queue_name=item["queue_name"]["S"],
            priority=int(item["priority"]["N"]),
            backend=backend.alias,
            run_after=None,
        )
        return item, bound.enqueue(*args, **kwargs)
    except InvalidTask as e:
        raise OperationError(f"Result {result_id} cannot be retried: {e}") from e


@dataclass(frozen=True, slots=True)
class Redrive:
    """What a redrive did."""

    dead_letter_queue: str
    queue: str
    moved: int
    failed: int


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def dead_letter_url(backend: Any, queue_name: str) -> tuple[str, str]:
    """(queue URL, its DLQ's URL), the DLQ found from the queue's RedrivePolicy."""
    check_queue(backend, queue_name)
    sqs = backend.client("sqs")
    try:
        url: str = backend.queue.url(queue_name)
    except ImproperlyConfigured as e:
        raise OperationError(str(e)) from e
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        raise OperationError(
            f"Queue {queue_name!r} ({url}) has no RedrivePolicy, so no dead-letter queue."
        )
    # arn:aws:sqs:<region>:<account>:<name>
    arn_parts = json.loads(policy)["deadLetterTargetArn"].split(":")
    account, name = arn_parts[4], arn_parts[5]
    dlq: str = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return url, dlq


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    keep = ("DataType", "StringValue", "BinaryValue")
    return {
        name: {k: v for k, v in value.items() if k in keep}
        for name, value in message.get("MessageAttributes", {}).items()
    }


def redrive(backend: Any, queue_name: str, max_messages: int | None = None) -> Redrive:
    """Move dead letters back to their queue, 10 at a time: send, then delete from the DLQ.

    A message whose send fails stays in the DLQ (hidden for a minute, so this run does not
    pick it up again); one whose delete fails after its send is delivered twice, which the
    claim makes harmless.
    """
    url, dlq = dead_letter_url(backend, queue_name)
    sqs = backend.client("sqs")
    moved = failed = 0
    while max_messages is None or moved + failed < max_messages:
        wanted = 10 if max_messages is None else min(10, max_messages - moved - failed)
        messages = sqs.receive_message(
            QueueUrl=dlq,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=1,  # a long poll asks every SQS server: an empty answer is true
            VisibilityTimeout=REDRIVE_VISIBILITY,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries = []
        for i, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = _attributes(message)
            entries.append(entry)
        try:
            response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        except (ClientError, BotoCoreError) as e:
            logger.error("SendMessageBatch to %s failed: %s", _queue_name(url), e)
            failed += len(messages)
            continue
        for failure in response.get("Failed", []):
            logger.error(
                "Dead letter %s not sent: %s",
                messages[int(failure["Id"])]["MessageId"],
                failure.get("Message", failure["Code"]),
            )
        sent = [messages[int(s["Id"])] for s in response.get("Successful", [])]
        failed += len(messages) - len(sent)
        moved += len(sent)
        if sent:
            deleted = sqs.delete_message_batch(
                QueueUrl=dlq,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(sent)
                ],
            )
            for failure in deleted.get("Failed", []):
                logger.warning(
                    "Dead letter %s was sent but not deleted from the DLQ: %s",
                    sent[int(failure["Id"])]["MessageId"],
                    failure.get("Message", failure["Code"]),
                )
    return Redrive(_queue_name(dlq), _queue_name(url), moved, failed)
