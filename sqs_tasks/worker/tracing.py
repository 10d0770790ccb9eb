"""An X-Ray subsegment per task, when the stack turned tracing on (SQS_TASKS_TRACING=true).

Off (the default), no Tracer is made and aws-xray-sdk is never imported (Powertools' package
imports the Tracer class, not the SDK). On, they load at the first traced task, and each
task's subsegment is annotated with its result id, task path, queue and outcome, and with the
trace id of the request that enqueued it (the AWSTraceHeader SQS passes on from a traced
producer), so a search for that annotation finds the task. aws-xray-sdk must then be
installed (`sqs-tasks[tracing]`, or the Lambda package's requirements); Powertools' Tracer
does nothing outside Lambda.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .attempt import Attempt, Redeliver

TRACING_ENV = "SQS_TASKS_TRACING"

logger = logging.getLogger("sqs_tasks.handler")

_tracer: Any = None


def enabled() -> bool:
    """Whether tasks are traced: the stack's switch on, POWERTOOLS_TRACE_DISABLED not true."""
    if os.environ.get(TRACING_ENV, "").lower() != "true":
        return False
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in {"true", "1"}


def tracer() -> Any:
    """Powertools' Tracer, made at the first call (it patches boto3); None without aws-xray-sdk."""
    global _tracer
    if _tracer is None:
        if importlib.util.find_spec("aws_xray_sdk") is None:
            # Tasks still run; only their subsegments are missing, said once per container.
            logger.warning(
                "%s=true but aws-xray-sdk is not installed (sqs-tasks[tracing]): tasks not traced",
                TRACING_ENV,
            )
            _tracer = False
        else:
            from aws_lambda_powertools.tracing import Tracer

            _tracer = Tracer()
    return _tracer or None


def producer_trace_id(header: str | None) -> str | None:
    """The trace id (Root=...) of an X-Ray trace header such as AWSTraceHeader."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


@contextmanager
def traced(attempt: Attempt, trace_header: str | None) -> Iterator[None]:
    """Run the block in a subsegment of the attempt's task, when tracing is on."""
    found = tracer() if enabled() else None
    if found is None:
        yield
        return
    envelope = attempt.envelope
    with found.provider.in_subsegment(f"## task {envelope.task_path}") as subsegment:
        subsegment.put_annotation("result_id", envelope.result_id)
        subsegment.put_annotation("task_path", envelope.task_path)
        subsegment.put_annotation("queue", envelope.queue_name)
        producer = producer_trace_id(trace_header)
        if producer is not None:
            subsegment.put_annotation("producer_trace_id", producer)
        outcome = "error"  # infrastructure trouble: the message is delivered again
        try:
            yield
            outcome = attempt.outcome or "dropped"
        except Redeliver:
            outcome = "redelivered"
            raise
        finally:
            subsegment.put_annotation("outcome", outcome)
