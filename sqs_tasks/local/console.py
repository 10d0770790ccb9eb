"""The output of `sqs-tasks local`: the report on stdout, a live progress line on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from .expectations import Tracker

# Shown progress lines, when stderr is not a terminal: one per this many seconds.
PLAIN_PROGRESS_EVERY = 2.0


class Console:
    """The report to stdout; the live progress line to stderr."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = self.err.isatty()
        self._shown = False
        self._last_plain = 0.0

    def say(self, text: str = "") -> None:
        """A line of the report."""
        self.clear()
        print(text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        """A detail of the current step, indented."""
        self.say(f"      {text}")

    def progress(self, text: str, *, final: bool = False) -> None:
        """Redraw the progress line (a terminal), or print it now and then (a pipe, a file)."""
        if self.live:
            self.err.write("\r\033[K" + text + ("\n" if final else ""))
            self.err.flush()
            self._shown = not final
        elif final or time.monotonic() - self._last_plain >= PLAIN_PROGRESS_EVERY:
            print(text, file=self.err, flush=True)
            self._last_plain = time.monotonic()

    def clear(self) -> None:
        """Remove the progress line before printing something else."""
        if self._shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._shown = False


def bar(done: int, total: int, width: int = 24) -> str:
    """A text progress bar: [#########---------------]"""
    filled = width if total <= 0 else min(width, width * done // total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def plural(n: int, word: str) -> str:
    """'1 invocation', '2 invocations'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def follow(
    console: Console, tracker: Tracker, idle: Callable[[], bool], started: float, timeout: float
) -> bool:
    """Show the run's progress until every task finished and idle(); True if it timed out."""

    def line() -> str:
        done, total = tracker.counts()
        elapsed = max(time.monotonic() - started, 1e-3)
        rate = done / elapsed
        return f"  run {bar(done, total)} {done}/{total} finished  {elapsed:5.1f} s  {rate:4.0f}/s"

    deadline = started + timeout
    while True:
        console.progress(line())
        done, total = tracker.counts()
        if done == total and idle():
            timed_out = False
            break
        if time.monotonic() > deadline:
            timed_out = True
            break
        time.sleep(0.2)
    console.progress(line(), final=True)
    return timed_out
