"""The options of `sqs-tasks local`: the repository's demo, or the project it is run in."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sqs_tasks.local.options import Options, add_arguments

REPO = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> Options:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return Options.parse(parser.parse_args(argv))


def test_in_the_repository_the_demo_runs_on_two_queues() -> None:
    options = parse("--template", str(REPO / "template.yaml"))
    assert options.demo
    assert options.parameters["QueueNames"] == "default,emails"


def test_in_a_project_the_templates_queues_and_a_smoke_check(tmp_path: Path) -> None:
    options = parse("--template", str(tmp_path / "template.yaml"))
    assert not options.demo
    assert "QueueNames" not in options.parameters  # The template's default: "default".
    assert options.parameters["Prefix"] == "local"
    assert "DjangoSecretKey" not in options.parameters  # The stack signs with a secret.
    extra = parse("--template", str(tmp_path / "t.yaml"), "--parameter", "QueueNames=default,mail")
    assert extra.parameters["QueueNames"] == "default,mail"


def test_env_file_needs_keep_running(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="add --keep-running"):
        parse("--template", str(tmp_path / "t.yaml"), "--env-file", str(tmp_path / "env"))
    options = parse(
        "--template", str(tmp_path / "t.yaml"), "--keep-running", "--env-file", "local.env"
    )
    assert options.env_file == Path("local.env").resolve()


def test_the_load_needs_the_demo(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="add --demo"):
        parse("--template", str(tmp_path / "t.yaml"), "--tasks", "10")
    assert parse("--template", str(tmp_path / "t.yaml"), "--tasks", "10", "--demo").tasks == 10
