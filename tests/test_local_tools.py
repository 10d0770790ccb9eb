"""Where `sqs-tasks local` finds the sam tools, and what it installs when it finds none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqs_tasks.local import tools
from sqs_tasks.local.tools import SamTools, ToolsMissing

REPO = Path(__file__).resolve().parents[1]


def fake_venv(path: Path) -> Path:
    """A folder that looks like a venv with the sam tools."""
    (path / "bin").mkdir(parents=True)
    for name in ("sam", "python"):
        (path / "bin" / name).write_text("")
    return path


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No configured venv, no sam on PATH, an empty per-user cache."""
    monkeypatch.delenv(tools.ENV_SAM_VENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "project").mkdir()
    return tmp_path / "project"


def test_the_pins_installed_are_bin_envs() -> None:
    env = (REPO / "bin" / "_env").read_text()
    assert f"SAM_CLI_VERSION={tools.SAM_CLI_VERSION}\n" in env
    assert f"SAM_TRANSLATOR_VERSION={tools.SAM_TRANSLATOR_VERSION}\n" in env


def test_without_tools_the_error_names_every_place_looked(nowhere: Path) -> None:
    with pytest.raises(ToolsMissing) as raised:
        SamTools.find(nowhere)
    message = str(raised.value)
    for place in (tools.ENV_SAM_VENV, str(nowhere / ".venv-sam"), "`sam` on PATH"):
        assert place in message
    assert str(tools.sam_cache_dir()) in message


def test_the_per_user_cache_is_used_once_made(nowhere: Path) -> None:
    cache = fake_venv(tools.sam_cache_dir())
    assert re.fullmatch(r"sam-[0-9.]+", cache.name)
    with pytest.raises(ToolsMissing):  # Not complete until its marker is written.
        SamTools.find(nowhere)
    (cache / tools.MARKER).write_text("sam=...")
    assert SamTools.find(nowhere).venv == cache


def test_a_pip_installed_sam_on_path_is_used(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = fake_venv(tmp_path / "pipx" / "aws-sam-cli")
    (venv / "bin" / "sam").chmod(0o755)
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "sam").symlink_to(venv / "bin" / "sam")
    monkeypatch.setenv("PATH", str(on_path))
    assert SamTools.find(nowhere).venv == venv


def test_a_configured_venv_wins_and_must_be_complete(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_venv(tools.sam_cache_dir()) / tools.MARKER).write_text("sam=...")
    configured = fake_venv(tmp_path / "mine")
    monkeypatch.setenv(tools.ENV_SAM_VENV, str(configured))
    assert SamTools.find(nowhere).venv == configured
    (configured / "bin" / "sam").unlink()
    with pytest.raises(ToolsMissing, match="is not a venv with aws-sam-cli"):
        SamTools.find(nowhere)


@pytest.mark.parametrize("git", [False, True])
def test_the_build_fingerprint_skips_what_changes_without_a_rebuild_due(
    tmp_path: Path, git: bool
) -> None:
    import subprocess

    from sqs_tasks.local.build import project_files

    files = [
        "manage.py",
        "shop/tasks.py",
        "requirements.txt",
        ".env.local",
        "db.sqlite3",
        "shop/__pycache__/tasks.cpython-313.pyc",
        "venv/pyvenv.cfg",
        "venv/lib/site.py",
        "node_modules/x.js",
        ".aws-sam/local/run.log",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    if git:
        (tmp_path / ".gitignore").write_text("venv/\nnode_modules/\n.aws-sam/\n__pycache__/\n")
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    found = {str(p.relative_to(tmp_path)) for p in project_files(tmp_path)}
    assert found - {".gitignore"} == {"manage.py", "shop/tasks.py", "requirements.txt"}
