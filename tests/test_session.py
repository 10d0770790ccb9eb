"""The backend's botocore session: botocore's data, loaded faster, for the backend's services."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore
import botocore.loaders
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import DataNotFoundError, UnknownServiceError
from botocore.regions import EndpointResolver

from sqs_tasks.aws import session as session_module
from sqs_tasks.aws.session import (
    ENV_FAST_LOADER,
    SERVICES,
    TRIMMED_SERVICES,
    ServicesLoader,
    loader_mismatches,
    new_session,
    trimmed_endpoints,
    write_endpoints,
)

TYPES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2")
SHARED = ("endpoints", "partitions", "sdk-default-configuration", "_retry")
# A call per service that needs no parameters, to see where its request would go.
CALLS: dict[str, Callable[[Any], Any]] = {
    "dynamodb": lambda client: client.describe_limits(),
    "scheduler": lambda client: client.list_schedule_groups(),
    "sqs": lambda client: client.list_queues(),
}
REGIONS = ("us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1")


@pytest.fixture(autouse=True)
def trimmed_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where these tests' builds write trimmed endpoints (none unless a test writes them)."""
    directory = tmp_path / "botocore_data"
    monkeypatch.setattr(session_module, "TRIMMED_DIR", directory)
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    yield directory


def _load(loader: Any, service: str, type_name: str) -> Any:
    try:
        return loader.load_service_model(service, type_name)
    except DataNotFoundError as e:
        return type(e)


def _loader() -> Any:
    return new_session().get_component("data_loader")


def _resolved(resolver: EndpointResolver, service: str, region: str, kwargs: Any) -> Any:
    """The endpoint the resolver constructs, or the error it raises, as comparable data."""
    try:
        return resolver.construct_endpoint(service, region, **kwargs)
    except Exception as e:
        return (type(e), str(e))


class Sent(Exception):
    """Raised in place of sending a request: its URL."""


def _url(client: Any, service: str) -> str:
    """Where the client would send its request, found without sending it."""

    def stop(request: Any, **kwargs: Any) -> None:
        raise Sent(request.url)

    client.meta.events.register("before-send", stop)
    with pytest.raises(Sent) as sent:
        CALLS[service](client)
    return str(sent.value)


def test_the_session_loads_what_botocore_loads_as_plain_dicts() -> None:
    ours = _loader()
    stock = botocore.session.get_session().get_component("data_loader")
    for service in SERVICES:
        for type_name in TYPES:
            assert _load(ours, service, type_name) == _load(stock, service, type_name)
    for name in SHARED:
        assert ours.load_data(name) == stock.load_data(name)
    model = ours.load_service_model("dynamodb", "service-2")
    assert type(model) is dict and type(model["shapes"]) is dict


def test_a_client_is_made_without_listing_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []
    listdir = os.listdir

    def spy(path: Any = ".") -> list[str]:
        listed.append(str(path))
        return listdir(path)

    monkeypatch.setattr(botocore.loaders.os, "listdir", spy)
    data = botocore.loaders.Loader.BUILTIN_DATA_PATH

    botocore.session.get_session().create_client("dynamodb", region_name="us-east-1")
    assert data in listed  # botocore's own loader lists every service it ships
    listed.clear()
    new_session().create_client("dynamodb", region_name="us-east-1")
    assert listed and data not in listed
    assert {Path(path).relative_to(data).parts[0] for path in listed} <= set(SERVICES)


def test_other_services_are_found_as_botocore_finds_them() -> None:
    ours = new_session().create_client("s3", region_name="eu-west-1")
    assert ours.meta.service_model.service_name == "s3"
    with pytest.raises(UnknownServiceError) as caught:
        new_session().create_client("no-such-service", region_name="us-east-1")
    assert "'no-such-service'" in str(caught.value) and "dynamodb" in str(caught.value)


