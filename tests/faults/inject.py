"""Faults injected into the backend's real boto3 clients, at botocore's before-send hook.

Whatever a fault returns or raises stands in for what the wire would have given botocore,
so botocore's own retry policy (sqs_tasks.conf.DEFAULT_CLIENT_CONFIG: standard mode, 5
attempts) is what has to recover.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

Fault = Callable[[AWSPreparedRequest], AWSResponse]


class _Body:
    """The raw stream an AWSResponse reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._data


def _json_error(status: int, code: str, message: str) -> Fault:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = "injected"

    def fault(request: AWSPreparedRequest) -> AWSResponse:
        return AWSResponse(request.url, status, headers, _Body(body))

    fault.__name__ = f"{code}_{status}"
    return fault


def throttled(code: str) -> Fault:
    """A 400 throttling error: ThrottlingException, ProvisionedThroughputExceededException."""
    return _json_error(400, code, "Rate exceeded")


def server_error(status: int) -> Fault:
    """A 5xx from the service."""
    return _json_error(status, "InternalFailure", "We encountered an internal error.")


def connection_reset(request: AWSPreparedRequest) -> AWSResponse:
    """The connection dropped before the request reached the service."""
    raise ConnectionClosedError(endpoint_url=request.url)


def connection_refused(request: AWSPreparedRequest) -> AWSResponse:
    """Nothing listening: DNS or the endpoint down."""
    raise EndpointConnectionError(endpoint_url=request.url)


def send_for_real(request: AWSPreparedRequest) -> None:
    """Send the request to the service, on a session of its own, and drop the answer."""
    session = URLLib3Session()
    try:
        session.send(request)
    finally:
        session.close()


def response_lost(request: AWSPreparedRequest) -> AWSResponse:
    """Ambiguous: the service did the work, but its response never came back."""
    send_for_real(request)
    raise ReadTimeoutError(endpoint_url=request.url)


FAULTS: dict[str, Fault] = {
    "throttled": throttled("ThrottlingException"),
    "provisioned-throughput": throttled("ProvisionedThroughputExceededException"),
    "500": server_error(500),
    "503": server_error(503),
    "connection-reset": connection_reset,
    "connection-refused": connection_refused,
}


@dataclass
class Injection:
    """A fault on one operation of one client, for its first `times` matching requests."""

    client: Any
    operation: str
    fault: Fault
    times: int | None  # None: every request, for ever
    when: Callable[[dict[str, Any]], bool] | None = None
    sent: int = 0  # matching requests botocore tried to send
    injected: int = 0  # of which the fault answered
    outcomes: list[str] = field(default_factory=list)  # per matching attempt, as botocore saw it
    _id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def _service(self) -> str:
        service: str = self.client.meta.service_model.service_id.hyphenize()
        return service

    def start(self) -> Injection:
        """Hook into the client's events."""
        events = self.client.meta.events
        events.register(f"before-send.{self._service}.{self.operation}", self._send, self._id)
        events.register(
            f"needs-retry.{self._service}.{self.operation}", self._outcome, f"{self._id}-outcome"
        )
        return self

    def stop(self) -> None:
        """Let every later request through untouched."""
        events = self.client.meta.events
        events.unregister(f"before-send.{self._service}.{self.operation}", unique_id=self._id)
        events.unregister(
            f"needs-retry.{self._service}.{self.operation}", unique_id=f"{self._id}-outcome"
        )

    def _matches(self, body: object) -> bool:
        if self.when is None:
            return True
        return isinstance(body, bytes | str) and self.when(json.loads(body or b"{}"))

    def _send(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        if not self._matches(request.body):
            return None
        self.sent += 1
        if self.times is not None and self.injected >= self.times:
            return None
        self.injected += 1
        return self.fault(request)

    def _outcome(
        self,
        request_dict: dict[str, Any],
        response: tuple[Any, dict[str, Any]] | None,
        caught_exception: Exception | None,
        **kwargs: Any,
    ) -> None:
        if not self._matches(request_dict.get("body")):
            return
        if caught_exception is not None:
            self.outcomes.append(type(caught_exception).__name__)
        elif response is not None:
            self.outcomes.append(response[1].get("Error", {}).get("Code", "OK"))


Inject = Callable[..., Injection]  # the fault suite's inject fixture
