"""The key that signs messages, held in an AWS Secrets Manager secret and read once a while."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..exceptions import SigningKeyUnavailable

# How long a container trusts the secret it read; a rotated key reaches it within this time,
# or at once when a message fails to verify (see SigningSecret.refreshed).
MAX_AGE_SECONDS = 300
# At most one forced read per this many seconds: forged messages must not flood the API.
MIN_REFRESH_SECONDS = 30
# 256 bits of base64 or hex text at least: a signing key is no password.
MIN_KEY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key that signs, and the older keys that still verify while messages drain."""

    key: str
    fallbacks: tuple[str, ...] = ()


def parse_keyring(secret_id: str, value: str) -> Keyring:
    """The keyring a secret's value holds: {"key": ..., "fallbacks": [...]}, or one bare key."""
    try:
        data: Any = json.loads(value)
    except ValueError:
        data = {"key": value}
    if isinstance(data, str):
        data = {"key": data}
    # Never quote the value: a malformed secret may still hold a real key.
    where = f"Signing secret {secret_id!r}"
    if not isinstance(data, dict):
        raise ImproperlyConfigured(f'{where} must be {{"key": ..., "fallbacks": [...]}} or a key.')
    unknown = sorted(set(data) - {"key", "fallbacks"})
    if unknown:
        raise ImproperlyConfigured(f"{where} has unknown fields {unknown}; known: key, fallbacks.")
    key, fallbacks = data.get("key"), data.get("fallbacks", [])
    if not isinstance(fallbacks, list):
        raise ImproperlyConfigured(f'{where}: "fallbacks" must be a list of keys.')
    for name, candidate in [("key", key), *(("fallbacks", f) for f in fallbacks)]:
        if not isinstance(candidate, str) or len(candidate) < MIN_KEY_LENGTH:
            raise ImproperlyConfigured(
                f'{where}: every "{name}" must be a string of at least {MIN_KEY_LENGTH} characters.'
            )
    assert isinstance(key, str)  # checked above
    return Keyring(key, tuple(fallbacks))


class SigningSecret:
    """One secret's keyring, through Powertools' Parameters utility (cached per container)."""

    def __init__(
        self,
        client: Callable[[], Any],
        secret_id: str,
        *,
        max_age: int = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.secret_id = secret_id
        self.max_age = max_age
        self._clock = clock
        self._provider: Any = None
        self._refreshed_at: float | None = None
        self._lock = threading.Lock()

    def _get(self, *, force: bool) -> Keyring:
        if self._provider is None:
            # Deferred: Powertools' parameters package costs a cold start that has no secret.
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            # The backend's client: its region, endpoint (moto in tests) and retry config.
            self._provider = SecretsProvider(boto3_client=self._client())
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider.get(self.secret_id, max_age=self.max_age, force_fetch=force)
        except GetParameterError as e:
            raise SigningKeyUnavailable(
                f"Signing secret {self.secret_id!r} could not be read from Secrets Manager "
                f"(does it exist, and may this role call secretsmanager:GetSecretValue?): {e}"
            ) from e
        return parse_keyring(self.secret_id, value)

    def keyring(self) -> Keyring:
        """The keyring, read from Secrets Manager at most once per max_age seconds."""
        return self._get(force=False)

    def refreshed(self) -> Keyring | None:
        """A fresh read after a signature failed (a key rotated), or None if one was just made."""
        with self._lock:
            now = self._clock()
            if self._refreshed_at is not None and now - self._refreshed_at < MIN_REFRESH_SECONDS:
                return None
            self._refreshed_at = now
        return self._get(force=True)
