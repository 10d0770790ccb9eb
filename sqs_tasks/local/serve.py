"""Serving until Ctrl-C: the environment that points a Django project at the embedded AWS."""

from __future__ import annotations

import os
import shlex
import signal
import threading
from pathlib import Path

from .console import Console


def write_env_file(env: dict[str, str], path: Path) -> None:
    """The environment as KEY=VALUE lines, written whole (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    scratch.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    scratch.replace(path)


def serve(console: Console, env: dict[str, str], env_file: Path | None) -> None:
    """Print env (and write it to env_file), then wait for Ctrl-C or SIGTERM."""
    # From now on Ctrl-C stops the wait below (whoever read the env file may send it).
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console.say("\nThe AWS and the workers stay up until Ctrl-C. In another shell:")
    console.say("  export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())))
    console.say(
        "  then enqueue from your project: python manage.py shell (or runserver); the "
        "workers here run the tasks with your code and settings."
    )
    if env_file is not None:
        write_env_file(env, env_file)
        console.say(f"  (also written to {env_file})")
    while not stop.wait(1):
        pass
    console.say("\nStopping.")
