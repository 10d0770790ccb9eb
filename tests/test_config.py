"""OPTIONS are parsed once and strictly; configuration problems surface in manage.py check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured

from sqs_tasks.backend import SQSBackend


def _backend(options: dict[str, object], queues: list[str] | None = None) -> SQSBackend:
    params: dict[str, object] = {"BACKEND": "sqs_tasks.SQSBackend", "OPTIONS": options}
    if queues is not None:
        params["QUEUES"] = queues
    return SQSBackend("jobs", params)


def test_unknown_option_names_the_key_and_alias() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"TASKS\['jobs'\].*unknown option 'TABLE'"):
        _ = _backend({"TABLE": "results"}).config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"TABLE_NAME": ""}, r"\['TABLE_NAME'\] must be a non-empty string"),
        ({"QUEUE_URLS": {"default": "sqs://x"}}, r"\['QUEUE_URLS'\] must map"),
        ({"QUEUE_URLS": "{not json"}, r"\['QUEUE_URLS'\] is not a JSON object"),
        ({"RESULT_TTL": -5}, r"\['RESULT_TTL'\] must be positive"),
        ({"RESULT_TTL": "a week"}, r"\['RESULT_TTL'\] must be seconds, a timedelta or a dur"),
        ({"LEASE": "-00:05:00"}, r"\['LEASE'\] must be positive, not '-00:05:00'"),
        ({"LEASE": "P99999D"}, r"\['LEASE'\] must be at most 3,650 days"),
        ({"CLIENT_CONFIG": {"retries_mode": "x"}}, r"\['CLIENT_CONFIG'\] is not valid"),
        ({"QUEUE_NAME_PREFIX": 7}, r"\['QUEUE_NAME_PREFIX'\] must be a string"),
        ({"LEASE": float("nan")}, r"\['LEASE'\] must be a finite number of seconds"),
        ({"RESULT_TTL": float("inf")}, r"\['RESULT_TTL'\] must be a finite number of seconds"),
        ({"RESULT_TTL": timedelta.max}, r"\['RESULT_TTL'\] must be at most 3,650 days"),
        ({"LEASE": 10**12}, r"\['LEASE'\] must be at most 3,650 days"),
        ({"CLIENT_CONFIG": {"retries": {"mode": "bogus"}}}, r"\['CLIENT_CONFIG'\] is not valid"),
    ],
)
def test_invalid_option_values_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"TASKS\['jobs'\]\['OPTIONS'\]" + message):
        _ = _backend(options).config


def test_environment_configures_a_lambda_without_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_TASKS_TABLE", "stack-results")
    monkeypatch.setenv("SQS_TASKS_QUEUE_PREFIX", "stack-")
    monkeypatch.setenv("SQS_TASKS_RESULT_TTL", "3600")

    config = _backend({}).config

    assert config.table_name == "stack-results"
    assert config.queue_name_prefix == "stack-"
    assert config.result_ttl == timedelta(hours=1)


def test_options_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_TASKS_TABLE", "from-env")
    assert _backend({"TABLE_NAME": "from-options"}).config.table_name == "from-options"


def test_client_config_keeps_standard_retries_unless_overridden() -> None:
    default = _backend({}).config.client_config
    custom = _backend({"CLIENT_CONFIG": Config(retries={"mode": "adaptive"})}).config.client_config

    assert default.retries == {"mode": "standard", "max_attempts": 5}
    assert custom.retries == {"mode": "adaptive"}
    assert custom.connect_timeout == 5


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        ("3600", timedelta(hours=1)),
        (" 90 ", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ("14 00:00:00", timedelta(days=14)),
        ("00:15:00", timedelta(minutes=15)),
        ("P14D", timedelta(days=14)),
        ("PT15M", timedelta(minutes=15)),
        (3600, timedelta(hours=1)),
        (timedelta(days=2), timedelta(days=2)),
    ],
)
def test_durations_take_seconds_timedeltas_and_duration_strings(
    given: object, parsed: timedelta
) -> None:
    config = _backend({"RESULT_TTL": given, "LEASE": given}).config

    assert (config.result_ttl, config.lease) == (parsed, parsed)


def test_the_environment_takes_a_duration_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_TASKS_RESULT_TTL", "P7D")

    assert _backend({}).config.result_ttl == timedelta(days=7)


def test_result_ttl_none_keeps_results_forever() -> None:
    assert _backend({"RESULT_TTL": None}).config.result_ttl is None


def test_checks_report_missing_table_and_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SQS_TASKS_TABLE", "SQS_TASKS_QUEUE_PREFIX", "SQS_TASKS_QUEUE_URLS"):
        monkeypatch.delenv(name, raising=False)
    backend = _backend(
        {"QUEUE_URLS": {"default": "https://sqs.example/1/default"}}, ["default", "emails"]
    )

    errors = backend.check()

    assert [e.id for e in errors] == ["sqs_tasks.E001", "sqs_tasks.E002"]
    assert "'emails'" in errors[1].msg
    assert "QUEUE_NAME_PREFIX" in (errors[1].hint or "")
    assert [e.id for e in _backend({"TABLE_NAME": "t", "QUEUE_NAME_PREFIX": ""}, []).check()] == [
        "sqs_tasks.E003"
    ]


def test_unconfigured_table_fails_clearly_on_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQS_TASKS_TABLE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="has no results table"):
        _ = _backend({}).store


def test_making_a_client_leaves_the_defaults_alone() -> None:
    # botocore rewrites a Config's retries dict in place when it builds a client.
    _backend({"REGION_NAME": "eu-west-1"}).client("sqs")

    assert _backend({}).config.client_config.retries == {"mode": "standard", "max_attempts": 5}


def test_region_falls_back_to_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore reads only AWS_DEFAULT_REGION; ECS and other SDKs' runtimes set AWS_REGION.
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")

    assert _backend({}).client("sqs").meta.region_name == "eu-central-1"
    assert _backend({"REGION_NAME": "eu-west-1"}).client("sqs").meta.region_name == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert _backend({}).client("sqs").meta.region_name == "ap-south-1"
