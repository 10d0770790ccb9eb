"""Settings for the test suite: the SQS backend, its table and queues made by aws_stack()."""

SECRET_KEY = "tests-secret-key-not-for-production"
USE_TZ = True
INSTALLED_APPS = ["sqs_tasks"]
DATABASES: dict[str, dict[str, str]] = {}
TASKS = {
    "default": {
        "BACKEND": "sqs_tasks.SQSBackend",
        "QUEUES": ["default", "emails"],
    }
}
