"""Settings of the example project: everything AWS-specific comes from the environment."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-insecure-key-change-me")
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
INSTALLED_APPS = ["sqs_tasks", "example"]
DATABASES: dict[str, dict[str, str]] = {}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The SAM stack sets SQS_TASKS_TABLE, SQS_TASKS_QUEUE_PREFIX and SQS_TASKS_QUEUES;
# the backend reads the first two (and the schedule group's) itself: OPTIONS holds the rest.
TASKS = {
    "default": {
        "BACKEND": "sqs_tasks.SQSBackend",
        "QUEUES": os.environ.get("SQS_TASKS_QUEUES", "default").split(","),
        "OPTIONS": {
            # Synced to EventBridge Scheduler by `manage.py sqs_tasks_schedules sync`.
            "PERIODIC": {
                "minutely-sum": {
                    "task": "example.tasks.add",
                    "schedule": "rate(1 minute)",
                    "args": [20, 22],
                },
            },
        },
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO")},
}
