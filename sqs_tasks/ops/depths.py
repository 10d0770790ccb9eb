"""How many messages a queue and its dead-letter queue hold, as SQS approximates them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import queue_url
from .requeue import policy_target_url

COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, slots=True)
class Depth:
    """A queue's messages by state, and its dead letters (None: the queue has no DLQ)."""

    queue: str
    visible: int
    in_flight: int
    delayed: int
    dead_letter_queue: str | None
    dead_letters: int | None

    @property
    def total(self) -> int:
        """Every message of the queue, whatever its state."""
        return self.visible + self.in_flight + self.delayed


def _counts(sqs: Any, url: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    attributes: dict[str, str] = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=[*COUNTS, *extra]
    ).get("Attributes", {})
    return attributes


def queue_depth(backend: Any, queue_name: str) -> Depth:
    """The depths of a Django queue's SQS queue and of its RedrivePolicy's dead-letter queue."""
    url = queue_url(backend, queue_name)
    sqs = backend.client("sqs")
    counts = _counts(sqs, url, ("RedrivePolicy",))
    dlq_name: str | None = None
    dead_letters: int | None = None
    if policy := counts.get("RedrivePolicy"):
        dlq_url = policy_target_url(sqs, policy)
        dlq_name = dlq_url.rstrip("/").rsplit("/", 1)[-1]
        dead_letters = sum(int(_counts(sqs, dlq_url).get(name, 0)) for name in COUNTS)
    return Depth(
        queue=queue_name,
        visible=int(counts.get(COUNTS[0], 0)),
        in_flight=int(counts.get(COUNTS[1], 0)),
        delayed=int(counts.get(COUNTS[2], 0)),
        dead_letter_queue=dlq_name,
        dead_letters=dead_letters,
    )
