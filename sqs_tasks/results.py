"""Translate between DynamoDB result items and Django's Task/TaskResult objects."""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from traceback import format_exception
from typing import Any

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.utils import timezone
from django.utils.module_loading import import_string

from .exceptions import ArgumentsTooDeep, InvalidTaskPath

Item = dict[str, Any]  # DynamoDB attribute values, as the low-level client speaks them

# The failures index is write-sharded so 1,000 failures/s never land on one partition.
FAILURE_SHARDS = 8
# DynamoDB refuses items over 400 KB.
MAX_ITEM_BYTES = 400 * 1024
# A traceback's tail holds the exception; the head is the least useful part to keep.
MAX_TRACEBACK_BYTES = 16_000
# SQS keeps a message 14 days at most, and a worker outside Lambda may run it 12 hours more.
PENDING_TTL = timedelta(days=15)
# What a write besides the errors may still add to an item (status, timestamps, TTL).
WRITE_HEADROOM_BYTES = 2048
# Lists and objects inside one another in a task's arguments (the args list counts): the worker
# rebuilds them recursively (Django's normalize_json), so depth near the recursion limit fails
# there, not at enqueue, unless enqueue refuses it.
MAX_ARGUMENT_DEPTH = 100
DROPPED_TRACEBACK = "(traceback dropped: the result reached DynamoDB's 400 KB item limit)"


def timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds: readable in the console and sortable as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(value: str) -> datetime:
    """Read a timestamp written by timestamp()."""
    return datetime.fromisoformat(value)


def dumps(value: Any) -> str:
    """JSON exactly as stored: compact, unicode kept readable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def failure_partition(queue_name: str, result_id: str) -> str:
    """The failures-index partition key of a FAILED result."""
    return f"{queue_name}#{zlib.crc32(result_id.encode()) % FAILURE_SHARDS}"


def expiry(
    moment: datetime, ttl: timedelta | None, *, pending: bool = False
) -> dict[str, str] | None:
    """The TTL attribute value (epoch seconds), or None when results never expire.

    A pending result (READY or RUNNING) is kept PENDING_TTL at least, whatever the TTL: SQS
    may still deliver its message that long, and a deleted item would drop the task unrun.
    """
    if ttl is None:
        return None
    return {"N": str(int((moment + (max(ttl, PENDING_TTL) if pending else ttl)).timestamp()))}


def new_item(result: TaskResult[..., Any], *, ttl: timedelta | None, now: datetime) -> Item:
    """The READY item enqueue writes for a fresh result."""
    task = result.task
    return item_of(
        result.id,
        task_path=task.module_path,
        backend=result.backend,
        queue_name=task.queue_name,
        priority=int(task.priority),  # Django accepts any whole number (5.0, True).
        args_json=dumps(result.args),
        kwargs_json=dumps(result.kwargs),
        run_after=task.run_after,
        ttl=ttl,
        now=now,
    )


def item_of(
    result_id: str,
    *,
    task_path: str,
    backend: str,
    queue_name: str,
    priority: int,
    args_json: str,
    kwargs_json: str,
    run_after: datetime | None,
    ttl: timedelta | None,
    now: datetime,
) -> Item:
    """A READY item from its parts."""
    item: Item = {
        "id": {"S": result_id},
        "status": {"S": TaskResultStatus.READY.value},
        "task_path": {"S": task_path},
        "backend": {"S": backend},
        "queue_name": {"S": queue_name},
        "priority": {"N": str(priority)},
        "args": {"S": args_json},
        "kwargs": {"S": kwargs_json},
        "enqueued_at": {"S": timestamp(now)},
        "attempts": {"N": "0"},
        "worker_ids": {"L": []},
        "errors": {"L": []},
    }
    if run_after is not None:
        item["run_after"] = {"S": timestamp(run_after)}
    # A deferred result must outlive its wait, so its expiry counts from run_after.
    expires = expiry(max(now, run_after or now), ttl, pending=True)
    if expires is not None:
        item["expires_at"] = expires
    return item


def encodable(text: str) -> str:
    """text as valid UTF-8 can carry it: a lone surrogate becomes its escape (\\udc80)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def task_error(exc: BaseException) -> TaskError:
    """An exception as Django records it in TaskResult.errors: class path and traceback.

    Any exception can be recorded: text that UTF-8 cannot carry (a lone surrogate from a
    surrogateescape'd file name, half an emoji from JSON) is escaped, not raised on.
    """
    kind = type(exc)
    return TaskError(
        exception_class_path=encodable(f"{kind.__module__}.{kind.__qualname__}"),
        traceback=encodable("".join(format_exception(exc))),
    )


def error_value(error: TaskError) -> dict[str, Any]:
    """A TaskError as a DynamoDB map (its text made encodable, should anyone build one raw)."""
    traceback = encodable(error.traceback)
    encoded = traceback.encode()
    if len(encoded) > MAX_TRACEBACK_BYTES:
        # By bytes, not characters: 16,000 CJK characters would be 48 KB.
        tail = encoded[-MAX_TRACEBACK_BYTES:].decode(errors="ignore")
        traceback = "...(truncated)\n" + tail
    return {
        "M": {
            "exception_class_path": {"S": encodable(error.exception_class_path)},
            "traceback": {"S": traceback},
        }
    }


