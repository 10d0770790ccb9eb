"""The SQS side: one queue per Django queue name, URLs resolved once per process."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from itertools import batched
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured

from ..exceptions import missing_queue
from . import retries

# What SQS answers for a queue that does not exist, in its JSON and query protocols.
NO_QUEUE_CODES = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})


def no_queue(error: Exception) -> bool:
    """Whether error says the queue does not exist."""
    return (
        isinstance(error, ClientError)
        and error.response.get("Error", {}).get("Code") in NO_QUEUE_CODES
    )


def queue_arn(queue_url: str, region: str, partition: str | None = None) -> str:
    """An SQS queue's ARN from its URL (scheme://host/<account>/<name>), with no request.

    partition is the client's (client.meta.partition); without one, botocore's partition
    data is asked for the region.
    """
    account, name = queue_url.rstrip("/").split("/")[-2:]
    if partition is None:
        partition = _partition(region)
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


@functools.cache
def _partition(region: str) -> str:
    from botocore.session import get_session

    partition: str = get_session().get_partition_for_region(region)
    return partition


class QueueClient:
    """Sends messages to the SQS queue of each Django queue name."""

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        alias: str,
        queue_urls: Mapping[str, str],
        prefix: str | None,
    ):
        self._client = client
        self._alias = alias
        self._urls = dict(queue_urls)
        self._configured = frozenset(queue_urls)
        self._prefix = prefix
        self._lock = threading.Lock()

    def url(self, queue_name: str) -> str:
        """The queue's URL: configured, or looked up from the prefix once and cached."""
        url = self._urls.get(queue_name)
        if url is not None:
            return url
        if self._prefix is None:
            raise ImproperlyConfigured(
                f"TASKS[{self._alias!r}] has no SQS queue for queue_name {queue_name!r}: "
                "set OPTIONS['QUEUE_URLS'] or OPTIONS['QUEUE_NAME_PREFIX']."
            )
        with self._lock:
            if queue_name not in self._urls:
                client = self._client()
                try:
                    response = client.get_queue_url(QueueName=self._prefix + queue_name)
                except ClientError as e:
                    if no_queue(e):
                        raise missing_queue(
                            self._prefix + queue_name,
                            queue_name,
                            client.meta.region_name,
                            configured_url=False,
                        ) from e
                    raise
                self._urls[queue_name] = response["QueueUrl"]
            return self._urls[queue_name]

    def verify(self, queue_name: str) -> str:
        """The queue's URL, once SQS confirms the queue exists (else ResourceNotFound)."""
        url = self.url(queue_name)  # GetQueueUrl when found through the prefix.
        if queue_name in self._configured:
            # GetQueueUrl again, which the stack's producer policy allows (GetQueueAttributes
            # it does not).
            account, name = url.rstrip("/").split("/")[-2:]
            client = self._client()
            try:
                client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            except ClientError as e:
                if no_queue(e):
                    raise missing_queue(
                        url, queue_name, client.meta.region_name, configured_url=True
                    ) from e
                raise
        return url

    def arn(self, queue_name: str) -> str:
        """The queue's ARN (a schedule targets queues by ARN), worked out from its URL."""
        client = self._client()
        return queue_arn(self.url(queue_name), client.meta.region_name, client.meta.partition)

    def send(self, queue_name: str, body: str, *, delay: int = 0) -> str:
        """Send one message; returns its SQS message id."""
        kwargs: dict[str, Any] = {"QueueUrl": self.url(queue_name), "MessageBody": body}
        if delay:
            kwargs["DelaySeconds"] = delay
        client = self._client()
        try:
            response = client.send_message(**kwargs)
        except ClientError as e:
            if no_queue(e):
                raise missing_queue(
                    kwargs["QueueUrl"],
                    queue_name,
                    client.meta.region_name,
                    configured_url=queue_name in self._configured,
                ) from e
            raise
        message_id: str = response["MessageId"]
        return message_id

    def send_many(
        self, queue_name: str, messages: Sequence[tuple[str, str, int]]
    ) -> dict[str, str]:
        """Send (key, body, delay) triples with SendMessageBatch, 10 a call; returns failures."""
        url = self.url(queue_name)
        failed: dict[str, str] = {}
        for chunk in batched(messages, 10):
            pending = {str(i): m for i, m in enumerate(chunk)}
            why: dict[str, str] = {}
            for attempt in range(retries.BATCH_ATTEMPTS):
                if attempt:
                    retries.pause(attempt)
                entries = [
                    {"Id": i, "MessageBody": body, **({"DelaySeconds": delay} if delay else {})}
                    for i, (_, body, delay) in pending.items()
                ]
                try:
                    response = self._client().send_message_batch(QueueUrl=url, Entries=entries)
                except (ClientError, BotoCoreError) as e:
                    why = dict.fromkeys(pending, f"SendMessageBatch failed: {e}")
                    break
                retry = {}
                for entry in response.get("Failed", []):
                    said = [entry["Code"], entry.get("Message")]
                    why[entry["Id"]] = ": ".join(filter(None, said))
                    if entry.get("SenderFault"):
                        failed[pending[entry["Id"]][0]] = why.pop(entry["Id"])
                    else:  # Throttling or an SQS fault: may go through next time.
                        retry[entry["Id"]] = pending[entry["Id"]]
                pending = retry
                if not pending:
                    break
            failed.update((pending[i][0], reason) for i, reason in why.items() if i in pending)
        return failed
