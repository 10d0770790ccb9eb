"""What an emulated mapping runs from (the deployed settings) and what it reports."""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..worker.context import LambdaContext
from ..worker.settle import Message
from .stack import Deployment

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class FunctionConfig:
    """What an invocation needs of a deployed function."""

    name: str
    arn: str
    handler: str  # "module.attribute", as in the function's Handler setting
    timeout: int  # seconds
    memory_size: int

    @classmethod
    def from_configuration(cls, configuration: dict[str, Any]) -> FunctionConfig:
        """From lambda:GetFunctionConfiguration."""
        return cls(
            name=configuration["FunctionName"],
            arn=configuration["FunctionArn"],
            handler=configuration["Handler"],
            timeout=int(configuration.get("Timeout", 3)),
            memory_size=int(configuration.get("MemorySize", 128)),
        )

    def context(self) -> LambdaContext:
        """The context of one invocation, counting down from the function's timeout."""
        return LambdaContext(
            deadline=time.monotonic() + self.timeout,
            function_name=self.name,
            function_arn=self.arn,
            memory_limit_in_mb=self.memory_size,
        )

    def load_handler(self) -> Handler:
        """Import the function's handler (Django must be set up first for ours)."""
        module, _, attribute = self.handler.rpartition(".")
        handler: Handler = getattr(importlib.import_module(module), attribute)
        return handler


@dataclass(frozen=True)
class MappingConfig:
    """A deployed event source mapping and what its queue says about redelivery."""

    uuid: str
    function: FunctionConfig
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int
    batching_window: int  # seconds
    report_batch_item_failures: bool
    maximum_concurrency: int
    visibility_timeout: int  # the queue's
    max_receive_count: int | None  # the queue's redrive policy
    dead_letter_arn: str | None

    @property
    def queue_name(self) -> str:
        """The SQS queue's name."""
        return self.queue_arn.rsplit(":", 1)[1]

    def describe(self) -> str:
        """One line for people."""
        redrive = (
            f"to {self.dead_letter_arn.rsplit(':', 1)[1]} after {self.max_receive_count} receives"
            if self.dead_letter_arn
            else "none"
        )
        return (
            f"{self.queue_name} -> {self.function.name}: batch {self.batch_size}, "
            f"window {self.batching_window} s, concurrency {self.maximum_concurrency}, "
            f"visibility {self.visibility_timeout} s, redrive {redrive}"
            + ("" if self.report_batch_item_failures else ", no partial batch responses")
        )


# (mapping, message, outcome): outcome is "deleted" or "failed".
Listener = Callable[[MappingConfig, Message, str], None]


@dataclass
class MappingStats:
    """What one mapping did, in messages and invocations."""

    received: int = 0
    invocations: int = 0
    deleted: int = 0
    failed: int = 0  # reported in batchItemFailures, or in a batch that failed as a whole
    failed_invocations: int = 0  # raised, timed out or answered invalidly
    largest_batch: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to the counters, from any thread."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def saw_batch(self, size: int) -> None:
        """Count one invocation of size messages."""
        with self._lock:
            self.invocations += 1
            self.received += size
            self.largest_batch = max(self.largest_batch, size)


def read_mappings(
    lambda_client: Any, sqs_client: Any, function: dict[str, Any]
) -> list[MappingConfig]:
    """The SQS event source mappings of a deployed function (its GetFunctionConfiguration)."""
    config = FunctionConfig.from_configuration(function)
    found = []
    paginator = lambda_client.get_paginator("list_event_source_mappings")
    for page in paginator.paginate(FunctionName=config.name):
        for mapping in page["EventSourceMappings"]:
            arn = mapping["EventSourceArn"]
            if not arn.startswith("arn:aws") or ":sqs:" not in arn:
                continue
            _, _, _, region, account, name = arn.split(":", 5)
            url = sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
            attributes = sqs_client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            )["Attributes"]
            redrive = json.loads(attributes.get("RedrivePolicy", "null") or "null") or {}
            scaling = mapping.get("ScalingConfig") or {}
            found.append(
                MappingConfig(
                    uuid=mapping["UUID"],
                    function=config,
                    queue_url=url,
                    queue_arn=arn,
                    region=region,
                    batch_size=int(mapping.get("BatchSize", 10)),
                    batching_window=int(mapping.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in mapping.get("FunctionResponseTypes", []),
                    # Without a ScalingConfig, Lambda scales to 1,250 concurrent invocations.
                    maximum_concurrency=int(scaling.get("MaximumConcurrency", 1250)),
                    visibility_timeout=int(attributes.get("VisibilityTimeout", 30)),
                    max_receive_count=(
                        int(redrive["maxReceiveCount"]) if "maxReceiveCount" in redrive else None
                    ),
                    dead_letter_arn=redrive.get("deadLetterTargetArn"),
                )
            )
    return found


def deployed_mappings(deployment: Deployment) -> list[MappingConfig]:
    """The configuration of every deployed event source mapping, the task queues' first."""
    lambda_client, sqs = deployment.client("lambda"), deployment.client("sqs")
    configs = []
    for function in lambda_client.list_functions()["Functions"]:
        configuration = deployment.function(function["FunctionName"])
        configs.extend(read_mappings(lambda_client, sqs, configuration))
    return sorted(configs, key=lambda c: (c.dead_letter_arn is None, c.queue_name))
