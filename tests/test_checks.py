"""manage.py check in any project listing sqs_tasks, and the errors a first hour meets."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from django.apps import apps
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.tasks import default_task_backend
from django.test import override_settings
from django.test.runner import DiscoverRunner as DjangoDiscoverRunner

from sqs_tasks.apps import AWS_TAG, SQSTasksConfig
from sqs_tasks.conf import default_client_config
from sqs_tasks.exceptions import ResourceNotFound
from sqs_tasks.producer import longest_write
from sqs_tasks.testing import Stack
from tests import tasks
from tests.conftest import queue_depth


def _scan() -> list[dict[str, Any]]:
    backend: Any = default_task_backend
    client = backend.client("dynamodb")
    items: list[dict[str, Any]] = client.scan(TableName=backend.store.table_name)["Items"]
    return items


def _tasks_with(stack: Stack, **options: Any) -> dict[str, Any]:
    """The stack's TASKS with the default backend's OPTIONS changed (None removes a key)."""
    settings = copy.deepcopy(stack.tasks)
    merged = {**settings["default"]["OPTIONS"], **options}
    settings["default"]["OPTIONS"] = {k: v for k, v in merged.items() if v is not None}
    return settings


def _deploy_errors() -> list[checks.CheckMessage]:
    return checks.run_checks(include_deployment_checks=True, tags=[AWS_TAG])


def test_the_app_config_is_sqs_tasks_own() -> None:
    assert isinstance(apps.get_app_config("sqs_tasks"), SQSTasksConfig)


def test_a_typo_in_options_is_a_check_error_not_a_crash() -> None:
    typo = {"default": {"BACKEND": "sqs_tasks.SQSBackend", "OPTIONS": {"TABLE": "results"}}}
    with override_settings(TASKS=typo):
        errors = [e for e in checks.run_checks() if e.id == "sqs_tasks.E004"]
        with pytest.raises(SystemCheckError, match=r"unknown option 'TABLE'"):
            call_command("check")

    assert len(errors) == 1
    assert "TASKS['default']['OPTIONS'] has unknown option 'TABLE'" in errors[0].msg


def test_plain_check_never_calls_aws(stack: Stack) -> None:
    # A missing table is only found by looking it up, which only --deploy does.
    with override_settings(TASKS=_tasks_with(stack, TABLE_NAME="nope")):
        assert [e for e in checks.run_checks() if e.id.startswith("sqs_tasks")] == []
        assert AWS_TAG not in checks.registry.registry.tags_available()


def test_deploy_check_passes_when_everything_exists(stack: Stack) -> None:
    assert _deploy_errors() == []
    call_command("check", "--deploy", "--tag", AWS_TAG)


def test_deploy_check_names_each_missing_resource(stack: Stack) -> None:
    urls = dict(stack.tasks["default"]["OPTIONS"]["QUEUE_URLS"])
    urls["emails"] = urls["emails"].replace("emails", "gone")
    with override_settings(TASKS=_tasks_with(stack, TABLE_NAME="nope", QUEUE_URLS=urls)):
        errors = _deploy_errors()

    assert [e.id for e in errors] == ["sqs_tasks.E005", "sqs_tasks.E005"]
    assert "DynamoDB table 'nope' does not exist in us-east-1" in errors[0].msg
    assert "ResultsTableName" in errors[0].msg
    assert "SQS_TASKS_TABLE" in errors[0].msg
    assert "(Django queue 'emails') does not exist" in errors[1].msg
    assert "OPTIONS['QUEUE_URLS']['emails']" in errors[1].msg


def test_deploy_check_names_a_queue_missing_under_the_prefix(stack: Stack) -> None:
    prefixed = _tasks_with(stack, QUEUE_URLS=None, QUEUE_NAME_PREFIX="wrong-")
    with override_settings(TASKS=prefixed):
        errors = _deploy_errors()

    assert [e.id for e in errors] == ["sqs_tasks.E005", "sqs_tasks.E005"]
    assert "SQS queue 'wrong-default' (Django queue 'default') does not exist" in errors[0].msg
    assert "QUEUE_NAME_PREFIX" in errors[0].msg
    assert "QueuePrefix" in errors[0].msg


def test_deploy_check_says_when_aws_cannot_be_reached(stack: Stack) -> None:
    with override_settings(TASKS=_tasks_with(stack, ENDPOINT_URL="http://127.0.0.1:9")):
        errors = _deploy_errors()

    assert {e.id for e in errors} == {"sqs_tasks.E006"}
    assert "could not look up its results table" in errors[0].msg


def test_a_missing_table_is_named_and_nothing_is_sent(stack: Stack) -> None:
    with override_settings(TASKS=_tasks_with(stack, TABLE_NAME="nope")):
        with pytest.raises(ResourceNotFound, match=r"DynamoDB table 'nope' does not exist"):
            tasks.add.enqueue(1, 2)
        backend: Any = default_task_backend
        with pytest.raises(ResourceNotFound, match="ResultsTableName"):
            backend.get_result("0" * 32)

    assert queue_depth() == 0


def test_a_missing_table_fails_enqueue_many_before_anything_is_sent(stack: Stack) -> None:
    entries = [(tasks.add, [i, 1], {}) for i in range(30)]
    with (
        override_settings(TASKS=_tasks_with(stack, TABLE_NAME="nope")),
        pytest.raises(ResourceNotFound, match=r"DynamoDB table 'nope' does not exist"),
    ):
        default_task_backend.enqueue_many(entries)  # type: ignore[attr-defined]

    assert queue_depth() == 0


def test_a_queue_missing_under_the_prefix_is_named_before_anything_is_written(
    stack: Stack,
) -> None:
    prefixed = _tasks_with(stack, QUEUE_URLS=None, QUEUE_NAME_PREFIX="x-")
    with (
        override_settings(TASKS=prefixed),
        pytest.raises(ResourceNotFound, match=r"SQS queue 'x-default' .*QueuePrefix"),
    ):
        tasks.add.enqueue(1, 2)

    assert _scan() == []


def test_a_configured_queue_url_that_is_missing_leaves_no_item(stack: Stack) -> None:
    urls = dict(stack.tasks["default"]["OPTIONS"]["QUEUE_URLS"])
    urls["default"] = urls["default"].replace("default", "gone")
    with (
        override_settings(TASKS=_tasks_with(stack, QUEUE_URLS=urls)),
        pytest.raises(ResourceNotFound, match=r"OPTIONS\['QUEUE_URLS'\]\['default'\]") as e,
    ):
        tasks.add.enqueue(1, 2)

    assert "The result is deleted: nothing was enqueued." in (e.value.__notes__ or [])
    assert _scan() == []


def test_a_missing_queue_url_is_marked_failed_where_deleting_is_not_allowed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = dict(stack.tasks["default"]["OPTIONS"]["QUEUE_URLS"])
    urls["default"] = urls["default"].replace("default", "gone")
    with override_settings(TASKS=_tasks_with(stack, QUEUE_URLS=urls)):
        store: Any = default_task_backend.store  # type: ignore[attr-defined]

        def denied(result_id: str) -> bool:
            error: Any = {"Error": {"Code": "AccessDeniedException", "Message": "no DeleteItem"}}
            raise ClientError(error, "DeleteItem")

        monkeypatch.setattr(store, "discard_unsent", denied)
        with pytest.raises(ResourceNotFound, match=r"does not exist") as e:
            tasks.add.enqueue(1, 2)

    assert "The result is marked FAILED." in (e.value.__notes__ or [])
    (item,) = _scan()
    assert item["status"] == {"S": "FAILED"}


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ((1, {"when": object()}), {}, r"args\[1\]\['when'\] is a object"),
        ((), {"items": [1, [2, {3}]]}, r"kwargs\['items'\]\[1\]\[1\] is a set"),
        ((b"\xff",), {}, r"args\[0\] is bytes that are not UTF-8"),
        ((), {"x": {"y": float("inf")}}, r"kwargs\['x'\]\['y'\] is inf"),
    ],
)
def test_a_non_json_argument_names_the_task_and_where_it_is(
    stack: Stack, args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> None:
    with pytest.raises(TypeError, match=r"Task tests\.tasks\.echo argument " + where):
        tasks.echo.enqueue(*args, **kwargs)

    assert _scan() == []


def test_non_string_dict_keys_are_refused_so_results_read_back_as_enqueued(stack: Stack) -> None:
    # JSON would turn {1: "x"} into {"1": "x"}: get_result() would differ from enqueue()'s.
    with pytest.raises(TypeError, match=r"args\[0\] has the key 1, a int; JSON object keys"):
        tasks.echo.enqueue({1: "x"})
    with pytest.raises(TypeError, match=r"kwargs\['d'\]\['a'\] has the key None"):
        tasks.echo.enqueue(d={"a": {None: 1}})

    assert _scan() == []
    result = tasks.echo.enqueue({"1": "x"}, (1, b"ok"))
    assert default_task_backend.get_result(result.id).args == result.args == [{"1": "x"}, [1, "ok"]]


def test_the_test_runner_checks_against_the_embedded_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqs_tasks.testing.runner import DiscoverRunner

    for name in ("SQS_TASKS_TABLE", "SQS_TASKS_QUEUE_PREFIX", "SQS_TASKS_QUEUE_URLS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemCheckError, match=r"sqs_tasks\.E001"):
        DjangoDiscoverRunner(verbosity=0).run_checks(set())

    DiscoverRunner(verbosity=0).run_checks(set())


def test_client_config_that_lets_a_write_outlast_the_workers_wait_is_a_warning() -> None:
    """W001: with read_timeout 60, six tries can take 446 s, past the 240 s a worker waits."""

    def warnings(**client_config: Any) -> list[checks.CheckMessage]:
        options = {"TABLE_NAME": "results", "QUEUE_URLS": {"default": "https://sqs.example/q"}}
        backend = {"BACKEND": "sqs_tasks.SQSBackend", "OPTIONS": options}
        if client_config:
            options["CLIENT_CONFIG"] = client_config
        with override_settings(TASKS={"default": backend}):
            return [e for e in checks.run_checks() if e.id.startswith("sqs_tasks.")]

    assert longest_write(Config(**default_client_config())) == timedelta(seconds=206)
    assert warnings() == []
    (slow,) = warnings(read_timeout=60)
    assert slow.id == "sqs_tasks.W001"
    assert "up to 446 s" in slow.msg and "waits 240 s" in slow.msg
    fewer_tries = {"mode": "standard", "total_max_attempts": 2}
    assert warnings(read_timeout=60, retries=fewer_tries) == []
