"""Lambda-shaped SQS events, built from ReceiveMessage output (no Django, no AWS calls)."""

from __future__ import annotations

from typing import Any

from ..aws.queue import queue_arn


def lambda_record(message: dict[str, Any], queue_url: str, region: str) -> dict[str, Any]:
    """An SQS message as the Lambda event source mapping delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(queue_url, region),
        "awsRegion": region,
    }


def lambda_event(messages: list[dict[str, Any]], queue_url: str, region: str) -> dict[str, Any]:
    """The event one Lambda invocation would get for messages received from queue_url."""
    return {"Records": [lambda_record(m, queue_url, region) for m in messages]}
