"""The Django admin for the admin tests: its apps, a SQLite database with users, its URLs.

The rest of the suite runs with no database; these settings are laid over tests.settings for
the tests that ask for the ``admin_site`` fixture, and taken off afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from asgiref.local import Local
from django.core.checks.registry import registry as check_registry
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

PASSWORD = "a-test-password-1234"

ADMIN_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "sqs_tasks",
]


def admin_settings(database: Path) -> dict[str, Any]:
    """What a project serving the admin has, on top of tests.settings."""
    return {
        "INSTALLED_APPS": ADMIN_APPS,
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        "ROOT_URLCONF": "tests.admin_urls",
        "STATIC_URL": "/static/",
        "ALLOWED_HOSTS": ["testserver", "localhost", "127.0.0.1"],
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, tests only
    }


def _reset_connections() -> None:
    """Make Django read DATABASES again (it caches the first it sees)."""
    connections.close_all()
    connections.__dict__.pop("settings", None)
    connections._settings = None
    connections._connections = Local(connections.thread_critical)


@contextmanager
def admin_environment(database: Path) -> Iterator[dict[str, Any]]:
    """The admin's settings and a migrated database with users by role; then as it was."""
    override = override_settings(**admin_settings(database))
    # The admin's apps register system checks when ready; they would outlive these settings.
    registered = set(check_registry.registered_checks)
    deployment = set(check_registry.deployment_checks)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Overriding setting DATABASES")
        override.enable()
    _reset_connections()
    try:
        call_command("migrate", verbosity=0)
        yield _make_users()
    finally:
        _reset_connections()
        override.disable()
        _reset_connections()
        check_registry.registered_checks = registered
        check_registry.deployment_checks = deployment


@pytest.fixture(scope="module")
def admin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The admin for a test module: staff and other users by role (see _make_users)."""
    with admin_environment(tmp_path_factory.mktemp("admin") / "db.sqlite3") as users:
        yield users


def _make_users() -> dict[str, Any]:
    from django.contrib.auth.models import Permission, User

    admin = User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    operator = User.objects.create_user("operator", password=PASSWORD, is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="sqs_tasks", codename__in=["view_result", "requeue_result"]
        )
    )
    viewer = User.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="sqs_tasks", codename="view_result")
    )
    clerk = User.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    visitor = User.objects.create_user("visitor", password=PASSWORD)
    return {
        "admin": admin,
        "operator": operator,
        "viewer": viewer,
        "clerk": clerk,
        "visitor": visitor,
    }
