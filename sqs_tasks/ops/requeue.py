"""Put failed work back on a queue: retry a FAILED result, redrive a dead-letter queue."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from django.tasks import TaskResult
from django.tasks.exceptions import InvalidTask

from ..aws.store import FAILED
from ..exceptions import InvalidTaskPath
from ..results import Item, load_task
from .base import OperationError, load_item, plain, queue_url

if TYPE_CHECKING:
    from ..backend import SQSBackend

# Named for the operator commands as a whole, so a log configuration needs one name for them.
logger = logging.getLogger("sqs_tasks.ops")

# How long a dead letter being moved stays hidden in its DLQ, should the move be cut short.
REDRIVE_VISIBILITY = 60


def retry(backend: SQSBackend, result_id: str) -> tuple[Item, TaskResult[..., Any]]:
    """Enqueue a FAILED result's task again as a new result: same args, queue and priority."""
    item = load_item(backend, result_id)
    result = plain(item)
    status = result["status"]
    if status != FAILED:
        raise OperationError(
            f"Result {result_id} is {status}, not FAILED: only a failed result can be retried."
        )
    try:
        task = load_task(result["task_path"])
    except InvalidTaskPath as e:
        raise OperationError(f"Result {result_id} cannot be retried: {e}.") from e
    args = json.loads(result["args"])
    kwargs = json.loads(result["kwargs"])
    try:
        bound = task.using(
            queue_name=result["queue_name"],
            priority=int(result["priority"]),
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


def dead_letter_url(backend: SQSBackend, queue_name: str) -> tuple[str, str]:
    """(queue URL, its DLQ's URL), the DLQ found from the queue's RedrivePolicy."""
    url = queue_url(backend, queue_name)
    sqs = backend.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        raise OperationError(
            f"Queue {queue_name!r} ({url}) has no RedrivePolicy, so no dead-letter queue."
        )
    return url, policy_target_url(sqs, policy)


def policy_target_url(sqs: Any, policy: str) -> str:
    """The URL of the dead-letter queue a RedrivePolicy (JSON) names."""
    # arn:aws:sqs:<region>:<account>:<name>
    arn_parts = json.loads(policy)["deadLetterTargetArn"].split(":")
    account, name = arn_parts[4], arn_parts[5]
    dlq: str = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return dlq


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    keep = ("DataType", "StringValue", "BinaryValue")
    return {
        name: {k: v for k, v in value.items() if k in keep}
        for name, value in message.get("MessageAttributes", {}).items()
    }


def redrive(backend: SQSBackend, queue_name: str, max_messages: int | None = None) -> Redrive:
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
