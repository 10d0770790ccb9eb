"""The backend's botocore session: botocore's own, with a data loader made for cold starts."""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import logging
import os
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
# And those botocore's credential providers call on the same session (assume role, web
# identity, SSO, `aws login`): the trimmed endpoints must resolve them too.
CREDENTIAL_SERVICES = ("signin", "sso", "sso-oidc", "sts")
TRIMMED_SERVICES = SERVICES + CREDENTIAL_SERVICES

# Where the Lambda build writes botocore's endpoints trimmed to TRIMMED_SERVICES.
TRIMMED_DIR = Path(__file__).with_name("_botocore_data")

# Set to "0" to use botocore's own data loader (and its whole endpoints file) instead.
ENV_FAST_LOADER = "SQS_TASKS_FAST_BOTOCORE_LOADER"

logger = logging.getLogger("sqs_tasks.session")

# The suffixes botocore's data files come in, in the order botocore tries them.
_OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = ((".json", open), (".json.gz", gzip.open))


class PlainJSONFileLoader(JSONFileLoader):
    """botocore's JSON file loader, reading into dicts: OrderedDicts double the parse time."""

    def load_file(self, file_path: str) -> Any:
        """The data of file_path plus the first suffix that exists, or None."""
        for suffix, opener in _OPENERS:
            try:
                with opener(file_path + suffix, "rb") as f:
                    return json.loads(f.read())
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
        return None


class ServicesLoader(Loader):
    """botocore's data loader, quick to find SERVICES and, if built, the trimmed endpoints."""

    def __init__(self, *args: Any, trimmed: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trimmed = trimmed
        # Other services (STS for an assumed role, say) are checked as botocore checks them.
        self._botocore = Loader(
            extra_search_paths=list(self.search_paths),
            file_loader=self.file_loader,
            include_default_search_paths=False,
        )

    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        """The model of type_name (service-2, endpoint-rule-set-1, ...) of service_name."""
        if service_name not in SERVICES:
            return self._botocore.load_service_model(service_name, type_name, api_version)
        return super().load_service_model(service_name, type_name, api_version)

    def list_available_services(self, type_name: str) -> list[str]:
        """SERVICES that have type_name data, the only services load_service_model asks for."""
        # botocore lists every service it ships here: over 400 directories and some 2,800
        # stat calls, about 10 ms of a cold start.
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
            # 21 KB to parse rather than 1.2 MB: about 8 ms of a cold start.
            return json.loads(self.trimmed.read_bytes()), str(self.trimmed)
        found: tuple[Any, str] = super().load_data_with_path(name)
        return found

    def is_builtin_path(self, path: str) -> bool:
        """Whether path holds botocore's own data, as the trimmed endpoints do."""
        # botocore resolves endpoints differently from data of its users' own making.
        if self.trimmed is not None and path == str(self.trimmed):
            return True
        return bool(super().is_builtin_path(path))


def trimmed_endpoints(directory: Path | None = None) -> Path:
    """Where write_endpoints() puts the endpoints of this botocore for TRIMMED_SERVICES."""
    services = hashlib.sha256(",".join(TRIMMED_SERVICES).encode()).hexdigest()[:8]
    return (directory or TRIMMED_DIR) / f"endpoints-{botocore.__version__}-{services}.json"


def write_endpoints(directory: Path | None = None) -> Path:
    """Write botocore's endpoints with every partition whole but its services trimmed."""
    # botocore's own data only: not the endpoints of whoever runs the build.
    builtin = Loader(
        extra_search_paths=[Loader.BUILTIN_DATA_PATH], include_default_search_paths=False
    )
    data = builtin.load_data("endpoints")
    for partition in data["partitions"]:
        services = partition["services"]
        partition["services"] = {
            name: services[name] for name in TRIMMED_SERVICES if name in services
        }
    path = trimmed_endpoints(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))
    return path


def _own_endpoints(search_paths: list[str]) -> bool:
    """Whether a search path besides botocore's holds endpoints of the user's own making."""
    return any(
        os.path.isfile(os.path.join(path, "endpoints" + suffix))
        for path in search_paths
        if path != Loader.BUILTIN_DATA_PATH
        for suffix, _ in _OPENERS
    )


# The botocore Loader methods ServicesLoader overrides, with the parameters it relies on.
OVERRIDDEN = {
    "load_service_model": ("self", "service_name", "type_name", "api_version"),
    "list_available_services": ("self", "type_name"),
    "load_data_with_path": ("self", "name"),
    "is_builtin_path": ("self", "path"),
    "list_api_versions": ("self", "service_name", "type_name"),
}


def loader_mismatches() -> list[str]:
    """The overridden botocore Loader methods whose signature is not what ServicesLoader expects."""
    found = []
    for name, expected in OVERRIDDEN.items():
        method = getattr(Loader, name, None)
        if method is None:
            found.append(f"botocore.loaders.Loader.{name} is gone")
            continue
        # botocore's @instance_cache wraps without functools.wraps: read the function it holds.
        wrapped = inspect.getclosurevars(method).nonlocals.get("func", method)
        parameters = tuple(inspect.signature(wrapped).parameters)
        if parameters != expected:
            found.append(f"botocore.loaders.Loader.{name}{parameters} is not {expected}")
    return found


def new_session() -> botocore.session.Session:
    """A botocore session whose clients for SERVICES start faster; AWS_DATA_PATH still counts."""
    session = botocore.session.get_session()
    if os.environ.get(ENV_FAST_LOADER, "1") == "0":
        return session
    mismatches = loader_mismatches()
    if mismatches:
        # Clients still work with botocore's own loader, only a little slower to make.
        logger.warning(
            "botocore %s changed what sqs_tasks' data loader overrides (%s): using botocore's "
            "own loader; upgrade sqs-tasks or set %s=0 to silence this.",
            botocore.__version__,
            "; ".join(mismatches),
            ENV_FAST_LOADER,
        )
        return session
    search_paths = list(create_loader(session.get_config_variable("data_path")).search_paths)
    trimmed: Path | None = trimmed_endpoints()
    if not (trimmed and trimmed.is_file()) or _own_endpoints(search_paths):
        trimmed = None
    loader = ServicesLoader(
        extra_search_paths=search_paths,
        file_loader=PlainJSONFileLoader(),
        include_default_search_paths=False,
        trimmed=trimmed,
    )
    session.register_component("data_loader", loader)
    return session


if __name__ == "__main__":
    # python -m sqs_tasks.aws.session [DIRECTORY]: what infra/worker/Makefile runs in the package.
    print(write_endpoints(*(Path(arg) for arg in sys.argv[1:2])))
