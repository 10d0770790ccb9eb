"""The sqs_tasks app: lists it in INSTALLED_APPS and `manage.py check` checks every backend."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks

# The tag of the checks that call AWS: `manage.py check --deploy --tag sqs_tasks_aws`.
AWS_TAG = "sqs_tasks_aws"


class SQSTasksConfig(AppConfig):
    """Makes sure Django's task checks run, and adds the deploy-time AWS lookups."""

    name = "sqs_tasks"
    verbose_name = "SQS tasks"

    def ready(self) -> None:
        """Register the checks; importing django.tasks registers Django's, which call ours."""
        import django.tasks  # noqa: F401  (registers django.tasks.checks.check_tasks)

        checks.register(aws_resources, AWS_TAG, deploy=True)


def aws_resources(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every valid SQSBackend's table and queues exist where its settings point (calls AWS)."""
    from django.tasks import task_backends

    from .backend import SQSBackend
    from .checks import missing_resources

    errors: list[checks.CheckMessage] = []
    for backend in task_backends.all():
        # A backend that fails the plain checks says why there; looking it up adds nothing.
        if isinstance(backend, SQSBackend) and not backend.check():
            errors.extend(missing_resources(backend.producer, backend.queues))
    return errors
