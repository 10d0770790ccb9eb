"""`sqs-tasks local` keeps the functions' EMF lines off its report and adds them up."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sqs_tasks.local.emf import MetricsTap, percentile, tapped
from sqs_tasks.worker.metrics import Metric, Recorder


def test_emf_lines_go_to_the_log_and_the_totals_the_rest_to_stdout(tmp_path: Path) -> None:
    out, log = io.StringIO(), tmp_path / "run.log"
    tap = MetricsTap(out, log)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for queue, n in (("default", 3), ("emails", 1)):
        recorder = Recorder()
        for i in range(n):
            recorder.count(Metric.SUCCEEDED, queue, "app.tasks.t")
            recorder.timing(
                Metric.RUN_TIME, queue, "app.tasks.t", start, start + timedelta(seconds=i + 1)
            )
        recorder.count(Metric.FAILED, queue, "app.tasks.t")
        with redirect_stdout(tap):
            print("a task's own print")
            recorder.flush()

    assert out.getvalue() == "a task's own print\n" * 2
    assert log.read_text().count('"_aws"') == 2
    report = tap.totals.report()
    assert report[0] == "Metrics the functions wrote (2 EMF lines, namespace sqs-tasks):"
    table = {
        re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip())[1:]
        for line in report[1:]
    }
    assert table["metric"] == ["default", "emails"]
    assert table["TasksSucceeded"] == ["3", "1"]
    assert table["TasksFailed"] == ["1", "1"]
    assert table["TasksRetried"] == ["0", "0"]
    assert table["RunTime p50 (ms)"] == ["2000", "1000"]
    assert table["RunTime p99 (ms)"] == ["3000", "1000"]
    assert table["QueueDelay p50 (ms)"] == ["-", "-"]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7
    assert percentile([], 0.5) is None


def test_tapped_diverts_stdout_only_while_the_block_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.log"
    recorder = Recorder()
    recorder.count(Metric.STARTED, "default", "app.tasks.t")
    with tapped(log) as tap:
        recorder.flush()
        print("still shown")
    print("after")

    assert capsys.readouterr().out == "still shown\nafter\n"
    assert tap.totals.lines == 1
    assert '"TasksStarted":[1.0]' in log.read_text()
