"""The metrics of a run: the EMF lines the emulated functions print, kept off the report.

The functions run in this process, and Powertools prints their EMF lines to stdout, where
CloudWatch Logs would read them in Lambda. During a run, stdout is a MetricsTap: it sends
EMF lines to the run's log and adds them up for the report, and passes the rest on.
"""

from __future__ import annotations

import io
import json
import math
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..worker.metrics import TIMINGS, Metric


class MetricTotals:
    """Counts summed and timings kept, per metric and queue, from EMF lines."""

    def __init__(self) -> None:
        self.lines = 0
        self.namespaces: set[str] = set()
        self.counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, emf: dict[str, Any]) -> None:
        """Add one EMF object."""
        self.lines += 1
        for directive in emf["_aws"]["CloudWatchMetrics"]:
            self.namespaces.add(directive["Namespace"])
            queue = str(emf.get("queue", "-"))
            for metric in directive["Metrics"]:
                value = emf.get(metric["Name"], [])
                values = value if isinstance(value, list) else [value]
                if metric["Name"] in {m.value for m in TIMINGS}:
                    self.timings[metric["Name"]][queue].extend(values)
                else:
                    self.counts[metric["Name"]][queue] += sum(values)

    def report(self) -> list[str]:
        """The totals as a table: a row per metric (and percentile), a column per queue."""
        if not self.lines:
            return ["Metrics: no EMF lines were written (POWERTOOLS_METRICS_DISABLED?)"]
        queues = sorted(
            {*(q for per in self.counts.values() for q in per)}
            | {q for per in self.timings.values() for q in per}
        )
        rows = [["metric", *queues]]
        for metric in Metric:
            if metric in TIMINGS:
                for label, share in (("p50", 0.5), ("p99", 0.99)):
                    per = self.timings.get(metric, {})
                    rows.append(
                        [
                            f"{metric.value} {label} (ms)",
                            *(_ms(percentile(per.get(q, []), share)) for q in queues),
                        ]
                    )
            else:
                per_queue = self.counts.get(metric, {})
                rows.append([metric.value, *(f"{per_queue.get(q, 0):g}" for q in queues)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        namespaces = ", ".join(sorted(self.namespaces))
        head = f"Metrics the functions wrote ({self.lines} EMF lines, namespace {namespaces}):"
        return [head] + [
            "  "
            + "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile of values (CloudWatch's pNN, near enough); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


class MetricsTap(io.TextIOBase):
    """A stdout that keeps EMF lines out of the report: to the log, and into totals."""

    def __init__(self, out: IO[str], log_path: Path) -> None:
        self.out = out
        self.log_path = log_path
        self.totals = MetricTotals()
        self._lock = threading.Lock()
        # Each thread's partial line apart: print() writes the text and the newline separately.
        self._pending = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Pass whole lines on; EMF lines go to the log and the totals instead."""
        *lines, rest = (getattr(self._pending, "text", "") + text).split("\n")
        self._pending.text = rest
        with self._lock:
            for line in lines:
                self._line(line)
        return len(text)

    def flush(self) -> None:
        # Also called when the tap is collected, perhaps after the stream it wraps closed.
        if not self.out.closed:
            self.out.flush()

    def _line(self, line: str) -> None:
        if line.startswith("{") and '"_aws"' in line:
            try:
                emf = json.loads(line)
            except ValueError:
                pass
            else:
                self.totals.add(emf)
                with self.log_path.open("a") as log:
                    log.write(line + "\n")
                return
        self.out.write(line + "\n")


@contextmanager
def tapped(log_path: Path) -> Iterator[MetricsTap]:
    """stdout a MetricsTap while the block runs (the report keeps the stdout it had)."""
    tap = MetricsTap(sys.stdout, log_path)
    sys.stdout = tap
    try:
        yield tap
    finally:
        sys.stdout = tap.out
