"""The SQS message: a small, versioned, signed JSON envelope that says a result is due."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.signing import BadSignature, Signer

if TYPE_CHECKING:
    from django.tasks import TaskResult

VERSION = 1
# The salt keeps these signatures useless anywhere else SECRET_KEY signs things.
_SIGNER_SALT = "sqs_tasks.message"
_FIELDS = {"v": int, "id": str, "backend": str, "task": str, "q": str, "p": int}
# SQS refuses DelaySeconds above 15 minutes; longer waits are re-sent when they come due.
MAX_DELAY_SECONDS = 900


def delay_seconds(run_after: datetime | None, now: datetime) -> int:
    """How long SQS should hide a message whose task may run from run_after."""
    if run_after is None or run_after <= now:
        return 0
    remaining = (run_after - now) / timedelta(seconds=1)
    # Round up: delivering a fraction of a second early would only cost a re-send.
    return min(MAX_DELAY_SECONDS, int(-(-remaining // 1)))


class MessageError(ValueError):
    """A message body that is not a genuine envelope of this version."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a message carries; the result item stays the source of truth."""

    result_id: str
    backend: str
    task_path: str
    queue_name: str
    priority: int

    @classmethod
    def of(cls, result: TaskResult[..., Any]) -> Envelope:
        """The envelope of a fresh result: where its task runs, and at what priority."""
        task = result.task
        priority = int(task.priority)  # Django accepts any whole number: 5.0, True.
        return cls(result.id, result.backend, task.module_path, task.queue_name, priority)

    def _fields(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "id": self.result_id,
            "backend": self.backend,
            "task": self.task_path,
            "q": self.queue_name,
            "p": self.priority,
        }

    def encode(self) -> str:
        """Serialise to the signed JSON body sent to SQS."""
        fields = self._fields()
        return json.dumps({**fields, "sig": _signature(fields)}, separators=(",", ":"))


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _signer() -> Signer:
    # Django's Signer uses SECRET_KEY and accepts SECRET_KEY_FALLBACKS while keys rotate.
    return Signer(salt=_SIGNER_SALT, algorithm="sha256")


def _signature(fields: dict[str, Any]) -> str:
    return _signer().signature(_canonical(fields))


def decode(body: str) -> Envelope:
    """Parse and authenticate a message body, or raise MessageError saying why."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        # RecursionError: a body nested thousands deep ("[[[[...") is refused like any junk.
        raise MessageError(f"message body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise MessageError("message body is not a JSON object")
    if data.get("v") != VERSION:
        raise MessageError(f"unknown message version {data.get('v')!r} (expected {VERSION})")
    fields: dict[str, Any] = {}
    for name, kind in _FIELDS.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MessageError(f"message field {name!r} is missing or not {kind.__name__}")
        fields[name] = value
    extra = set(data) - set(_FIELDS) - {"sig"}
    if extra:
        raise MessageError(f"message has unexpected fields {sorted(extra)}")
    signature = data.get("sig")
    if not isinstance(signature, str):
        raise MessageError("message is not signed")
    try:
        signer = _signer()
        signer.unsign(f"{_canonical(fields)}{signer.sep}{signature}")
    except BadSignature:
        # Not chained: BadSignature quotes the signature, and a logged traceback of a tampered
        # copy would then carry the genuine signature it kept.
        raise MessageError(
            "message signature does not match (a SECRET_KEY other than the sender's, or a "
            "changed body): refused"
        ) from None
    return Envelope(
        result_id=fields["id"],
        backend=fields["backend"],
        task_path=fields["task"],
        queue_name=fields["q"],
        priority=fields["p"],
    )


def peek_result_id(body: str) -> str | None:
    """Best-effort result id of a body, unauthenticated: None for a body without one."""
    try:
        result_id = json.loads(body).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return result_id if isinstance(result_id, str) else None


def peek_priority(body: str) -> int:
    """Best-effort priority for ordering a batch; a bad body sorts last and fails later."""
    try:
        priority = json.loads(body).get("p", 0)
    except (ValueError, AttributeError, RecursionError):
        # RecursionError: a deeply nested body must not crash the sort, and with it the batch.
        return -(10**6)
    return priority if isinstance(priority, int) else -(10**6)
