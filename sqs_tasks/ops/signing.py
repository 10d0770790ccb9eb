"""Rotate the message signing key held in Secrets Manager, keeping old keys as fallbacks."""

from __future__ import annotations

import json
import secrets
from typing import Any

from ..aws.secrets import Keyring, parse_keyring
from .base import OperationError

# Queued messages live up to 14 days, and their dead letters 14 more: a retired key must
# not verify anything still waiting, so fallbacks are dropped only when asked.
DRAIN_DAYS = 28


def _secret(backend: Any) -> str:
    secret: str | None = backend.config.signing_secret
    if secret is None:
        raise OperationError(
            f"Task backend {backend.alias!r} signs with SECRET_KEY (no SIGNING_SECRET): rotate "
            "it with Django's SECRET_KEY_FALLBACKS."
        )
    return secret


def _read(backend: Any, secret: str) -> Keyring:
    value = backend.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    return parse_keyring(secret, value)


def _write(backend: Any, secret: str, keyring: Keyring) -> None:
    value = json.dumps({"key": keyring.key, "fallbacks": list(keyring.fallbacks)})
    backend.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=value)


def rotate(backend: Any) -> Keyring:
    """A new random key signs from now on; the current one and older fallbacks still verify."""
    secret = _secret(backend)
    current = _read(backend, secret)
    rotated = Keyring(secrets.token_urlsafe(48), (current.key, *current.fallbacks))
    _write(backend, secret, rotated)
    return rotated


def retire_fallbacks(backend: Any) -> int:
    """Drop every fallback key (after DRAIN_DAYS since the last rotation); returns how many."""
    secret = _secret(backend)
    current = _read(backend, secret)
    _write(backend, secret, Keyring(current.key))
    return len(current.fallbacks)
