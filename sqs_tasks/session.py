"""The backend's botocore session: botocore's own, with a data loader made for cold starts."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader, create_loader

# The services the backend's clients call: DynamoDB results, SQS queues, Scheduler delays.
SERVICES = ("dynamodb", "scheduler", "sqs")

# The suffixes botocore's data files come in, in the order botocore tries them.
_OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = ((".json", open), (".json.gz", gzip.open))


class PlainJSONFileLoader(JSONFileLoader):
    """botocore's JSON file loader, reading into plain dicts.

    botocore asks json for OrderedDicts, which doubles the parse of the 1.2 MB endpoints.json
    every client needs (about 8 ms of a cold start); a dict keeps its order as well.
    """

    def load_file(self, file_path: str) -> Any:
        """The data of file_path plus the first suffix that exists, or None."""
        for suffix, opener in _OPENERS:
            try:
                with opener(file_path + suffix, "rb") as f:
                    return json.loads(f.read())
            except (FileNotFoundError, IsADirectoryError):
                continue
        return None


class ServicesLoader(Loader):
    """botocore's data loader, aware that SERVICES are the only services asked for.

    Before it loads a model, botocore checks the service exists by listing every service it
    ships: over 400 directories and some 2,800 stat calls, about 10 ms of a cold start.
    """

    def list_available_services(self, type_name: str) -> list[str]:
        """SERVICES that have type_name data (a service-2 model, an endpoint rule set)."""
        found = []
        for service in SERVICES:
            try:
                self.list_api_versions(service, type_name)  # One directory each.
            except DataNotFoundError:
                continue
            found.append(service)
        return found


def new_session() -> botocore.session.Session:
    """A botocore session whose clients for SERVICES start faster; AWS_DATA_PATH still counts."""
    session = botocore.session.get_session()
    default = create_loader(session.get_config_variable("data_path"))
    loader = ServicesLoader(
        extra_search_paths=list(default.search_paths),
        file_loader=PlainJSONFileLoader(),
        include_default_search_paths=False,
    )
    session.register_component("data_loader", loader)
    return session
