"""Retrying what AWS left undone: the pause between tries, and whether a failed call landed."""

from __future__ import annotations

import time

from botocore.exceptions import ClientError, ParamValidationError

from .. import backoff

# Calls per chunk before what is left is reported as failed: about 1.5 s of waiting at most.
BATCH_ATTEMPTS = 6
BASE_SECONDS = 0.05
CAP_SECONDS = 1.0


def pause(attempt: int) -> None:
    """Wait before retry number attempt (1-based); full jitter spreads competing retries."""
    time.sleep(backoff.full_jitter(attempt, BASE_SECONDS, CAP_SECONDS))


def maybe_applied(error: Exception) -> bool:
    """Whether a call that failed may have been applied all the same (timeout, dropped, 5xx)."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        return int(status) >= 500
    return not isinstance(error, ParamValidationError)
