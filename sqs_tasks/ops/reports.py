"""Results and failures as text for operators: one result in full, the newest failures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..aws.store import SUCCESSFUL
from ..results import Item
from .base import plain
from .tables import format_table

if TYPE_CHECKING:
    from ..backend import SQSBackend

# A last traceback line longer than this is cut in the failures table.
ERROR_WIDTH = 80


def last_error_line(item: Item) -> str:
    """The last line of the last traceback: usually `module.Error: message`."""
    errors = plain(item).get("errors", [])
    if not errors:
        return ""
    last: dict[str, Any] = errors[-1]
    lines: list[str] = last["traceback"].strip().splitlines()
    return lines[-1] if lines else str(last["exception_class_path"])


def result_rows(result: dict[str, Any], *, arguments: bool = True) -> list[tuple[str, str]]:
    """A result's facts as (label, text), in the order sqs_tasks_result prints them."""

    def text(name: str, default: str = "-") -> str:
        value = result.get(name)
        return default if value is None else str(value)

    rows = [
        ("Result", text("id")),
        ("Status", text("status")),
        ("Task", text("task_path")),
        ("Queue", text("queue_name")),
        ("Priority", text("priority")),
        ("Backend", text("backend")),
    ]
    if arguments:
        rows += [("Args", text("args")), ("Kwargs", text("kwargs"))]
    rows += [
        ("Attempts", text("attempts")),
        ("Worker ids", ", ".join(result.get("worker_ids", [])) or "-"),
        ("Enqueued", text("enqueued_at")),
        ("Run after", text("run_after")),
        ("Started", text("started_at")),
        ("Last attempt", text("last_attempted_at")),
        ("Finished", text("finished_at")),
    ]
    if "lease_until" in result:
        rows.append(("Lease until", text("lease_until")))
    return rows


def describe_item(item: Item) -> str:
    """A result, for people: what ran where, when, by whom, and how it ended."""
    result = plain(item)
    rows = result_rows(result)
    if result["status"] == SUCCESSFUL:
        returned = result.get("return_value")
        rows.append(("Return value", "null" if returned is None else str(returned)))
    errors = result.get("errors", [])
    rows.append(("Errors", str(len(errors))))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if errors:
        last = errors[-1]
        lines.append("")
        lines.append(f"Last error ({len(errors)} of {len(errors)}): {last['exception_class_path']}")
        lines.extend(f"    {line}" for line in last["traceback"].rstrip().splitlines())
    return "\n".join(lines)


def failures_report(backend: SQSBackend, queue_names: Sequence[str], limit: int) -> str:
    """The newest failures of each queue, from the sparse failures index (no scan)."""
    sections = []
    for queue_name in queue_names:
        items = backend.store.failures(queue_name, limit=limit)
        if not items:
            sections.append(f"Queue {queue_name!r}: no failures.")
            continue
        rows = []
        for item in items:
            error = last_error_line(item)
            if len(error) > ERROR_WIDTH:
                error = error[: ERROR_WIDTH - 3] + "..."
            result = plain(item)
            rows.append(
                [
                    result["finished_at"],
                    result["id"],
                    result["task_path"],
                    result["attempts"],
                    error,
                ]
            )
        noun = "failure" if len(items) == 1 else "failures"
        table = format_table(["finished", "id", "task", "tries", "last error"], rows)
        sections.append(f"Queue {queue_name!r}: {len(items)} most recent {noun}\n{table}")
    return "\n\n".join(sections)
