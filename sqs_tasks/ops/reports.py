"""Results and failures as text for operators: one result in full, the newest failures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..aws.store import SUCCESSFUL
from ..results import Item
from .tables import format_table

if TYPE_CHECKING:
    from ..backend import SQSBackend

# A last traceback line longer than this is cut in the failures table.
ERROR_WIDTH = 80


def _text(item: Item, name: str, default: str = "-") -> str:
    value = item.get(name)
    if value is None:
        return default
    ((_, inner),) = value.items()
    return str(inner)


def last_error_line(item: Item) -> str:
    """The last line of the last traceback: usually `module.Error: message`."""
    errors = item.get("errors", {}).get("L", [])
    if not errors:
        return ""
    last: dict[str, Any] = errors[-1]["M"]
    lines: list[str] = last["traceback"]["S"].strip().splitlines()
    return lines[-1] if lines else str(last["exception_class_path"]["S"])


def describe_item(item: Item) -> str:
    """A result, for people: what ran where, when, by whom, and how it ended."""
    status = item["status"]["S"]
    workers = [w["S"] for w in item.get("worker_ids", {}).get("L", [])]
    rows = [
        ("Result", item["id"]["S"]),
        ("Status", status),
        ("Task", item["task_path"]["S"]),
        ("Queue", item["queue_name"]["S"]),
        ("Priority", item["priority"]["N"]),
        ("Backend", item["backend"]["S"]),
        ("Args", _text(item, "args")),
        ("Kwargs", _text(item, "kwargs")),
        ("Attempts", item["attempts"]["N"]),
        ("Worker ids", ", ".join(workers) or "-"),
        ("Enqueued", _text(item, "enqueued_at")),
        ("Run after", _text(item, "run_after")),
        ("Started", _text(item, "started_at")),
        ("Last attempt", _text(item, "last_attempted_at")),
        ("Finished", _text(item, "finished_at")),
    ]
    if "lease_until" in item:
        rows.append(("Lease until", _text(item, "lease_until")))
    if status == SUCCESSFUL:
        rows.append(("Return value", _text(item, "return_value", "null")))
    errors = item.get("errors", {}).get("L", [])
    rows.append(("Errors", str(len(errors))))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if errors:
        last = errors[-1]["M"]
        lines.append("")
        lines.append(
            f"Last error ({len(errors)} of {len(errors)}): {last['exception_class_path']['S']}"
        )
        lines.extend(f"    {line}" for line in last["traceback"]["S"].rstrip().splitlines())
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
            rows.append(
                [
                    item["finished_at"]["S"],
                    item["id"]["S"],
                    item["task_path"]["S"],
                    item["attempts"]["N"],
                    error,
                ]
            )
        noun = "failure" if len(items) == 1 else "failures"
        table = format_table(["finished", "id", "task", "tries", "last error"], rows)
        sections.append(f"Queue {queue_name!r}: {len(items)} most recent {noun}\n{table}")
    return "\n\n".join(sections)
