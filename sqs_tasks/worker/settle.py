"""Settling a worker's messages on SQS: delete what is done, hide or hand back the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import batched
from typing import Any

# The worker's logger, not this module's: `-v 2` and the README name sqs_tasks.worker.poller.
logger = logging.getLogger("sqs_tasks.worker")

Message = dict[str, Any]  # a message as ReceiveMessage returns it


def _in_batches(
    send: Callable[..., Any],
    url: str,
    messages: Sequence[Message],
    entry: Callable[[Message], dict[str, Any]],
    what: str,
) -> list[Message]:
    """Call send (a *_batch operation) for messages, 10 a call; the messages it settled."""
    settled: list[Message] = []
    for chunk in batched(messages, 10):
        response = send(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **entry(m)}
                for i, m in enumerate(chunk)
            ],
        )
        settled += [chunk[int(done["Id"])] for done in response.get("Successful", [])]
        for failure in response.get("Failed", []):
            # It comes back when its visibility timeout runs out, as if untouched.
            logger.warning(
                "Could not %s message %s: %s",
                what,
                chunk[int(failure["Id"])]["MessageId"],
                failure.get("Message", failure["Code"]),
            )
    return settled


def delete_messages(sqs: Any, url: str, messages: Sequence[Message]) -> list[Message]:
    """Delete messages from the queue at url, 10 a call; the messages deleted."""
    # One that stays comes back after its visibility timeout and is dropped as a duplicate.
    return _in_batches(sqs.delete_message_batch, url, messages, lambda m: {}, "delete")


def change_visibility(
    sqs: Any, url: str, messages: Sequence[Message], seconds: Callable[[Message], int]
) -> int:
    """Hide each message for seconds(message) from now, 10 a call; how many were changed."""
    changed = _in_batches(
        sqs.change_message_visibility_batch,
        url,
        messages,
        lambda m: {"VisibilityTimeout": seconds(m)},
        "change the visibility of",
    )
    return len(changed)