def errors_with(item: Item, error: TaskError) -> dict[str, Any]:
    """item's errors plus error, as a list that keeps the item under DynamoDB's limit."""
    # Copies: the item's own entries stay as they were.
    errors = [dict(entry) for entry in item.get("errors", {"L": []})["L"]]
    errors.append(error_value(error))
    room = MAX_ITEM_BYTES - WRITE_HEADROOM_BYTES
    room -= item_size({name: value for name, value in item.items() if name != "errors"})
    room -= len(b"errors")
    # Oldest tracebacks go first; every error keeps its exception class.
    for entry in errors:
        if _value_size({"L": errors}) <= room:
            break
        entry["M"] = {**entry["M"], "traceback": {"S": DROPPED_TRACEBACK}}
    while len(errors) > 1 and _value_size({"L": errors}) > room:
        errors.pop(0)  # Arguments at the limit: the newest errors are the ones worth keeping.
    return {"L": errors}


def argument_depth(value: Any, limit: int = MAX_ARGUMENT_DEPTH) -> int:
    """How deep lists and mappings nest in value, counted up to limit + 1 (no recursion)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        obj, depth = pending.pop()
        if isinstance(obj, str | bytes) or not isinstance(obj, Mapping | Sequence):
            continue
        deepest = max(deepest, depth)
        if depth > limit:  # Stop there: a list that holds itself nests for ever.
            break
        children = [*obj.keys(), *obj.values()] if isinstance(obj, Mapping) else obj
        pending.extend((child, depth + 1) for child in children)
    return deepest


def ready_result[**P, R](
    task: Task[P, R], args: list[Any], kwargs: dict[str, Any], *, backend: str, now: datetime
) -> TaskResult[P, R]:
    """A fresh READY result; building it JSON-normalises args and kwargs as Django does.

    Arguments nested over MAX_ARGUMENT_DEPTH deep are refused first (ArgumentsTooDeep).
    """
    depth = max(argument_depth(args), argument_depth(kwargs))
    if depth > MAX_ARGUMENT_DEPTH:
        raise ArgumentsTooDeep(
            f"Task {task.module_path} arguments nest more than {MAX_ARGUMENT_DEPTH} lists or "
            f"mappings deep (the args list and kwargs mapping count); the limit is "
            f"{MAX_ARGUMENT_DEPTH}. Flatten them, or pass a reference (an S3 key, a primary key)."
        )
    return TaskResult(
        task=task,
        # 128 random bits from one system call, where get_random_string(32) makes 32.
        id=secrets.token_hex(16),
        status=TaskResultStatus.READY,
        enqueued_at=now,
        started_at=None,
        last_attempted_at=None,
        finished_at=None,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=[],
        worker_ids=[],
    )


def aware_run_after[**P, R](task: Task[P, R]) -> Task[P, R]:
    """The task with run_after aware: without USE_TZ Django allows a naive one, in TIME_ZONE."""
    if task.run_after is not None and timezone.is_naive(task.run_after):
        return task.using(run_after=timezone.make_aware(task.run_after))
    return task


def load_task(path: str) -> Task[..., Any]:
    """Import the Task at path; anything else (a plain callable, a module) is refused."""
    try:
        obj = import_string(path)
    except Exception as e:  # A module that raises on import is refused as one that is absent.
        raise InvalidTaskPath(f"{path!r} cannot be imported: {e!r}") from e
    if not isinstance(obj, Task):
        raise InvalidTaskPath(f"{path!r} is not a Task (it is {type(obj).__name__})")
    if obj.module_path != path:
        raise InvalidTaskPath(f"{path!r} is an alias of the Task {obj.module_path!r}")
    return obj


def _opt_time(item: Item, name: str) -> datetime | None:
    value = item.get(name)
    return parse_timestamp(value["S"]) if value else None


def to_result(item: Item, task: Task[..., Any] | None = None) -> TaskResult[..., Any]:
    """Build the TaskResult an item describes."""
    base = task if task is not None else load_task(item["task_path"]["S"])
    run_after = _opt_time(item, "run_after")
    bound = base.using(
        priority=int(item["priority"]["N"]),
        queue_name=item["queue_name"]["S"],
        backend=item["backend"]["S"],
        run_after=run_after,
    )
    result = TaskResult(
        task=bound,
        id=item["id"]["S"],
        status=TaskResultStatus(item["status"]["S"]),
        enqueued_at=_opt_time(item, "enqueued_at"),
        started_at=_opt_time(item, "started_at"),
        finished_at=_opt_time(item, "finished_at"),
        last_attempted_at=_opt_time(item, "last_attempted_at"),
        args=json.loads(item["args"]["S"]),
        kwargs=json.loads(item["kwargs"]["S"]),
        backend=item["backend"]["S"],
        errors=[
            TaskError(
                exception_class_path=e["M"]["exception_class_path"]["S"],
                traceback=e["M"]["traceback"]["S"],
            )
            for e in item.get("errors", {}).get("L", [])
        ],
        worker_ids=[w["S"] for w in item.get("worker_ids", {}).get("L", [])],
    )
    if "return_value" in item:
        object.__setattr__(result, "_return_value", json.loads(item["return_value"]["S"]))
    return result


def item_size(item: Item) -> int:
    """An item's size as DynamoDB bills and limits it (names plus values, in bytes)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 2
    if kind == "BOOL" or kind == "NULL":
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    raise ValueError(f"unsupported DynamoDB attribute type {kind!r}")
