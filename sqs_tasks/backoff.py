"""Bounded exponential backoff with full jitter, for the parts of a batch AWS left undone."""

from __future__ import annotations

import random
import time

from botocore.exceptions import ClientError, ParamValidationError

# Calls per chunk before what is left is reported as failed: about 1.5 s of waiting at most.
BATCH_ATTEMPTS = 6
BASE_SECONDS = 0.05
CAP_SECONDS = 1.0


def pause(attempt: int) -> None:
    """Wait before retry number attempt (1-based); full jitter spreads competing retries."""
    time.sleep(random.uniform(0, min(CAP_SECONDS, BASE_SECONDS * 2 ** (attempt - 1))))


def maybe_applied(error: Exception) -> bool:
    """Whether a call that failed may have been applied all the same (timeout, dropped, 5xx)."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        return int(status) >= 500
    return not isinstance(error, ParamValidationError)
