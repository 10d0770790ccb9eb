"""Settling a worker's messages on SQS: delete what is done, hide or hand back the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# The worker's logger, not this module's: `-v 2` and the README name sqs_tasks.worker.
logger = logging.getLogger("sqs_tasks.worker")

Message = dict[str, Any]  # a message as ReceiveMessage returns it


def _chunks(items: Sequence[Message], size: int = 10) -> Iterable[Sequence[Message]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def delete_messages(sqs: Any, url: str, messages: Sequence[Message]) -> list[Message]:
    """Delete messages from the queue at url, 10 a call; the messages deleted."""
    deleted: list[Message] = []
    for chunk in _chunks(messages):
        response = sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ],
        )
        deleted += [chunk[int(entry["Id"])] for entry in response.get("Successful", [])]
        for failure in response.get("Failed", []):
            # It comes back after its visibility timeout and is dropped as a duplicate.
            logger.warning(
                "Could not delete message %s: %s",
                chunk[int(failure["Id"])]["MessageId"],
                failure.get("Message", failure["Code"]),
            )
    return deleted


def change_visibility(
    sqs: Any, url: str, messages: Sequence[Message], seconds: Callable[[Message], int]
) -> int:
    """Hide each message for seconds(message) from now, 10 a call; how many were changed."""
    changed = 0
    for chunk in _chunks(messages):
        response = sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "ReceiptHandle": m["ReceiptHandle"],
                    "VisibilityTimeout": seconds(m),
                }
                for i, m in enumerate(chunk)
            ],
        )
        changed += len(response.get("Successful", []))
        for failure in response.get("Failed", []):
            # It comes back when its visibility timeout runs out instead.
            logger.warning(
                "Could not change the visibility of message %s: %s",
                chunk[int(failure["Id"])]["MessageId"],
                failure.get("Message", failure["Code"]),
            )
    return changed
