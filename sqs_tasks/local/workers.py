"""The workers of a run: the emulated mappings, the scheduler's clock, whether queues are idle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from .stack import Deployment

# Handlers whose invocations may run on several threads at once (lambda_handler.handler
# keeps a BatchProcessor per thread); the others run one invocation at a time here.
THREAD_SAFE_HANDLERS = {"lambda_handler.handler.handler"}


def sqs_client(deployment: Deployment, connections: int) -> Any:
    """An SQS client of the moto server with a connection for each of its threads."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(region_name=deployment.region).client(
        "sqs",
        endpoint_url=deployment.endpoint_url,
        config=Config(max_pool_connections=connections),
    )


def start_mappings(
    deployment: Deployment, configs: Sequence[Any], visibility_timeout: int | None, listener: Any
) -> list[Any]:
    """An emulated event source mapping for each deployed one."""
    from .mapping import EventSourceMapping

    mappings = []
    for config in configs:
        mapping = EventSourceMapping(
            config,
            config.function.load_handler(),
            sqs_client(deployment, config.maximum_concurrency + 2),
            visibility_timeout=visibility_timeout,
            serialize=config.function.handler not in THREAD_SAFE_HANDLERS,
            listeners=[listener],
        )
        mapping.start()
        mappings.append(mapping)
    return mappings


def start_clock(stopping: threading.Event) -> None:
    """EventBridge Scheduler's clock (fire_schedules) on a thread of its own, until stopping."""
    threading.Thread(target=fire_schedules, args=(stopping,), name="scheduler", daemon=True).start()


def fire_schedules(stopping: threading.Event) -> None:
    """EventBridge Scheduler: send each due one-time schedule's message and periodic firing."""
    from ..testing import fire_due_schedules

    while not stopping.wait(1):
        try:
            fire_due_schedules("default")
        except Exception:
            logging.getLogger("sqs_tasks.local").exception("Firing due schedules failed")


def queues_idle(deployment: Deployment) -> bool:
    """Nothing visible, in flight or delayed in any queue, the dead-letter queues included."""
    sqs = deployment.client("sqs")
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    prefix = deployment.parameters["Prefix"]
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if any(int(attributes.get(n, "0")) for n in names):
            return False
    return True
