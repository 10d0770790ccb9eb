"""The admin tests' environment leaves the rest of the suite as it found it."""

from __future__ import annotations

from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.checks import run_checks
from django.db import connection

from tests.admin_site import admin_environment


def test_the_admin_environment_is_taken_off_whole(tmp_path: Path) -> None:
    with admin_environment(tmp_path / "db.sqlite3") as users:
        assert apps.is_installed("django.contrib.admin")
        assert connection.vendor == "sqlite"
        assert users["admin"].is_superuser

    assert settings.INSTALLED_APPS == ["sqs_tasks"]
    assert not apps.is_installed("django.contrib.admin")
    assert connection.vendor == "unknown"  # the suite's no-database settings again
    assert [e.id for e in run_checks() if e.id.startswith(("admin", "auth"))] == []
