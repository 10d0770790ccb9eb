"""The SQS side: one queue per Django queue name, URLs resolved once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured


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
                response = self._client().get_queue_url(QueueName=self._prefix + queue_name)
                self._urls[queue_name] = response["QueueUrl"]
            return self._urls[queue_name]

    def send(self, queue_name: str, body: str, *, delay: int = 0) -> str:
        """Send one message; returns its SQS message id."""
        kwargs: dict[str, Any] = {"QueueUrl": self.url(queue_name), "MessageBody": body}
        if delay:
            kwargs["DelaySeconds"] = delay
        response = self._client().send_message(**kwargs)
        message_id: str = response["MessageId"]
        return message_id
