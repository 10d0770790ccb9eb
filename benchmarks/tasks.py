"""The benchmark's task: does nothing, so what is measured is the machinery around it."""

from django.tasks import task


@task
def noop() -> None:
    """Return at once."""
