"""What a million tasks cost on AWS, from measured request counts, item sizes and durations."""

from __future__ import annotations

import math
from dataclasses import dataclass

# us-east-1 list prices (USD), on-demand, arm64 Lambda; free tiers left out.
PRICES: dict[str, tuple[float, str]] = {
    "dynamodb_wru": (0.625 / 1e6, "DynamoDB on-demand, per write request unit (1 KB)"),
    "dynamodb_rru": (0.125 / 1e6, "DynamoDB on-demand, per read request unit (4 KB strong)"),
    "dynamodb_gb_month": (0.25, "DynamoDB storage, per GB-month"),
    "sqs_request": (0.40 / 1e6, "SQS standard, per request (each 64 KB of payload)"),
    "lambda_request": (0.20 / 1e6, "Lambda, per request"),
    "lambda_gb_second": (0.0000133334, "Lambda arm64, per GB-second"),
    "scheduler_invocation": (1.00 / 1e6, "EventBridge Scheduler, per invocation"),
}
# Holding finished results until their TTL: billed by the GB-month, not by the request.
STORAGE = "DynamoDB storage (TTL)"


def price(name: str) -> float:
    """The unit price of name."""
    return PRICES[name][0]


def write_units(size_bytes: int) -> int:
    """Write request units of a write whose larger item image is size_bytes."""
    return max(1, math.ceil(size_bytes / 1024))


def read_units(size_bytes: int) -> int:
    """Read request units of a strongly consistent read of size_bytes."""
    return max(1, math.ceil(size_bytes / 4096))


def sqs_requests(payload_bytes: int) -> int:
    """SQS bills each 64 KB chunk of a request's payload as one request."""
    return max(1, math.ceil(payload_bytes / 65536))


@dataclass
class PerTask:
    """Billable units one task uses, averaged over a run."""

    wru: float = 0.0
    rru: float = 0.0
    sqs: float = 0.0
    lambda_requests: float = 0.0
    lambda_gb_seconds: float = 0.0
    scheduler: float = 0.0
    stored_gb_months: float = 0.0

    def lines(self) -> list[tuple[str, float]]:
        """(what, USD per million tasks) for each billed dimension."""
        million = 1e6
        return [
            ("DynamoDB writes", self.wru * price("dynamodb_wru") * million),
            ("DynamoDB reads", self.rru * price("dynamodb_rru") * million),
            (STORAGE, self.stored_gb_months * price("dynamodb_gb_month") * million),
            ("SQS requests", self.sqs * price("sqs_request") * million),
            ("Lambda requests", self.lambda_requests * price("lambda_request") * million),
            ("Lambda duration", self.lambda_gb_seconds * price("lambda_gb_second") * million),
            ("EventBridge Scheduler", self.scheduler * price("scheduler_invocation") * million),
        ]

    def total(self) -> float:
        """USD per million tasks."""
        return sum(usd for _, usd in self.lines())

    def requests_and_compute(self) -> float:
        """USD per million tasks in the issue's terms: requests, units and Lambda; no storage."""
        return sum(usd for what, usd in self.lines() if what != STORAGE)


def lambda_gb_seconds(
    ms_per_invocation: float, memory_mb: int, tasks_per_invocation: float
) -> float:
    """GB-seconds per task: Lambda bills each invocation's duration rounded up to 1 ms."""
    return math.ceil(ms_per_invocation) / 1000 * memory_mb / 1024 / tasks_per_invocation
