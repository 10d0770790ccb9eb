"""The backend's botocore session: botocore's own, with a data loader made for cold starts."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore
import botocore.session
from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader, create_loader

# The services the backend's clients call: DynamoDB results, SQS queues, Scheduler delays.
SERVICES = ("dynamodb", "scheduler", "sqs")

# Where the Lambda build writes botocore's endpoints trimmed to SERVICES (write_endpoints).
TRIMMED_DIR = Path(__file__).with_name("_botocore_data")

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
    ships: over 400 directories and some 2,800 stat calls, about 10 ms of a cold start. And
    where the build left botocore's endpoints trimmed to SERVICES, it reads those 17 KB
    rather than the 1.2 MB endpoints.json (another 8 ms).
    """

    def __init__(self, *args: Any, trimmed: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trimmed = trimmed

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

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        """botocore's data called name, and the file it came from."""
        if name == "endpoints" and self.trimmed is not None:
            return json.loads(self.trimmed.read_bytes()), str(self.trimmed)
        found: tuple[Any, str] = super().load_data_with_path(name)
        return found

    def is_builtin_path(self, path: str) -> bool:
        """Whether path holds botocore's own data, as the trimmed endpoints do.

        botocore resolves endpoints differently for data of its users' own making.
        """
        return path == str(self.trimmed) or bool(super().is_builtin_path(path))


def trimmed_endpoints(directory: Path | None = None) -> Path:
    """Where write_endpoints() puts the endpoints of this version of botocore."""
    return (directory or TRIMMED_DIR) / f"endpoints-{botocore.__version__}.json"


def write_endpoints(directory: Path | None = None) -> Path:
    """Write botocore's endpoints, every partition kept whole but its services cut to SERVICES."""
    data = Loader().load_data("endpoints")
    for partition in data["partitions"]:
        partition["services"] = {
            name: service for name, service in partition["services"].items() if name in SERVICES
        }
    path = trimmed_endpoints(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))
    return path


def new_session() -> botocore.session.Session:
    """A botocore session whose clients for SERVICES start faster; AWS_DATA_PATH still counts."""
    session = botocore.session.get_session()
    data_path = session.get_config_variable("data_path")
    trimmed = trimmed_endpoints()
    loader = ServicesLoader(
        extra_search_paths=list(create_loader(data_path).search_paths),
        file_loader=PlainJSONFileLoader(),
        include_default_search_paths=False,
        # Endpoints of the botocore that runs, unless AWS_DATA_PATH may hold the user's own.
        trimmed=trimmed if data_path is None and trimmed.is_file() else None,
    )
    session.register_component("data_loader", loader)
    return session


if __name__ == "__main__":
    # python -m sqs_tasks.session [DIRECTORY]: what infra/worker/Makefile runs in the package.
    print(write_endpoints(*(Path(arg) for arg in sys.argv[1:2])))
