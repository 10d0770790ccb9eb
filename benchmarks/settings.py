"""Settings of the benchmark's own project: one SQS backend, pointed at moto by run.py's env."""

SECRET_KEY = "benchmark-secret-key-not-for-production"
USE_TZ = True
INSTALLED_APPS = ["sqs_tasks"]
DATABASES: dict[str, dict[str, str]] = {}
# The table and queue URLs come from SQS_TASKS_TABLE / SQS_TASKS_QUEUE_URLS, the endpoint from
# AWS_ENDPOINT_URL, as a deployed worker gets them from its environment.
TASKS = {"default": {"BACKEND": "sqs_tasks.SQSBackend", "QUEUES": ["default"]}}
