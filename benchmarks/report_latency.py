"""The latency model's part of the benchmark's table, and its targets checked."""

from __future__ import annotations

from typing import Any


def _ops(per_task: dict[str, float]) -> str:
    return ", ".join(f"{op.split('.', 1)[1]} {v:.2f}" for op, v in per_task.items() if v >= 0.005)


def _drain(
    drains: list[dict[str, Any]], path: str, concurrency: int, claim_ahead: bool = True
) -> dict[str, Any] | None:
    for run in drains:
        found = (run["path"], run["concurrency"], run["claim_ahead"])
        if found == (path, concurrency, claim_ahead):
            return run
    return None


def _e2e(runs: list[dict[str, Any]], system: str, workers: int) -> dict[str, Any] | None:
    for run in runs:
        if run["system"] == system and run["workers"] == workers and "error" not in run:
            return run
    return None


SYSTEMS = ("sqs-tasks", "django-tasks-sqs", "celery")
# moto is the limit of a run that has it at this much of its ceiling (the most of a core this
# run's probe got from it): the probe's requests are the heaviest, with the lightest client.
SATURATED = 0.9


def ceiling(latency: dict[str, Any]) -> float:
    """The most of a core moto's process gave this run's probes (a whole core if none ran)."""
    return max((p["moto_core_share"] for p in latency.get("ceiling", [])), default=1.0)


def _failed(runs: list[dict[str, Any]], system: str, workers: int) -> str | None:
    """Why a system's run has no figure, if it was tried and failed."""
    for run in runs:
        if run["system"] == system and run["workers"] == workers and "error" in run:
            return str(run["error"])
    return None


def _moto_by_system(runs: list[dict[str, Any]]) -> str:
    """Each system's moto CPU per task and moto's share of a core, at 1 / 2 workers."""
    parts = []
    for system in SYSTEMS:
        figures = [
            f"{r['moto_cpu_ms_per_task']:.1f} ms ({r['moto_core_share']:.0%})"
            for r in (_e2e(runs, system, 1), _e2e(runs, system, 2))
            if r
        ]
        if figures:
            parts.append(f"{system} {' / '.join(figures)}")
    return "; ".join(parts)


