"""SQSTask: Django's Task plus opt-in retries, via `@retry(...)` or `@task(max_attempts=...)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import ParamSpec, TypeVar

from django.tasks import Task
from django.tasks.exceptions import InvalidTask

from . import backoff

P = ParamSpec("P")
R = TypeVar("R")

# The longest wait between attempts; retry_delay() cannot overflow a timedelta under it.
MAX_BACKOFF_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class SQSTask(Task):  # type: ignore[type-arg]
    """A Task that may be retried with exponential backoff and jitter when it raises."""

    # 1 keeps Django's semantics: the first failure is final.
    max_attempts: int = 1
    # Seconds before the first retry; each later retry waits up to twice as long.
    retry_backoff: float = 2.0
    retry_backoff_max: float = 3600.0
    # Only these exceptions are retried; SystemExit and the like end the task at once.
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def validate_retries(self) -> None:
        """Refuse retry settings that cannot work, naming the setting and its limit."""
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise InvalidTask(f"max_attempts must be a whole number, not {self.max_attempts!r}.")
        if not 1 <= self.max_attempts <= 100:
            raise InvalidTask(f"max_attempts must be between 1 and 100, not {self.max_attempts}.")
        for name in ("retry_backoff", "retry_backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidTask(f"{name} must be a number of seconds, not {value!r}.")
        if not 0 < self.retry_backoff <= self.retry_backoff_max <= MAX_BACKOFF_SECONDS:
            raise InvalidTask(
                "retry_backoff must be positive and at most retry_backoff_max, itself at most "
                f"{MAX_BACKOFF_SECONDS:,} seconds (a year); got {self.retry_backoff!r} and "
                f"{self.retry_backoff_max!r}."
            )
        # A tuple, as isinstance() needs: a list would only fail on the worker, at the failure.
        if (
            not isinstance(self.retry_on, tuple)
            or not self.retry_on
            or not all(
                isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.retry_on
            )
        ):
            raise InvalidTask(
                f"retry_on must be a non-empty tuple of exception classes, not {self.retry_on!r}."
            )

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether a failure of attempt (1-based) earns another attempt."""
        return attempt < self.max_attempts and isinstance(exc, self.retry_on)

    def retry_delay(self, attempt: int) -> timedelta:
        """Backoff after attempt (1-based): exponential, capped, with equal jitter."""
        return timedelta(
            seconds=backoff.equal_jitter(attempt, self.retry_backoff, self.retry_backoff_max)
        )


def retry(
    *,
    max_attempts: int,
    retry_backoff: float = 2.0,
    retry_backoff_max: float = 3600.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> Callable[[Task[P, R]], Task[P, R]]:
    """Decorator over @task adding retries; works on Django 6.0, whose @task takes no extras."""

    def wrap(task: Task[P, R]) -> Task[P, R]:
        base = {f.name: getattr(task, f.name) for f in fields(Task)}
        retried: Task[P, R] = SQSTask(
            **base,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            retry_on=retry_on,
        )
        return retried

    return wrap
