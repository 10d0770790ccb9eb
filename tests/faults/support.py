"""What the fault tests share: the backend's clients, SQS deliveries, Lambda invocations."""

from __future__ import annotations

import uuid
from typing import Any

from django.tasks import TaskResult, default_task_backend

from lambda_handler.handler import handler
from sqs_tasks.message import Envelope
from sqs_tasks.results import Item
from sqs_tasks.testing import DrainContext, lambda_record
from sqs_tasks.worker.settle import delete_messages

Message = dict[str, Any]


def backend() -> Any:
    """This thread's SQSBackend (Django keeps one per thread)."""
    return default_task_backend


def client(service: str) -> Any:
    """This thread's boto3 client for service: the one the backend itself uses."""
    return backend().client(service)


def queue_url(queue: str = "default") -> str:
    """The SQS queue URL of a Django queue."""
    url: str = backend().queue.url(queue)
    return url


def dlq_url(queue: str = "default") -> str:
    """The dead-letter queue aws_stack made next to a Django queue's SQS queue."""
    return queue_url(queue) + "-dlq"


def body_of(result: TaskResult[..., Any]) -> str:
    """The signed message body enqueue sent for result."""
    return Envelope.of(result).encode()


def send(body: str, url: str | None = None) -> None:
    """Put one message body on a queue, as anyone allowed to send to it could."""
    client("sqs").send_message(QueueUrl=url or queue_url(), MessageBody=body)


def receive(url: str | None = None, *, limit: int = 10) -> list[Message]:
    """One ReceiveMessage call, with the attributes Lambda's event source mapping passes."""
    messages: list[Message] = (
        client("sqs")
        .receive_message(
            QueueUrl=url or queue_url(),
            MaxNumberOfMessages=limit,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
        )
        .get("Messages", [])
    )
    return messages


def receive_all(url: str | None = None) -> list[Message]:
    """Every visible message of a queue (each is then in flight for the visibility timeout)."""
    found: list[Message] = []
    while batch := receive(url):
        found.extend(batch)
    return found


def delete(messages: list[Message], url: str | None = None) -> None:
    """Delete messages as the event source mapping does after a successful batch."""
    delete_messages(client("sqs"), url or queue_url(), messages)


class WorkerContext(DrainContext):
    """A Lambda context with a chosen request id (the worker id claims record)."""

    def __init__(self, request_id: str | None = None) -> None:
        super().__init__()
        self.aws_request_id = request_id or str(uuid.uuid4())


def invoke(
    messages: list[Message],
    url: str | None = None,
    *,
    entry: Any = handler,
    context: Any = None,
) -> set[str]:
    """Hand messages to a Lambda entry point as one batch; the message ids it wants back."""
    url = url or queue_url()
    region = client("sqs").meta.region_name
    event = {"Records": [lambda_record(m, url, region) for m in messages]}
    response = entry(event, context or WorkerContext())
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


def deliver(messages: list[Message], url: str | None = None, **kwargs: Any) -> set[str]:
    """invoke(), then delete what succeeded: one poll of the event source mapping."""
    failed = invoke(messages, url, **kwargs)
    delete([m for m in messages if m["MessageId"] not in failed], url)
    return failed


def item(result_id: str) -> Item | None:
    """The result item as stored (consistent read)."""
    found: Item | None = backend().store.get(result_id)
    return found


def all_items() -> list[Item]:
    """Every result item in the table."""
    store = backend().store
    paginator = client("dynamodb").get_paginator("scan")
    return [
        found
        for page in paginator.paginate(TableName=store.table_name, ConsistentRead=True)
        for found in page.get("Items", [])
    ]


def queue_depth(url: str | None = None) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=url or queue_url(),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )
