"""Exponential backoff: one formula for task retries, redelivery and AWS batch retries."""

from __future__ import annotations

import random


def ceiling(attempt: int, base: float, cap: float) -> float:
    """base x 2^(attempt - 1), at most cap; attempt is 1-based."""
    return min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 64))


def full_jitter(attempt: int, base: float, cap: float) -> float:
    """Anywhere up to the ceiling: spreads competing retries the most."""
    return random.uniform(0, ceiling(attempt, base, cap))


def equal_jitter(attempt: int, base: float, cap: float) -> float:
    """Half the ceiling fixed, half random: spread out, yet never almost at once."""
    top = ceiling(attempt, base, cap)
    return top / 2 + random.uniform(0, top / 2)
