"""The backend's botocore session: botocore's data, loaded faster, for the backend's services."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import DataNotFoundError, UnknownServiceError

from sqs_tasks.session import SERVICES, new_session

TYPES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2")
SHARED = ("endpoints", "partitions", "sdk-default-configuration", "_retry")


def _load(loader: Any, service: str, type_name: str) -> Any:
    try:
        return loader.load_service_model(service, type_name)
    except DataNotFoundError as e:
        return type(e)


def test_the_session_loads_what_botocore_loads_as_plain_dicts() -> None:
    ours = new_session().get_component("data_loader")
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


def test_a_service_the_backend_does_not_call_is_refused_by_name() -> None:
    with pytest.raises(UnknownServiceError) as caught:
        new_session().create_client("s3", region_name="us-east-1")
    assert "'s3'" in str(caught.value)
    assert "dynamodb, scheduler, sqs" in str(caught.value)


def test_aws_data_path_is_searched_before_botocore_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "_retry.json").write_text('{"definitions": {}, "retry": {"marker": 1}}')
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loaded = new_session().get_component("data_loader").load_data("_retry")
    assert loaded["retry"] == {"marker": 1}