@pytest.mark.parametrize("trimmed", [False, True])
def test_a_web_identity_role_is_assumed_through_sts(
    trimmed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if trimmed:
        write_endpoints()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "token").write_text("a-web-identity-token")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/worker")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
    sent = []
    for session in (new_session(), botocore.session.get_session()):

        def stop(request: Any, **kwargs: Any) -> None:
            raise Sent(request.url)

        session.register("before-send", stop)
        client = session.create_client("dynamodb", region_name="eu-west-1")
        with pytest.raises(Sent) as caught:
            client.describe_limits()
        sent.append(str(caught.value))
    assert sent[0] == sent[1]
    assert "sts" in sent[0]


def test_aws_data_path_is_searched_before_botocore_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "_retry.json").write_text('{"definitions": {}, "retry": {"marker": 1}}')
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loaded = _loader().load_data("_retry")
    assert loaded["retry"] == {"marker": 1}


def test_trimmed_endpoints_keep_every_partition_and_resolve_as_botocore_does() -> None:
    path = write_endpoints()
    assert path.name.startswith(f"endpoints-{botocore.__version__}-")
    full = botocore.loaders.Loader().load_data("endpoints")
    trimmed = _loader().load_data("endpoints")
    assert len(trimmed["partitions"]) == len(full["partitions"])
    for whole, cut in zip(full["partitions"], trimmed["partitions"], strict=True):
        assert set(cut["services"]) == set(TRIMMED_SERVICES) & set(whole["services"])
        assert {**whole, "services": None} == {**cut, "services": None}
    ours, stock = EndpointResolver(trimmed, True), EndpointResolver(full, True)
    for partition in full["partitions"]:
        for region in partition["regions"]:
            for service in TRIMMED_SERVICES:
                for fips in (False, True):
                    for dual in (False, True):
                        kwargs = {"use_fips_endpoint": fips, "use_dualstack_endpoint": dual}
                        assert _resolved(ours, service, region, kwargs) == _resolved(
                            stock, service, region, kwargs
                        ), (service, region, kwargs)


def test_clients_with_trimmed_endpoints_send_where_botocore_clients_send() -> None:
    write_endpoints()
    assert _loader().trimmed == trimmed_endpoints()
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    for service in SERVICES:
        for region in REGIONS:
            for config in (None, Config(use_fips_endpoint=True)):
                ours = new_session().create_client(service, region, config=config, **keys)
                stock = botocore.session.get_session().create_client(
                    service, region, config=config, **keys
                )
                assert _url(ours, service) == _url(stock, service)
                assert ours.meta.partition == stock.meta.partition


def test_trimmed_endpoints_of_another_botocore_or_over_the_users_own_are_not_read(
    trimmed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trimmed_dir.mkdir()
    (trimmed_dir / "endpoints-0.0.1-3ddf7dd9.json").write_text('{"partitions": []}')
    assert _loader().trimmed is None
    assert "s3" in _loader().load_data("endpoints")["partitions"][0]["services"]

    write_endpoints()
    user_data = tmp_path / "user-data"
    user_data.mkdir()
    monkeypatch.setenv("AWS_DATA_PATH", str(user_data))
    assert _loader().trimmed == trimmed_endpoints()  # AWS_DATA_PATH holds no endpoints
    (user_data / "endpoints.json").write_text('{"partitions": [], "version": 3}')
    assert _loader().trimmed is None
    assert _loader().load_data("endpoints") == {"partitions": [], "version": 3}


def test_the_installed_botocore_has_every_loader_method_the_session_overrides() -> None:
    assert loader_mismatches() == []


def test_a_changed_botocore_loader_falls_back_to_botocore_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = botocore.loaders.Loader.load_data_with_path

    def changed(self: Any, name: str, variant: str | None = None) -> Any:
        return original(self, name)

    monkeypatch.setattr(botocore.loaders.Loader, "load_data_with_path", changed)

    session = new_session()

    assert not isinstance(session.get_component("data_loader"), ServicesLoader)
    assert "load_data_with_path" in caplog.text
    assert session.create_client("sqs", region_name="us-east-1").meta.service_model


def test_the_fast_loader_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FAST_LOADER, "0")

    assert not isinstance(new_session().get_component("data_loader"), ServicesLoader)
