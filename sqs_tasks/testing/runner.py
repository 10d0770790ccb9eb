"""Django's test runner for projects whose table and queues come from the environment.

`manage.py test` runs the system checks before any test: without SQS_TASKS_TABLE and a queue
prefix they fail. This runner runs them against an embedded AWS (aws_stack()), as the tests
will be: set TEST_RUNNER = "sqs_tasks.testing.runner.DiscoverRunner".
"""

from __future__ import annotations

from typing import Any

from django.test.runner import DiscoverRunner as DjangoDiscoverRunner

from .embedded import aws_stack


class DiscoverRunner(DjangoDiscoverRunner):
    """Django's DiscoverRunner, whose system checks see aws_stack()'s table and queues."""

    def run_checks(self, databases: Any) -> None:
        """Django's checks, with TASKS pointing at a freshly made embedded AWS."""
        with aws_stack():
            super().run_checks(databases)
