"""Render the SAM stack (template.yaml, infra/, samconfig.toml) for a Django project.

The sources in `sources/` are the stack itself with three placeholders: the settings module,
the project's packages, and its requirements file. Every rendered file starts with a header
that records the digest of what follows, so an edited file is told from one merely out of
date. Imports neither Django nor boto3.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

SOURCES = Path(__file__).with_name("sources")
# What is rendered, relative to the project's root (and to SOURCES).
FILES = (
    "template.yaml",
    "infra/queue.yaml",
    "infra/results-table.yaml",
    "infra/worker/Makefile",
    "samconfig.toml",
)
# Make text: every top-level package of the project, found when `sam build` runs, so that
# a new app is packaged without running init again.
DISCOVERED_PACKAGES = (
    "$(sort $(patsubst $(ROOT)/%/__init__.py,%,$(wildcard $(ROOT)/*/__init__.py)))"
)
HEADER = (
    "# Written by `sqs-tasks init` for {settings}. Edit freely: `sqs-tasks init --check` "
    "tells an edited file from an outdated one. sha256:{digest}\n"
)
HEADER_PATTERN = re.compile(r"# Written by `sqs-tasks init` .* sha256:([0-9a-f]{64})\n")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class Status(StrEnum):
    """How a file on disk compares with what would be rendered now."""

    CURRENT = "up to date"
    MISSING = "missing"
    OUTDATED = "out of date (not edited: init rewrites it)"
    EDITED = "edited since init wrote it (init --force replaces it)"
    FOREIGN = "not written by init (init --force replaces it)"


class ProjectError(ValueError):
    """The project cannot be rendered for; the message says why and what to do."""


@dataclass(frozen=True)
class Project:
    """What the stack is rendered for."""

    root: Path
    settings_module: str
    # Top-level packages copied into the code package; None: all of them, found at build time.
    packages: tuple[str, ...] | None = None
    # The requirements file pip installs for the runtime, relative to root.
    requirements: str = "requirements.txt"

    @classmethod
    def detect(cls, root: Path, settings_module: str | None = None) -> Project:
        """The project at root: its settings (from manage.py unless given), checked."""
        root = root.resolve()
        checkout = (root / "sqs_tasks" / "__init__.py").is_file()
        if settings_module is None and checkout and not (root / "manage.py").exists():
            settings_module = "example.settings"
        settings = settings_module or settings_from_manage_py(root)
        if not MODULE_NAME.fullmatch(settings):
            raise ProjectError(f"{settings!r} is not a module name (e.g. mysite.settings)")
        relative = Path(*settings.split("."))
        if not (
            (root / relative).with_suffix(".py").is_file()
            or (root / relative / "__init__.py").is_file()
        ):
            raise ProjectError(
                f"settings module {settings} not found in {root} "
                f"(no {relative}.py nor {relative}/__init__.py); give it with --settings"
            )
        if checkout:
            return cls.checkout(root, settings)
        project = cls(root, settings)
        if not (root / project.requirements).is_file():
            raise ProjectError(
                f"no {project.requirements} in {root}: the Lambda package is built from it. "
                "Write one naming your project's dependencies, sqs-tasks among them "
                "(e.g. pip freeze > requirements.txt)"
            )
        return project

    @classmethod
    def checkout(cls, root: Path, settings_module: str = "example.settings") -> Project:
        """sqs-tasks' own repository: sqs-tasks from source, its pinned dependencies."""
        top = settings_module.split(".")[0]
        return cls(
            root.resolve(),
            settings_module,
            packages=("sqs_tasks", "lambda_handler", top),
            requirements="infra/worker/requirements.txt",
        )

    def values(self) -> dict[str, str]:
        """The placeholders' values."""
        packages = " ".join(self.packages) if self.packages is not None else DISCOVERED_PACKAGES
        return {
            "settings_module": self.settings_module,
            "packages": packages,
            "requirements": self.requirements,
        }


def settings_from_manage_py(root: Path) -> str:
    """The DJANGO_SETTINGS_MODULE that root/manage.py sets by default."""
    manage = root / "manage.py"
    if not manage.is_file():
        raise ProjectError(
            f"no manage.py in {root}: run this in your Django project's root, or give --settings"
        )
    for node in ast.walk(ast.parse(manage.read_text(), str(manage))):
        if (
            isinstance(node, ast.Call)
            and len(node.args) == 2
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
            and node.args[0].value == "DJANGO_SETTINGS_MODULE"  # type: ignore[attr-defined]
        ):
            value: str = node.args[1].value  # type: ignore[attr-defined]
            return value
    raise ProjectError(f"{manage} sets no DJANGO_SETTINGS_MODULE: give it with --settings")


def render_file(name: str, project: Project) -> str:
    """One file as init writes it: the header, then the source with its placeholders filled."""
    values = project.values()

    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)]

    body = PLACEHOLDER.sub(fill, (SOURCES / name).read_text())
    return HEADER.format(settings=project.settings_module, digest=digest(body)) + body


def render(project: Project) -> dict[str, str]:
    """Every file, by its path relative to the project's root."""
    return {name: render_file(name, project) for name in FILES}


def digest(body: str) -> str:
    """What the header records of the text below it."""
    return hashlib.sha256(body.encode()).hexdigest()


def status(path: Path, wanted: str) -> Status:
    """How the file at path compares with wanted (its rendering now)."""
    if not path.is_file():
        return Status.MISSING
    text = path.read_text()
    if text == wanted:
        return Status.CURRENT
    first, _, body = text.partition("\n")
    match = HEADER_PATTERN.fullmatch(first + "\n")
    if not match:
        return Status.FOREIGN
    return Status.OUTDATED if digest(body) == match.group(1) else Status.EDITED


def statuses(project: Project) -> dict[str, Status]:
    """The status of each rendered file of the project."""
    return {name: status(project.root / name, text) for name, text in render(project).items()}


def write(project: Project, *, force: bool = False) -> dict[str, Status]:
    """Write what is missing or out of date (and, with force, what was edited).

    Returns each file's status before writing; with an edited or foreign file and no force,
    ProjectError, and nothing is written.
    """
    rendered = render(project)
    found = {name: status(project.root / name, text) for name, text in rendered.items()}
    kept = [n for n, s in found.items() if s in (Status.EDITED, Status.FOREIGN)]
    if kept and not force:
        raise ProjectError(
            "not overwriting, as they were changed since init wrote them (or not written by it): "
            + ", ".join(kept)
            + "; keep your changes elsewhere and run again with --force"
        )
    for name, text in rendered.items():
        if found[name] is not Status.CURRENT:
            path = project.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return found
