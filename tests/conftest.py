"""Django set-up for the suite, and an embedded AWS (moto server over HTTP) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from sqs_tasks.testing import Stack, aws_stack  # noqa: E402
from tests import tasks  # noqa: E402


@pytest.fixture
def stack() -> Iterator[Stack]:
    """moto server on 127.0.0.1 with the backend's table and queues."""
    tasks.runs.clear()
    tasks.order.clear()
    with aws_stack() as made:
        yield made
