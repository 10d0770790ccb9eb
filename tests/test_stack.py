"""`sqs-tasks init`: the stack rendered for a project, and the repository's own stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqs_tasks.cli import main
from sqs_tasks.stack.generate import FILES, Project, ProjectError, Status, render, statuses

REPO = Path(__file__).resolve().parents[1]

MANAGE_PY = """#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The layout `django-admin startproject mysite .` makes, an app, a requirements.txt."""
    (tmp_path / "manage.py").write_text(MANAGE_PY)
    for package in ("mysite", "shop"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "mysite" / "settings.py").write_text("SECRET_KEY = 'x'\n")
    (tmp_path / "requirements.txt").write_text("sqs-tasks\n")
    return tmp_path


def init(project: Path, *args: str) -> int:
    return main(["init", "--project", str(project), *args])


def test_the_repositorys_stack_is_the_generators_output_for_the_example() -> None:
    """Root template.yaml, infra/ and samconfig.toml are what init writes for example/."""
    project = Project.detect(REPO)
    assert project == Project.checkout(REPO)
    for name, text in render(project).items():
        assert (REPO / name).read_text() == text, (
            f"{name} differs from the sources in sqs_tasks/stack/sources: edit those and "
            "run `sqs-tasks init --force` in the repository's root"
        )


def test_init_renders_the_project_its_settings_and_requirements(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(project) == 0
    template = (project / "template.yaml").read_text()
    assert "DJANGO_SETTINGS_MODULE: mysite.settings\n" in template
    assert "example" not in template
    makefile = (project / "infra" / "worker" / "Makefile").read_text()
    assert "REQUIREMENTS := $(ROOT)/requirements.txt\n" in makefile
    # The packages are found when sam build runs: a new app needs no second init.
    assert "PACKAGES := $(sort $(patsubst $(ROOT)/%/__init__.py" in makefile
    assert "sqs_tasks lambda_handler" not in makefile
    assert {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()} >= set(FILES)
    assert "sam build && sam deploy --guided" in capsys.readouterr().out
    assert init(project, "--check") == 0


def test_settings_option_overrides_manage_py(project: Path) -> None:
    (project / "mysite" / "production.py").write_text("")
    assert init(project, "--settings", "mysite.production") == 0
    assert "DJANGO_SETTINGS_MODULE: mysite.production\n" in (project / "template.yaml").read_text()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: (p / "manage.py").unlink(), "no manage.py in"),
        (lambda p: (p / "requirements.txt").unlink(), "no requirements.txt in"),
        (lambda p: (p / "mysite" / "settings.py").unlink(), "settings module mysite.settings"),
    ],
)
def test_a_project_init_cannot_render_for_is_refused_with_the_reason(
    project: Path, change: object, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    change(project)  # type: ignore[operator]
    assert init(project) == 2
    assert says in capsys.readouterr().err
    assert not (project / "template.yaml").exists()


def test_an_edited_file_is_kept_unless_forced(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(project) == 0
    template = project / "template.yaml"
    edited = template.read_text().replace("MemorySize: !Ref", "MemorySize: 1024 # !Ref")
    template.write_text(edited)
    (project / "samconfig.toml").unlink()
    capsys.readouterr()

    assert init(project, "--check") == 1
    out, err = capsys.readouterr()
    assert f"template.yaml             {Status.EDITED}" in out
    assert f"samconfig.toml            {Status.MISSING}" in out
    assert "run sqs-tasks init --force" in err

    assert init(project) == 2
    assert "not overwriting" in capsys.readouterr().err
    assert template.read_text() == edited
    assert not (project / "samconfig.toml").exists()  # Nothing written at all.

    assert init(project, "--force") == 0
    assert init(project, "--check") == 0


def test_an_outdated_file_not_edited_is_rewritten_without_force(project: Path) -> None:
    """A file from an older sqs-tasks (its header matches its body) is simply replaced."""
    assert init(project) == 0
    queue = project / "infra" / "queue.yaml"
    body = "# the queue of an older sqs-tasks\n"
    from sqs_tasks.stack.generate import HEADER, digest

    queue.write_text(HEADER.format(settings="mysite.settings", digest=digest(body)) + body)
    assert statuses(Project.detect(project))["infra/queue.yaml"] is Status.OUTDATED
    assert init(project) == 0
    assert statuses(Project.detect(project))["infra/queue.yaml"] is Status.CURRENT


def test_a_template_not_written_by_init_is_not_overwritten(project: Path) -> None:
    (project / "template.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\n")
    assert init(project) == 2
    assert statuses(Project.detect(project))["template.yaml"] is Status.FOREIGN


def test_settings_must_be_a_module_name(project: Path) -> None:
    with pytest.raises(ProjectError, match="not a module name"):
        Project.detect(project, "mysite/settings.py")
