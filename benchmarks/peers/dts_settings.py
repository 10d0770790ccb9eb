"""Settings for django-tasks-sqs, the first peer: its backend on the benchmark's moto server."""

import os

SECRET_KEY = "benchmark-secret-key-not-for-production"
USE_TZ = True
INSTALLED_APPS = ["django_tasks_sqs"]
DATABASES: dict[str, dict[str, str]] = {}
TASKS = {
    "default": {
        "BACKEND": "django_tasks_sqs.SQSBackend",
        "QUEUES": ["default"],
        "OPTIONS": {
            "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL"),
            "queue_urls": {"default": os.environ.get("PEER_QUEUE_URL", "")},
        },
    }
}
