"""Parse a backend's OPTIONS once, strictly, with environment-variable fallbacks."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError
from django.core.exceptions import ImproperlyConfigured
from django.utils.dateparse import parse_duration

from .periodic.declarations import Periodic, parse_periodic

# Environment variables the SAM stack sets on the worker, so a Lambda needs no code.
ENV_TABLE = "SQS_TASKS_TABLE"
ENV_QUEUE_PREFIX = "SQS_TASKS_QUEUE_PREFIX"
ENV_QUEUE_URLS = "SQS_TASKS_QUEUE_URLS"
ENV_RESULT_TTL = "SQS_TASKS_RESULT_TTL"
ENV_SCHEDULE_GROUP = "SQS_TASKS_SCHEDULE_GROUP"
ENV_SCHEDULER_ROLE_ARN = "SQS_TASKS_SCHEDULER_ROLE_ARN"
ENV_SIGNING_SECRET = "SQS_TASKS_SIGNING_SECRET"

DEFAULT_RESULT_TTL = timedelta(days=14)
# Without a Lambda context a worker holds its claim this long before another may retake it.
DEFAULT_LEASE = timedelta(minutes=15)
# Far beyond any sensible setting, and short of where datetime arithmetic overflows.
MAX_DURATION = timedelta(days=3650)


# Standard retry mode backs off with jitter on throttling and 5xx; adaptive adds a
# client-side rate limiter that hurts bursty enqueues.
def default_client_config() -> dict[str, Any]:
    """Fresh each time: botocore rewrites the retries dict of a Config in place."""
    return {
        "retries": {"mode": "standard", "max_attempts": 5},
        "connect_timeout": 5,
        "read_timeout": 20,
        "tcp_keepalive": True,
    }


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What one SQSBackend alias is configured with."""

    alias: str
    table_name: str | None
    queue_urls: Mapping[str, str]
    queue_name_prefix: str | None
    region_name: str | None
    endpoint_url: str | None
    client_config: Config
    result_ttl: timedelta | None
    lease: timedelta
    # With both set, waits over 15 minutes become one EventBridge Scheduler schedule each.
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    # The Secrets Manager secret (name or ARN) of the message signing key; None: SECRET_KEY.
    signing_secret: str | None = None
    # Periodic tasks by name, each fired by an EventBridge Scheduler schedule of its own.
    periodic: Mapping[str, Periodic] = field(default_factory=dict)


def _fail(alias: str, key: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS'][{key!r}] {problem}.")


def _str(alias: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(alias, key, f"must be a non-empty string, not {value!r}")
    return value


def _duration(alias: str, key: str, value: Any, *, allow_none: bool) -> timedelta | None:
    if value is None and allow_none:
        return None
    given = value
    if isinstance(value, str):
        # Seconds ("3600"), Django's "DD HH:MM:SS" (str(timedelta)'s form) or ISO 8601 ("P14D").
        value = parse_duration(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise _fail(
            alias,
            key,
            f"must be seconds, a timedelta or a duration string ('3600', '14 00:00:00', "
            f"'P14D'), not {given!r}",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(alias, key, f"must be a finite number of seconds, not {given!r}")
    try:
        duration = value if isinstance(value, timedelta) else timedelta(seconds=value)
    except OverflowError:
        duration = timedelta.max
    if duration <= timedelta(0):
        raise _fail(alias, key, f"must be positive, not {given!r}")
    if duration > MAX_DURATION:
        raise _fail(alias, key, f"must be at most {MAX_DURATION.days:,} days, not {given!r}")
    return duration


def _queue_urls(alias: str, value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise _fail(alias, "QUEUE_URLS", f"is not a JSON object ({e})") from e
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith(("https://", "http://"))
        for k, v in value.items()
    ):
        raise _fail(alias, "QUEUE_URLS", "must map Django queue names to SQS queue URLs")
    return dict(value)


def _client_config(alias: str, value: Any) -> Config:
    if isinstance(value, Config):
        return Config(**default_client_config()).merge(value)
    if not isinstance(value, Mapping):
        raise _fail(alias, "CLIENT_CONFIG", "must be a botocore Config or a dict of its arguments")
    try:
        return Config(**{**default_client_config(), **value})
    except (TypeError, ValueError, BotoCoreError) as e:
        raise _fail(alias, "CLIENT_CONFIG", f"is not valid for botocore Config ({e})") from e


def parse_options(alias: str, options: Mapping[str, Any]) -> BackendOptions:
    """Validate OPTIONS, falling back to the SQS_TASKS_* environment variables."""
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS'] must be a dict.")
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['OPTIONS'] has unknown option {unknown[0]!r}; "
            f"known options are {', '.join(sorted(KNOWN_OPTIONS))}."
        )
    env = os.environ
    urls_raw = options.get("QUEUE_URLS", env.get(ENV_QUEUE_URLS))
    return BackendOptions(
        alias=alias,
        table_name=_str(alias, "TABLE_NAME", options.get("TABLE_NAME", env.get(ENV_TABLE))),
        queue_urls=_queue_urls(alias, urls_raw) if urls_raw is not None else {},
        queue_name_prefix=_prefix(
            alias, options.get("QUEUE_NAME_PREFIX", env.get(ENV_QUEUE_PREFIX))
        ),
        region_name=_str(alias, "REGION_NAME", options.get("REGION_NAME")),
        endpoint_url=_str(alias, "ENDPOINT_URL", options.get("ENDPOINT_URL")),
        client_config=_client_config(alias, options.get("CLIENT_CONFIG", {})),
        result_ttl=_duration(
            alias,
            "RESULT_TTL",
            options.get("RESULT_TTL", env.get(ENV_RESULT_TTL, DEFAULT_RESULT_TTL)),
            allow_none=True,
        ),
        lease=_duration(alias, "LEASE", options.get("LEASE", DEFAULT_LEASE), allow_none=False)
        or DEFAULT_LEASE,
        schedule_group=_str(
            alias, "SCHEDULE_GROUP", options.get("SCHEDULE_GROUP", env.get(ENV_SCHEDULE_GROUP))
        ),
        scheduler_role_arn=_role_arn(
            alias, options.get("SCHEDULER_ROLE_ARN", env.get(ENV_SCHEDULER_ROLE_ARN))
        ),
        signing_secret=_str(
            alias, "SIGNING_SECRET", options.get("SIGNING_SECRET", env.get(ENV_SIGNING_SECRET))
        ),
        periodic=parse_periodic(alias, options.get("PERIODIC")),
    )


def _role_arn(alias: str, value: Any) -> str | None:
    arn = _str(alias, "SCHEDULER_ROLE_ARN", value)
    if arn is not None and not arn.startswith("arn:"):
        raise _fail(alias, "SCHEDULER_ROLE_ARN", f"must be an IAM role ARN, not {arn!r}")
    return arn


def _prefix(alias: str, value: Any) -> str | None:
    # An empty prefix is legitimate: SQS queue names then equal Django queue names.
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(alias, "QUEUE_NAME_PREFIX", f"must be a string, not {value!r}")
    return value


KNOWN_OPTIONS = frozenset(
    {
        "TABLE_NAME",
        "QUEUE_URLS",
        "QUEUE_NAME_PREFIX",
        "REGION_NAME",
        "ENDPOINT_URL",
        "CLIENT_CONFIG",
        "RESULT_TTL",
        "LEASE",
        "SCHEDULE_GROUP",
        "SCHEDULER_ROLE_ARN",
        "SIGNING_SECRET",
        "PERIODIC",
    }
)