def _end_to_end_targets(runs: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Not below either peer at 1 worker, unless moto's answers are the difference: outside
    them a task takes no longer than the peer's; worker CPU <= Celery's."""
    found: list[tuple[str, bool]] = []
    ours = _e2e(runs, "sqs-tasks", 1)
    if ours is None:
        return found
    for peer in SYSTEMS[1:]:
        theirs = _e2e(runs, peer, 1)
        if theirs is None:
            error = _failed(runs, peer, 1)
            if error:  # A target that could not be checked is not met.
                found.append((f"end to end at 1 worker >= {peer}: no figure ({error})", False))
            continue
        text = (
            f"end to end at 1 worker >= {peer}: {ours['tasks_per_second']:.1f} against "
            f"{theirs['tasks_per_second']:.1f} tasks/s"
        )
        if ours["tasks_per_second"] >= theirs["tasks_per_second"]:
            found.append((text, True))
            continue
        # Each task's time splits into moto answering (at least one request with it) and the
        # rest: the model's latency, the client and the proxy. With no more of the rest than the
        # peer's, sqs-tasks is behind only by moto's answers, which AWS gives within the model.
        mine, theirs_out = (r.get("outside_moto_ms_per_task", 1e9) for r in (ours, theirs))
        busy = [r.get("moto_busy_ms_per_task", 0.0) for r in (ours, theirs)]
        found.append(
            (
                f"{text}: below; a task's time outside moto's answers {mine:.1f} ms against "
                f"{theirs_out:.1f} ms, with moto answering {busy[0]:.1f} against {busy[1]:.1f} "
                "ms: "
                + ("moto is the limit" if mine <= theirs_out else "not moto alone")
                + f"\n      moto CPU ms/task (share of a core) at 1 / 2 workers: "
                f"{_moto_by_system(runs)}",
                mine <= theirs_out,
            )
        )
    celery = _e2e(runs, "celery", 1)
    error = _failed(runs, "celery", 1)
    if error:
        found.append((f"worker's own CPU per task <= Celery's: no figure ({error})", False))
    if celery:
        mine, theirs_cpu = ours["worker_cpu_ms_per_task"], celery["worker_cpu_ms_per_task"]
        found.append(
            (
                f"worker's own CPU per task at 1 worker <= Celery's worker's: {mine:.2f} "
                f"against {theirs_cpu:.2f} ms",
                mine <= theirs_cpu,
            )
        )
    return found


CLAIM, FINISH = "dynamodb.UpdateItem", "dynamodb.PutItem"
LAMBDA_BATCH = 10  # The mapping emulator's batch size in the latency model's Lambda drains.


def _round_trips(run: dict[str, Any]) -> tuple[float, float, float] | None:
    """A drain's ms per task, and its own claim's and finish's round trips (held + moto)."""
    if CLAIM not in run["moto_ms"] or FINISH not in run["moto_ms"]:
        return None
    claim, finish = (run["held_ms"][op] + run["moto_ms"][op] for op in (CLAIM, FINISH))
    return run["seconds"] * 1000 / run["handled"], claim, finish


def _critical_path(drains: list[dict[str, Any]]) -> tuple[str, bool] | None:
    """The worker's per-task time at concurrency 1 against one claim's round trip.

    If the claim and the finish both were on the critical path, a task would take at least the
    two round trips as that run measured them; a per-task time below that sum shows they
    overlap. Each run is held to its own round trips: overlapping, they slow moto's answers."""
    one = _drain(drains, "worker", 1)
    found = _round_trips(one) if one else None
    if one is None or found is None:
        return None
    per_task, claim, finish = found
    text = (
        f"at most one DynamoDB round trip on the critical path per task: sqs_tasks_worker at 1 "
        f"takes {per_task:.1f} ms a task, x{per_task / claim:.2f} of one claim's round trip "
        f"({claim:.1f} ms: {one['held_ms'][CLAIM]:.1f} held + moto {one['moto_ms'][CLAIM]:.1f}),"
        f" < its claim's + its finish's ({claim + finish:.1f} ms)"
        f"\n      beyond one claim's round trip: {per_task - claim:.1f} ms a task, of which the "
        f"worker's own CPU {one['worker_cpu_ms_per_task']:.1f} ms"
    )
    off = _drain(drains, "worker", 1, claim_ahead=False)
    off_found = _round_trips(off) if off else None
    if off_found:
        off_task, off_claim, off_finish = off_found
        below = "<" if off_task < off_claim + off_finish else ">="
        text += (
            f"; without claim ahead: {off_task:.1f} ms a task, x{off_task / off_claim:.2f} of "
            f"its claim's ({off_claim:.1f} ms), {below} its claim's + its finish's "
            f"({off_claim + off_finish:.1f} ms)"
        )
    return text, per_task < claim + finish


def targets(latency: dict[str, Any]) -> list[tuple[str, bool]]:
    """Each target of the latency model, and whether this run meets it."""
    found: list[tuple[str, bool]] = []
    enqueue = latency.get("enqueue")
    if enqueue:
        vs = enqueue["single"]["vs_one_send"]
        found.append(
            (
                f"enqueue() <= x1.10 of one SendMessage (django-tasks-sqs, Celery): x{vs:.2f}",
                vs <= 1.10,
            )
        )
    aenqueue = latency.get("aenqueue")
    if aenqueue:
        found.append(
            (
                f"100 concurrent aenqueue <= x0.5 of one by one: x{aenqueue['vs_one_by_one']:.2f}",
                aenqueue["vs_one_by_one"] <= 0.5,
            )
        )
        found.append(
            (
                f"100 concurrent aenqueue <= x1.3 of the floor: x{aenqueue['vs_floor']:.2f}",
                aenqueue["vs_floor"] <= 1.3,
            )
        )
    found += _end_to_end_targets(latency.get("end_to_end", []))
    drains = latency.get("drain", [])
    top = ceiling(latency)
    critical = _critical_path(drains)
    if critical:
        found.append(critical)
    worst = max((d["receive_delete_per_task"] for d in drains), default=None)
    if worst is not None:
        found.append((f"receive + delete <= 0.25 per task (worst {worst:.3f})", worst <= 0.25))
    for path, low, high, factor in (("worker", 1, 4, 2.0), ("lambda", 1, 5, 2.5)):
        one, many = _drain(drains, path, low), _drain(drains, path, high)
        if one and many:
            ratio = many["tasks_per_second"] / one["tasks_per_second"]
            moto = many["moto_core_share"]
            needed = factor * one["tasks_per_second"] * many["moto_cpu_ms_per_task"] / 1000
            found.append(
                (
                    f"{path} drain at {high} >= x{factor} of at {low}: x{ratio:.2f}, or moto "
                    f"the limit: at {moto:.1%} of a core, {moto / top:.0%} of its ceiling "
                    f"({top:.1%}); x{factor} would need {needed:.0%}",
                    ratio >= factor or moto >= SATURATED * top,
                )
            )
    return found


def lambda_duration(latency: dict[str, Any]) -> tuple[float, str] | None:
    """The Lambda path's ms a task at AWS's latency, and how it is made: the process's CPU per
    task plus the DynamoDB round trips a batch waits on (claims ahead: one a task, and the last
    finish), each held as the model holds it, moto's answers left out."""
    one = _drain(latency.get("drain", []), "lambda", 1)
    if one is None or CLAIM not in one["held_ms"]:
        return None
    cpu, trip = one["worker_cpu_ms_per_task"], one["held_ms"][CLAIM]
    trips = (LAMBDA_BATCH + 1) / LAMBDA_BATCH
    why = (
        f"the latency model's Lambda path at 1: the process's CPU {cpu:.2f} ms + {trips} "
        f"DynamoDB round trips of {trip:.1f} ms; Lambda's CPU share at its memory size not modelled"
    )
    return cpu + trips * trip, why


def _render_end_to_end(runs: list[dict[str, Any]]) -> list[str]:
    """One row per system and worker count, then each row's requests by operation."""
    if not runs:
        return []
    n = next((r["n"] for r in runs if "n" in r), 0)
    lines = [
        f"  end to end, {n} tasks (sqs-tasks: enqueue_many + sqs_tasks_worker --concurrency N; "
        "django-tasks-sqs: enqueue_many, N worker threads, no result stored; Celery: apply_async "
        "one by one, solo pool or N threads; sqs-tasks and django-tasks-sqs timed until their "
        "worker deleted the last message, Celery until every result was read); worker CPU "
        "from its ready to its stop:",
        "    system            workers  tasks/s  requests/task  moto CPU ms/task (core)  "
        "worker CPU ms/task  proxy CPU ms/task  ms/task moto answering / not",
    ]
    for r in runs:
        if "error" in r:
            lines.append(f"    {r['system']:17} {r['workers']:7}  {r['error']}")
            continue
        lines.append(
            f"    {r['system']:17} {r['workers']:7}  {r['tasks_per_second']:7.1f}  "
            f"{r['requests_total_per_task']:13.2f}  {r['moto_cpu_ms_per_task']:9.2f} "
            f"({r['moto_core_share']:4.0%}){'':8}  {r['worker_cpu_ms_per_task']:18.2f}  "
            f"{r['proxy_cpu_ms_per_task']:17.2f}  {r.get('moto_busy_ms_per_task', 0):12.1f} / "
            f"{r.get('outside_moto_ms_per_task', 0):.1f}"
        )
    for r in runs:
        if "error" not in r:
            lines.append(f"    {r['system']} {r['workers']}: {_ops(r['requests_per_task'])}")
    return lines


def render_latency(latency: dict[str, Any]) -> list[str]:
    """The latency model's lines of the table."""
    lines = ["", f"Under the latency model ({latency['model']}); moto's CPU beside each figure"]
    enqueue = latency.get("enqueue")
    if enqueue:
        single, bulk = enqueue["single"], enqueue["bulk"]
        lines.append(
            f"  enqueue():        {single['ours_ms']:.2f} ms/task, floor "
            f"{single['floor_ms']:.2f} (x{single['ratio']:.2f}); one SendMessage alone "
            f"{single['one_send_ms']:.2f} (x{single['vs_one_send']:.2f})"
        )
        moto = single.get("moto_ms_per_request", {})
        if moto:
            lines.append("    moto's ms per request: " + _ops(moto))
        lines.append(
            f"  enqueue_many():   {bulk['ours_ms']:.1f} ms per call, floor {bulk['floor_ms']:.1f} "
            f"(x{bulk['ratio']:.2f})"
        )
    aenqueue = latency.get("aenqueue")
    if aenqueue:
        s, cpu = aenqueue["seconds"], aenqueue["moto_cpu_ms_per_task"]
        lines.append(
            f"  {aenqueue['n']} enqueues (width {aenqueue['width']}, medians of "
            f"{aenqueue['rounds']}):"
        )
        for kind, label in (
            ("one_by_one", "enqueue() one by one"),
            ("django_default", "Django's default aenqueue"),
            ("aenqueue", "aenqueue() concurrently"),
            ("floor", "raw requests concurrently"),
        ):
            lines.append(
                f"    {label:28} {s[kind] * 1000:8.0f} ms   moto {cpu[kind]:.2f} ms CPU/task"
            )
        lines.append(
            f"    aenqueue: x{aenqueue['vs_one_by_one']:.2f} of one by one, "
            f"x{aenqueue['vs_floor']:.2f} of the floor; Django's default: "
            f"x{aenqueue['django_default_vs_one_by_one']:.2f} of one by one"
        )
    lines += _render_end_to_end(latency.get("end_to_end", []))
    for t in latency.get("trickle", []):
        window = "no batch window" if t["batch_window"] == 0 else "default batch window"
        lines.append(
            f"  trickle ({t['n']} enqueue() one by one, sqs_tasks_worker at {t['concurrency']}, "
            f"{window}): {t['tasks_per_second']:.1f} tasks/s, receive + delete "
            f"{t['receive_delete_per_task']:.2f}/task, "
            f"moto {t['moto_cpu_ms_per_task']:.1f} ms CPU/task"
        )
    drains = latency.get("drain", [])
    if drains:
        lines.append(f"  drain of a backlog of {drains[0]['n']}:")
        lines.append(
            "    path    conc claim-ahead tasks/s  recv+del/task  requests/task  "
            "moto CPU ms/task (core)  worker CPU ms/task  proxy CPU ms/task"
        )
        for d in drains:
            lines.append(
                f"    {d['path']:7} {d['concurrency']:4} {'on' if d['claim_ahead'] else 'off':11} "
                f"{d['tasks_per_second']:7.1f}  {d['receive_delete_per_task']:13.3f}  "
                f"{d['requests_total_per_task']:13.2f}  {d['moto_cpu_ms_per_task']:9.2f} "
                f"({d['moto_core_share']:4.0%}){'':8}  {d['worker_cpu_ms_per_task']:18.2f}  "
                f"{d['proxy_cpu_ms_per_task']:17.2f}"
            )
        for d in drains:
            lines.append(
                f"    {d['path']} {d['concurrency']}{'' if d['claim_ahead'] else ' no claim ahead'}"
                f": {_ops(d['requests_per_task'])}"
            )
    for probe in latency.get("ceiling", []):
        lines.append(
            f"  moto's ceiling ({probe['when']}): {probe['requests']} claims from "
            f"{probe['threads']} threads, {probe['requests_per_second']:.1f}/s, moto "
            f"{probe['moto_ms_per_request']:.1f} ms CPU each, {probe['moto_core_share']:.1%} "
            "of a core"
        )
    checks = targets(latency)
    if checks:
        lines.append("  targets:")
        lines += [f"    [{'met' if ok else 'MISSED'}] {text}" for text, ok in checks]
    return lines
