"""The SQS message: a small, versioned, signed JSON envelope that says a result is due."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signing import BadSignature, Signer

from .aws.secrets import Keyring
from .periodic.declarations import firing_id
from .results import dumps

if TYPE_CHECKING:
    from django.tasks import TaskResult

VERSION = 1
# The salt keeps these signatures useless anywhere else the same key signs things.
_SIGNER_SALT = "sqs_tasks.message"
_FIELDS = {"v": int, "id": str, "backend": str, "task": str, "q": str, "p": int}
# Optional, so messages signed before they existed still verify: the arguments' digest, and
# the kind of a periodic task's firing ("id" then names the declaration).
_OPTIONAL = {"a": str, "kind": str}
PERIODIC = "periodic"
# A firing's scheduled time: the one field not signed, as EventBridge Scheduler fills it in.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
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


def args_digest(args_json: str, kwargs_json: str) -> str:
    """SHA-256 of a result's stored arguments: the signature covers them through it."""
    digest = hashlib.sha256(f"{args_json}\0{kwargs_json}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def django_keyring() -> Keyring:
    """SECRET_KEY and SECRET_KEY_FALLBACKS: the keys of a backend with no signing secret."""
    return Keyring(settings.SECRET_KEY, tuple(map(str, settings.SECRET_KEY_FALLBACKS)))


def _source(alias: str) -> Any:
    """The SigningSecret of backend alias, or None when it signs with Django's keys."""
    from django.tasks import task_backends
    from django.tasks.exceptions import InvalidTaskBackend

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        return None  # Refused by the worker once verified: no such backend here.
    return getattr(backend, "signing", None)


def keyring_for(alias: str) -> Keyring:
    """The keys that sign and verify messages of backend alias."""
    source = _source(alias)
    return source.keyring() if source is not None else django_keyring()


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a message carries; the result item stays the source of truth."""

    result_id: str
    backend: str
    task_path: str
    queue_name: str
    priority: int
    # Someone who can write the table but not sign cannot change what a message runs.
    args_digest: str | None = None
    # A periodic firing: the declaration's name and the time EventBridge Scheduler fired it.
    periodic: str | None = None
    scheduled: datetime | None = None

    @classmethod
    def of(cls, result: TaskResult[..., Any]) -> Envelope:
        """The envelope of a fresh result: where its task runs, at what priority, on what."""
        task = result.task
        priority = int(task.priority)  # Django accepts any whole number: 5.0, True.
        digest = args_digest(dumps(result.args), dumps(result.kwargs))  # As new_item stores them.
        return cls(result.id, result.backend, task.module_path, task.queue_name, priority, digest)

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "v": VERSION,
            "id": self.result_id,
            "backend": self.backend,
            "task": self.task_path,
            "q": self.queue_name,
            "p": self.priority,
        }
        if self.args_digest is not None:
            fields["a"] = self.args_digest
        return fields

    def encode(self, keyring: Keyring | None = None) -> str:
        """Serialise to the JSON body sent to SQS, signed with the backend's current key."""
        return _signed_body(self._fields(), keyring or keyring_for(self.backend))


def firing_body(name: str, *, backend: str, task_path: str, queue_name: str, priority: int) -> str:
    """The Input of a periodic task's schedule: signed, its scheduled time left to the scheduler."""
    fields = {
        **Envelope(name, backend, task_path, queue_name, priority)._fields(),
        "kind": PERIODIC,
    }
    return _signed_body(fields, keyring_for(backend), unsigned={"at": SCHEDULED_TIME})


def _signed_body(
    fields: dict[str, Any], keyring: Keyring, unsigned: dict[str, str] | None = None
) -> str:
    """The JSON body of fields, signed, with unsigned fields beside them."""
    signature = _signer(keyring).signature(_canonical(fields))
    return json.dumps({**fields, **(unsigned or {}), "sig": signature}, separators=(",", ":"))


def _scheduled(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MessageError("periodic message has no scheduled time 'at'")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise MessageError(f"periodic message's scheduled time {value!r} is not ISO 8601") from e
    if moment.tzinfo is None:
        raise MessageError(f"periodic message's scheduled time {value!r} has no time zone")
    return moment.astimezone(UTC)


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _signer(keyring: Keyring) -> Signer:
    # The fallbacks verify what older keys signed while a rotated key drains.
    return Signer(
        key=keyring.key,
        fallback_keys=list(keyring.fallbacks),
        salt=_SIGNER_SALT,
        algorithm="sha256",
    )


def _verifies(keyring: Keyring, fields: dict[str, Any], signature: str) -> bool:
    signer = _signer(keyring)
    try:
        signer.unsign(f"{_canonical(fields)}{signer.sep}{signature}")
    except BadSignature:
        return False
    return True


def _authentic(fields: dict[str, Any], signature: str) -> bool:
    source = _source(fields["backend"])
    if source is None:
        return _verifies(django_keyring(), fields, signature)
    if _verifies(source.keyring(), fields, signature):
        return True
    # Signed with a key this container has not read yet (rotated since): read it once more.
    fresh = source.refreshed()
    return fresh is not None and _verifies(fresh, fields, signature)


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
    for name, kind in _OPTIONAL.items():
        if name in data:
            if not isinstance(data[name], kind):
                raise MessageError(f"message field {name!r} is not {kind.__name__}")
            fields[name] = data[name]
    periodic = fields.get("kind") == PERIODIC
    if "kind" in fields and not periodic:
        raise MessageError(f"unknown message kind {fields['kind']!r}")
    extra = set(data) - set(_FIELDS) - set(_OPTIONAL) - {"sig"} - ({"at"} if periodic else set())
    if extra:
        raise MessageError(f"message has unexpected fields {sorted(extra)}")
    signature = data.get("sig")
    if not isinstance(signature, str):
        raise MessageError("message is not signed")
    # No BadSignature is chained or quoted: it carries the signature, and a logged traceback
    # of a tampered copy would then carry the genuine signature it kept.
    if not _authentic(fields, signature):
        raise MessageError(
            "message signature does not match (a signing key other than the sender's, or a "
            "changed body): refused"
        )
    if periodic:
        # The scheduled time is not signed; the worker checks it is a firing of the schedule.
        scheduled = _scheduled(data.get("at"))
        return Envelope(
            result_id=firing_id(fields["id"], scheduled),
            backend=fields["backend"],
            task_path=fields["task"],
            queue_name=fields["q"],
            priority=fields["p"],
            periodic=fields["id"],
            scheduled=scheduled,
        )
    return Envelope(
        result_id=fields["id"],
        backend=fields["backend"],
        task_path=fields["task"],
        queue_name=fields["q"],
        priority=fields["p"],
        args_digest=fields.get("a"),
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
