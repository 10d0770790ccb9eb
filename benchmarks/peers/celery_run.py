"""Celery in its own virtualenv: `produce N` sends N no-op tasks and reads every result.

Prints one JSON line with wall-clock times (time.time(), comparable across processes).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks.peers.celery_app import noop


def produce(n: int) -> dict[str, Any]:
    """Warm up with one task, then time n sends and the n results becoming readable.

    It waits as ours does: on the last result, then reads every result (Celery's DynamoDB
    backend has no batched read, so one GetItem each).
    """
    noop.delay().get(timeout=120, interval=0.05)
    start = time.time()
    results = [noop.delay() for _ in range(n)]
    enqueued = time.time()
    results[-1].get(timeout=600, interval=0.05)
    for result in results:
        result.get(timeout=600, interval=0.05)
    return {"start": start, "enqueued": enqueued, "done": time.time()}


if __name__ == "__main__":
    print(json.dumps(produce(int(sys.argv[2]))), flush=True)
