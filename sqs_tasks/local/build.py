"""Step 1 of the deploy pipeline: `sam build`, reused while no file of the project changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .tools import REGION, Log, SamTools, locked, run_tool, since

# Files in the build directory that say what it was built from.
FINGERPRINT_FILE = ".sqs-tasks-fingerprint"
SKIPPED_FOLDERS = {"__pycache__", "node_modules"}
# Bytecode, the SQLite database of a fresh project, logs: they change without a rebuild due.
SKIPPED_SUFFIXES = (".pyc", ".sqlite3", ".sqlite3-journal", ".log")


def project_files(project: Path) -> list[Path]:
    """The project's files as git sees them (tracked or not ignored), else every file."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(project), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        names = sorted({n for n in listed.split("\0") if n})
    except (OSError, subprocess.SubprocessError):
        names = sorted(_walk(project))
    return [project / n for n in names if not _skipped(Path(n).name) and (project / n).is_file()]


def _skipped(name: str) -> bool:
    """Files that change without a rebuild due: bytecode, SQLite, logs, env files."""
    return name.endswith(SKIPPED_SUFFIXES) or name.startswith(".env")


def _walk(project: Path) -> Iterator[str]:
    """The files of a project that is no git work tree, without what is not its source."""
    for folder, dirs, files in os.walk(project):
        here = Path(folder)
        # Hidden folders (.aws-sam, .git), bytecode, virtualenvs and node_modules.
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIPPED_FOLDERS
            and not (here / d / "pyvenv.cfg").exists()
        ]
        for name in files:
            if not name.startswith("."):
                yield str((here / name).relative_to(project))


def fingerprint(template: Path, tools: SamTools) -> str:
    """A digest of what `sam build` reads: the project's files and the tool versions."""
    digest = hashlib.sha256()
    digest.update(f"{template.name}\0{tools.version()}\0".encode())
    project = template.parent
    for path in project_files(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build(
    template: Path,
    build_dir: Path,
    tools: SamTools,
    *,
    region: str = REGION,
    reuse: bool = True,
    log: Log | None = None,
) -> Path:
    """`sam build` of template into build_dir; returns the built template.

    With reuse, a build made from the same project files and tools is kept as it is.
    """
    say = log or (lambda _: None)
    template, build_dir = template.resolve(), build_dir.resolve()
    with locked(build_dir.with_name(build_dir.name + ".lock")):
        wanted = fingerprint(template, tools) if reuse else ""
        stamp = build_dir / FINGERPRINT_FILE
        built = build_dir / "template.yaml"
        if reuse and built.exists() and stamp.exists() and stamp.read_text() == wanted:
            say(f"sam build: reused {build_dir} (no project file changed)")
            return built
        started = time.monotonic()
        scratch = build_dir.with_name(f"{build_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        run_tool(
            [
                tools.sam,
                "build",
                "--template-file",
                template,
                "--build-dir",
                scratch,
                "--parallel",
            ],
            cwd=template.parent,
            env=tools.env(region),
            what="sam build",
        )
        shutil.rmtree(build_dir, ignore_errors=True)
        scratch.rename(build_dir)
        if reuse:
            stamp.write_text(wanted)
        say(f"sam build: built {build_dir} in {since(started)}")
        return built
