"""The sqs-tasks benchmark: requests and cost per task, overheads against their floors, cold
start, memory, and end-to-end throughput against django-tasks-sqs and Celery.

Run `bin/bench` (it prepares .venv-bench with matplotlib), or, in a venv with the project and
matplotlib, `python benchmarks/run.py [--tasks 1000] [--sweep-tasks N] [--no-peers]`.
Everything but the deferral count runs against one moto server, started here in a process of
its own. Writes benchmarks/out/results.txt, results.json and throughput.png. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.latency import Meter

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
REGION = "us-east-1"
TABLE = "bench-results"
QUEUES = ("bench-default",)
MEMORY_MB = 512  # The SAM stack's FunctionMemorySize default.


def provision(url: str) -> dict[str, str]:
    """The results table and one queue per system, as the SAM stack configures them."""
    import boto3

    from sqs_tasks.testing import QUEUE_ATTRIBUTES, TABLE_DEFINITION

    session = boto3.session.Session(region_name=REGION)
    session.client("dynamodb", endpoint_url=url).create_table(TableName=TABLE, **TABLE_DEFINITION)
    sqs = session.client("sqs", endpoint_url=url)
    return {
        q: sqs.create_queue(QueueName=q, Attributes=dict(QUEUE_ATTRIBUTES))["QueueUrl"]
        for q in QUEUES
    }


def main() -> None:
    """Run every measurement, print and save the table, draw the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per end-to-end run")
    parser.add_argument("--sweep-tasks", type=int, default=0, help="batch 1 and 100 runs")
    parser.add_argument("--no-peers", action="store_true", help="skip django-tasks-sqs and Celery")
    parser.add_argument("--cold-rounds", type=int, default=20)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare at"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="redo the table and plot from results.json"
    )
    parser.add_argument(
        "--latency-only", action="store_true", help="only the figures under the latency model"
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency model")
    parser.add_argument(
        "--enqueue-only",
        action="store_true",
        help="with --latency-only: only enqueue() and enqueue_many() (--tasks sets both sizes)",
    )
    parser.add_argument("--backlog", type=int, default=1000, help="tasks drained per drain run")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report(json.loads((OUT / "results.json").read_text()))
        return
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    os.environ.update(aws)
    results: dict[str, Any] = {
        "machine": f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "tasks": args.tasks,
    }
    from sqs_tasks.local.environment import moto_server

    with moto_server(OUT / "moto.log") as server:
        global SERVER_PID
        SERVER_PID = server.pid
        queues = provision(server.url)
        ours_env = {
            **aws,
            "AWS_ENDPOINT_URL": server.url,
            "SQS_TASKS_TABLE": TABLE,
            "SQS_TASKS_QUEUE_URLS": json.dumps({"default": queues["bench-default"]}),
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        }
        os.environ.update(ours_env)
        child_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        import django

        django.setup()
        if not args.no_latency:
            results["latency"] = measure_latency(args, child_env, server.url)
        if args.latency_only:
            results["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
            (OUT / "latency.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
            report_latency(results)
            return
        results.update(measure_ours(args, child_env))
        results["cold_start"] = measure_cold(args, aws)
        if not args.no_peers:
            results["peers"] = measure_peers(args, child_env)
    from benchmarks import deferral

    results["deferral"] = {
        "sqs": deferral.measure(scheduler=False),
        "scheduler": deferral.measure(scheduler=True),
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    report(results)


def report(results: dict[str, Any]) -> None:
    """Print and save the table, draw the plot."""
    from benchmarks.report import plot, render

    text = render(results)
    print(text)
    (OUT / "results.txt").write_text(text + "\n")
    plot(results, OUT / "throughput.png")
    print(f"\nWrote {OUT / 'results.txt'}, results.json and throughput.png")


def report_latency(results: dict[str, Any]) -> None:
    """Print and save the latency model's table alone."""
    from benchmarks.report_latency import render_latency

    text = "\n".join([results["machine"], *render_latency(results["latency"])])
    print(text)
    (OUT / "latency.txt").write_text(text + "\n")
    print(f"\nWrote {OUT / 'latency.txt'} and latency.json")


SERVER_PID = 0


def _with_server_cpu(measure: Any) -> dict[str, Any]:
    """Run a measurement; add the CPU the moto server spent meanwhile, per task."""
    from benchmarks.peer_runs import process_cpu_seconds

    before = process_cpu_seconds(SERVER_PID)
    found: dict[str, Any] = measure()
    found["server_cpu_ms_per_task"] = (process_cpu_seconds(SERVER_PID) - before) * 1000 / found["n"]
    return found


def _step(title: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {title}", file=sys.stderr, flush=True)


def measure_ours(args: argparse.Namespace, child_env: dict[str, str]) -> dict[str, Any]:
    """sqs-tasks: requests, overheads against floors, and end to end by batch size."""
    from benchmarks import ours

    _step("enqueue(): ours against PutItem + SendMessage")
    single = ours.enqueue_single(n=40, rounds=8)
    _step(f"enqueue_many({args.tasks}): ours against BatchWriteItem + SendMessageBatch")
    # Nine paired rounds: a round takes under a second, and its ratio varies by a few %.
    bulk = ours.enqueue_bulk(n=args.tasks, rounds=9)
    _step("handler: ours against its claim (UpdateItem) and finish (PutItem)")
    handler = ours.handler_overhead(n=200)
    runs = []
    for workers in args.workers:
        _step(f"end to end: {args.tasks} tasks, batch size 10, {workers} worker(s)")
        runs.append(
            _with_server_cpu(
                lambda w=workers: ours.end_to_end(
                    ROOT, child_env, n=args.tasks, batch=10, workers=w
                )
            )
        )
    for batch in (1, 100):
        n = args.sweep_tasks or args.tasks
        _step(f"end to end: {n} tasks, batch size {batch}")
        runs.append(
            _with_server_cpu(lambda n=n, b=batch: ours.end_to_end(ROOT, child_env, n=n, batch=b))
        )
    return {"single": single, "bulk": bulk, "handler": handler, "end_to_end": runs}


def measure_latency(
    args: argparse.Namespace, child_env: dict[str, str], upstream: str
) -> dict[str, Any]:
    """Everything under the latency model, through the latency proxy in front of moto."""
    from benchmarks import latency, ours

    proxy = latency.Proxy(ROOT, upstream)
    meter = latency.Meter(proxy, SERVER_PID)
    ours.ENDPOINT = proxy.url
    found: dict[str, Any] = {"model": "SQS 12 ms, DynamoDB 6 ms, +-20 % (each request)"}
    try:
        _step("latency: enqueue() and enqueue_many() against their raw requests")
        single = args.tasks if args.enqueue_only else 40
        found["enqueue"] = latency.enqueue_figures(single, args.tasks, rounds=3, meter=meter)
        if args.enqueue_only:
            return found
        _step("latency: 100 concurrent aenqueue() from one event loop")
        found["aenqueue"] = latency.aenqueue_concurrency(100, rounds=3, meter=meter)
        _step("latency: moto's ceiling, before")
        found["ceiling"] = [{**latency.moto_ceiling(meter), "when": "before the runs"}]
        found["end_to_end"] = latency_end_to_end(args, child_env, meter)
        trickle = []
        for window in (0.0, None, 0.0, None):  # Interleaved: no batch window, the default.
            _step(f"latency: {args.tasks // 2} enqueue() one by one, worker at 2, window {window}")
            run = latency.end_to_end_worker(
                ROOT, child_env, meter, args.tasks // 2, 2, window, bulk=False
            )
            trickle.append({**run, "concurrency": 2, "batch_window": window})
        found["trickle"] = trickle
        drains = []
        for path, levels in (("worker", (1, 2, 4)), ("lambda", (1, 2, 5))):
            for concurrency in levels:
                _step(f"latency: drain {args.backlog}, {path}, concurrency {concurrency}")
                drains.append(
                    latency.drain(ROOT, child_env, meter, path, concurrency, args.backlog)
                )
        for path in ("worker", "lambda"):
            _step(f"latency: drain {args.backlog}, {path}, concurrency 1, no claim ahead")
            drains.append(latency.drain(ROOT, child_env, meter, path, 1, args.backlog, False))
        found["drain"] = drains
        _step("latency: moto's ceiling, after")
        found["ceiling"].append({**latency.moto_ceiling(meter), "when": "after the runs"})
    finally:
        ours.straight_to_moto()
        proxy.close()
    return found


def latency_end_to_end(
    args: argparse.Namespace, child_env: dict[str, str], meter: Meter
) -> list[dict[str, Any]]:
    """End to end at 1 and 2 workers: sqs-tasks (sqs_tasks_worker), then each peer, one after
    the other at each worker count so that the runs compared share the machine's load."""
    from benchmarks import latency, peer_runs

    python: Path | None = None
    error = ""
    if not args.no_peers:
        try:
            python = peer_runs.ensure_venv(ROOT)
        except Exception as e:  # Said in the table, not hidden.
            error = f"virtualenv: {e}"
    runs: list[dict[str, Any]] = []
    for workers in (1, 2):
        _step(f"latency: end to end, {args.tasks} tasks, sqs_tasks_worker at {workers}")
        runs.append(latency.end_to_end_worker(ROOT, child_env, meter, args.tasks, workers))
        if args.no_peers:
            continue
        for name in ("django-tasks-sqs", "celery"):
            _step(f"latency: end to end, {args.tasks} tasks, {name} at {workers}")
            try:
                if python is None:
                    raise RuntimeError(error)
                runs.append(
                    latency.peer(name, python, ROOT, child_env, meter, args.tasks, workers, OUT)
                )
            except Exception as e:  # Said in the table, not hidden.
                runs.append(
                    {"system": name, "workers": workers, "error": f"{type(e).__name__}: {e}"}
                )
    return runs


def measure_cold(args: argparse.Namespace, aws: dict[str, str]) -> dict[str, Any]:
    """Cold start of the worker against a bare Django + boto3 process."""
    from benchmarks import coldstart

    _step("cold start")
    return coldstart.measure(ROOT, args.cold_rounds, aws)


def measure_peers(args: argparse.Namespace, child_env: dict[str, str]) -> list[dict[str, Any]]:
    """django-tasks-sqs and Celery on the same server, each on its own queue."""
    from benchmarks import peer_runs as peers

    _step("peers: their virtualenv")
    names = ("django-tasks-sqs", "celery")
    try:
        python = peers.ensure_venv(ROOT)
    except Exception as e:  # Said in the table, not hidden.
        return [{"name": name, "error": f"virtualenv: {e}"} for name in names]
    found: list[dict[str, Any]] = []
    for workers in args.workers:
        for name in names:
            _step(f"end to end: {name}, {args.tasks} tasks, {workers} worker(s)")
            queue = peers.new_queue(f"peer-{workers}")
            env = {**child_env, "PEER_QUEUE_URL": queue}
            env.pop("DJANGO_SETTINGS_MODULE")
            try:
                if name == "celery":
                    run = _with_server_cpu(
                        lambda e=env, w=workers: peers.celery(python, ROOT, e, args.tasks, w, OUT)
                    )
                else:
                    run = _with_server_cpu(
                        lambda e=env, w=workers: peers.django_tasks_sqs(
                            python, ROOT, e, args.tasks, w
                        )
                    )
            except Exception as e:
                run = {"error": f"{type(e).__name__}: {e}"}
            found.append({"name": name, "workers": workers, **run})
    return found


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
