"""The report at the end of a run: the results read back, the mix as a table, what went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .console import plural
from .expectations import Expected, Tracker, judge
from .load import Load, bulk_table

HEADERS = ["id", "task", "queue", "prio", "status", "tries", "took", "result / error", "check"]


def read_results(ids: Sequence[str]) -> dict[str, Any]:
    """Each result as the web app would read them: get_results, consistent, 100 a request."""
    from django.tasks import default_task_backend

    backend: Any = default_task_backend
    return dict(zip(ids, backend.get_results(ids), strict=True))


def mix_table(
    ids: Sequence[str], expected: dict[str, Expected], tracker: Tracker, results: dict[str, Any]
) -> tuple[str, list[str]]:
    """The mix as a table (what a task enqueued under it), and what went wrong."""
    from ..ops.tables import describe, format_table

    rows, problems = [], []
    order = []
    for result_id in ids:
        order.append(result_id)
        order.extend(c for c in expected[result_id].children if c in expected)
    for result_id in order:
        result, wanted = results[result_id], expected[result_id]
        problem = judge(result, wanted)
        row = describe(result)
        row[1] = wanted.label
        rows.append([*row, "ok" if problem is None else f"WRONG: {problem}"])
        if problem is not None:
            problems.append(f"{result_id}: {wanted.label} {problem}")
    if tracker.forged_id is not None:
        settled = tracker.forged_settled_by
        rows.append(
            [
                tracker.forged_id[:8],
                "forged message",
                "default",
                "",
                "DEAD-LETTERED" if settled else "NOT SETTLED",
                tracker.forged_receives,
                "",
                f"refused each receive; kept in the DLQ by {settled}" if settled else "",
                "ok" if settled else "WRONG: not dead-lettered and settled",
            ]
        )
        if not settled:
            problems.append("the forged message was not dead-lettered and settled")
    return format_table(HEADERS, rows), problems


def report_lines(
    ids: Sequence[str],
    expected: dict[str, Expected],
    tracker: Tracker,
    results: dict[str, Any],
    load: Load | None,
    last_finished: float,
) -> tuple[list[str], list[str]]:
    """The tables a run ends with (the mix, then any --tasks load), and what went wrong."""
    table, problems = mix_table(ids, expected, tracker, results)
    lines = ["", table]
    if load is not None:
        table, bulk_problems = bulk_table(load.ids, expected, results)
        problems.extend(bulk_problems)
        lines += ["", table, load.throughput(len(tracker.finished), last_finished)]
    return lines, problems


def mapping_lines(mappings: Sequence[Any]) -> list[str]:
    """What each emulated mapping did, a line each."""
    lines = []
    for mapping in mappings:
        s = mapping.stats
        lines.append(
            f"  {mapping.config.queue_name:<18} {plural(s.invocations, 'invocation'):>16} "
            f"of {mapping.config.function.name}, largest batch {s.largest_batch:>2}, "
            f"{s.deleted:>5} deleted, {s.failed} failed"
        )
    return lines


def unfinished(
    expected: dict[str, Expected], results: dict[str, Any], tracker: Tracker
) -> list[str]:
    """What had not finished when the run timed out."""
    pending = [
        f"{i}: {e.label} is {results[i].status}"
        for i, e in expected.items()
        if results[i].status not in {"SUCCESSFUL", "FAILED"}
    ]
    if tracker.forged_id is not None and tracker.forged_settled_by is None:
        pending.append(f"forged message {tracker.forged_id}: not dead-lettered and settled")
    if not pending:
        pending.append("every result finished, but messages are left in the queues")
    return pending


def failure_lines(headline: str, items: Sequence[str], log_path: Path) -> list[str]:
    """What went wrong: the headline, the first 20 items, and where the workers' log is."""
    lines = [f"\nsqs-tasks local: {headline}", *(f"  {i}" for i in items[:20])]
    if len(items) > 20:
        lines.append(f"  ... and {len(items) - 20} more")
    lines.append(f"The workers' log: {log_path}")
    return lines
