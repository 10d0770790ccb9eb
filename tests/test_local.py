"""`sqs-tasks local`, run as a user runs it: a subprocess in the repository's root.

It deploys template.yaml into its own moto server with the sam tool venv (`.venv-sam`,
made by bin/check-infra, which CI runs first): without it these tests are skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sqs_tasks.local.tools import SamTools

REPO = Path(__file__).resolve().parents[1]
# The console script of the venv running the tests (.venv, or .venv-django60 in bin/test).
COMMAND = Path(sys.executable).parent / "sqs-tasks"
# A first run builds the code package (sam build); later runs reuse it.
RUN_TIMEOUT = 600

pytestmark = pytest.mark.slow

# Each row of the mix: (task label, status, tries).
MIX = [
    ("add(2, 3)", "SUCCESSFUL", "1"),
    ("shout('hi') priority", "SUCCESSFUL", "1"),
    ("shout(...) emails queue", "SUCCESSFUL", "1"),
    ("greet('Ada') async", "SUCCESSFUL", "1"),
    ("whoami() context", "SUCCESSFUL", "1"),
    ("fan_out(3)", "SUCCESSFUL", "1"),
    ("-> add(0, 0)", "SUCCESSFUL", "1"),
    ("-> add(1, 1)", "SUCCESSFUL", "1"),
    ("-> add(2, 2)", "SUCCESSFUL", "1"),
    ("flaky('payments') retry", "SUCCESSFUL", "2"),
    ("fail('on purpose')", "FAILED", "1"),
    ("add(40, 2) deferred 5 s", "SUCCESSFUL", "1"),
    ("forged message", "DEAD-LETTERED", "2"),
]


def sqs_tasks_local(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sqs-tasks local ARGS` in the repository's root, its output captured."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SQS_TASKS_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    return subprocess.run(
        [str(COMMAND), "local", *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def rows(stdout: str) -> dict[str, list[str]]:
    """The results table: task label -> its cells (columns split on 2+ spaces)."""
    found = {}
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 6 and (cells[-1] == "ok" or cells[-1].startswith("WRONG")):
            found[cells[1]] = cells
    return found


def metric_totals(stdout: str) -> dict[str, list[str]]:
    """The metrics table: metric (or header "metric") -> its cells per queue."""
    found: dict[str, list[str]] = {}
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Metrics the functions"))
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        name, *cells = re.split(r"\s{2,}", line.strip())
        found[name] = cells
    return found


def test_the_mix_bulk_load_and_a_dead_letter_end_as_they_should(sam_tools: SamTools) -> None:
    done = sqs_tasks_local(
        "--dead-letter",
        "--tasks",
        "40",
        # Exercise the batching window and a short redrive.
        "--parameter",
        "MaximumBatchingWindow=1",
        "--parameter",
        "MaxReceiveCount=2",
    )

    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    table = rows(out)
    for label, status, tries in MIX:
        assert label in table, f"no row for {label}:\n{out}"
        cells = table[label]
        assert cells[cells.index(status) + 1] == tries, cells
        assert cells[-1] == "ok", cells
    assert len(table) == len(MIX), out
    assert "window 1 s" in out and "after 2 receives" in out
    # The --tasks load: 20 no-op tasks per queue, all SUCCESSFUL, and the throughput.
    assert re.search(r"^default\s+20\s+SUCCESSFUL 20\s", out, re.MULTILINE), out
    assert re.search(r"^emails\s+20\s+SUCCESSFUL 20\s", out, re.MULTILINE), out
    assert re.search(r"throughput: enqueued 40 tasks in .* tasks/s end to end", out), out
    assert "All 53 tasks reached the state they should" in out
    # The metric totals, from the EMF lines the emulated functions wrote (not on stdout).
    assert '"_aws"' not in out
    metrics = metric_totals(out)
    assert metrics["metric"] == ["default", "emails"]
    totals = {
        name: sum(map(int, cells))
        for name, cells in metrics.items()
        if name != "metric" and not name.endswith("(ms)")
    }
    # 11 of the mix succeed (flaky on its 2nd attempt), 1 fails, 1 retries; 40 no-op tasks;
    # and the example's minutely periodic add() when a firing falls due during the run.
    assert (totals["TasksFailed"], totals["TasksRetried"]) == (1, 1)
    assert totals["TasksSucceeded"] in {51, 52}
    assert totals["TasksStarted"] == totals["TasksSucceeded"] + 2
    assert metrics["TasksSucceeded"][1] == "21"  # the emails load and shout(...)
    assert "RunTime p99 (ms)" in metrics and "QueueDelay p50 (ms)" in metrics
    # Progress went to stderr.
    assert re.search(r"run \[#+\] 53/53 finished", done.stderr), done.stderr


def test_a_run_that_times_out_says_what_did_not_finish(sam_tools: SamTools) -> None:
    done = sqs_tasks_local("--timeout", "0")

    assert done.returncode == 2, f"{done.stdout}\n{done.stderr}"
    assert "sqs-tasks local: TIMED OUT after 0 s; unfinished:" in done.stdout
    assert "add(40, 2) deferred 5 s is READY" in done.stdout
    assert "sqs-tasks local: FAILED: TIMED OUT" in done.stderr


def test_missing_tools_are_named_with_how_to_get_them(tmp_path: Path) -> None:
    done = sqs_tasks_local(env={"SQS_TASKS_SAM_VENV": str(tmp_path / "nowhere")})

    assert done.returncode == 3, f"{done.stdout}\n{done.stderr}"
    assert "could not deploy the stack" in done.stdout
    assert f"SQS_TASKS_SAM_VENV={tmp_path / 'nowhere'} is not a venv with" in done.stdout


def test_a_missing_template_is_an_error() -> None:
    done = sqs_tasks_local("--template", "nonexistent.yaml")

    assert done.returncode == 3
    assert "no SAM template at" in done.stdout
    assert "run `sqs-tasks init` in your Django project's root first" in done.stdout


def test_a_result_in_the_wrong_state_is_a_wrong_row_and_a_problem() -> None:
    from types import SimpleNamespace

    from sqs_tasks.local.expectations import Expected, Tracker, returns
    from sqs_tasks.local.report import mix_table

    def result(result_id: str, status: str, value: object) -> SimpleNamespace:
        task = SimpleNamespace(name="add", queue_name="default", priority=0, run_after=None)
        return SimpleNamespace(
            id=result_id,
            task=task,
            status=status,
            attempts=1,
            errors=[],
            started_at=None,
            finished_at=None,
            return_value=value,
        )

    expected = {
        "right": Expected("add(2, 3)", "SUCCESSFUL", returns(5)),
        "value": Expected("add(1, 1)", "SUCCESSFUL", returns(2)),
        "status": Expected("add(0, 0)", "SUCCESSFUL", returns(0)),
    }
    results = {
        "right": result("right", "SUCCESSFUL", 5),
        "value": result("value", "SUCCESSFUL", 3),
        "status": result("status", "READY", None),
    }

    table, problems = mix_table(list(expected), expected, Tracker(), results)

    assert problems == [
        "value: add(1, 1) expected 2",
        "status: add(0, 0) is READY, expected SUCCESSFUL",
    ]
    assert rows(table)["add(2, 3)"][-1] == "ok"
    assert rows(table)["add(1, 1)"][-1] == "WRONG: expected 2"
