"""Celery 5, the second peer: SQS transport and the DynamoDB result backend, on moto."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from celery import Celery

_endpoint = urlsplit(os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"))
_where = f"testing:testing@{_endpoint.hostname}:{_endpoint.port}"
QUEUE = "bench-celery"

app = Celery(
    "bench",
    broker=f"sqs://{_where}",
    # An IP address as the "region" makes the backend talk to that endpoint over HTTP.
    backend=f"dynamodb://{_where}/bench-celery-results",
)
app.conf.update(
    broker_transport_options={
        "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "is_secure": False,
        "wait_time_seconds": 1,
        "polling_interval": 0.05,
        "predefined_queues": {
            QUEUE: {
                "url": os.environ.get("PEER_QUEUE_URL", ""),
                "access_key_id": "testing",
                "secret_access_key": "testing",
            }
        },
    },
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=10,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop() -> None:
    """Return at once."""
