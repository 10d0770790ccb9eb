"""Results as plain-text tables, for the operator commands and `sqs-tasks local`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with a header rule, columns padded to their widest cell."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def describe(result: Any) -> list[object]:
    """One table row for a TaskResult: what ran, how it ended, and how long it took."""
    duration = ""
    if result.started_at and result.finished_at:
        duration = f"{(result.finished_at - result.started_at) / timedelta(milliseconds=1):.0f} ms"
    if result.status == "SUCCESSFUL":
        outcome = repr(result.return_value)
    elif result.errors:
        last = result.errors[-1]
        message = last.traceback.strip().splitlines()[-1]
        outcome = message
    else:
        outcome = "waiting" if result.task.run_after else ""
    if len(outcome) > 60:
        outcome = outcome[:57] + "..."
    return [
        result.id[:8],
        result.task.name,
        result.task.queue_name,
        result.task.priority,
        result.status,
        result.attempts,
        duration,
        outcome,
    ]
