"""Task arguments as JSON: what cannot be stored is refused, naming the task and the place."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

# Deep enough for any real argument; deeper is refused rather than overflowing the stack.
MAX_DEPTH = 100


def check_arguments(task_path: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Raise TypeError naming task_path and where (args[1]['when']) a value is not JSON."""
    for index, value in enumerate(args):
        _check(task_path, value, f"args[{index}]", 0)
    for key, value in kwargs.items():
        _check(task_path, value, f"kwargs[{key!r}]", 0)


def _check(task_path: str, value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TypeError(
            f"Task {task_path} argument {where} is nested over {MAX_DEPTH} levels deep."
        )
    # The types django.utils.json.normalize_json keeps, in its order.
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                # JSON object keys are strings: {1: "x"} would come back as {"1": "x"}.
                raise TypeError(
                    f"Task {task_path} argument {where} has the key {key!r}, a "
                    f"{type(key).__name__}; JSON object keys must be strings."
                )
            _check(task_path, item, f"{where}[{key!r}]", depth + 1)
    elif isinstance(value, bytes):
        try:
            value.decode()
        except UnicodeDecodeError:
            raise TypeError(
                f"Task {task_path} argument {where} is bytes that are not UTF-8, so not JSON "
                "serializable."
            ) from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"Task {task_path} argument {where} is {value!r}: not JSON serializable.")
    elif isinstance(value, str | int | float | bool | None):
        return
    elif isinstance(value, Sequence):
        for index, item in enumerate(value):
            _check(task_path, item, f"{where}[{index}]", depth + 1)
    else:
        raise TypeError(
            f"Task {task_path} argument {where} is a {type(value).__name__}: not JSON "
            "serializable (pass str, int, float, bool, None, lists and dicts with str keys)."
        )
