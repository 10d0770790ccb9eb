"""The no-op task, for django-tasks-sqs."""

from django.tasks import task


@task
def noop() -> None:
    """Return at once."""
