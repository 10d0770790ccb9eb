"""The latency model's part of the benchmark's table, and its targets checked."""

from __future__ import annotations

from typing import Any


def _ops(per_task: dict[str, float]) -> str:
    return ", ".join(f"{op.split('.', 1)[1]} {v:.2f}" for op, v in per_task.items() if v >= 0.005)


def _drain(drains: list[dict[str, Any]], path: str, concurrency: int) -> dict[str, Any] | None:
    for run in drains:
        if run["path"] == path and run["concurrency"] == concurrency and run["claim_ahead"]:
            return run
    return None


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
    drains = latency.get("drain", [])
    worst = max((d["receive_delete_per_task"] for d in drains), default=None)
    if worst is not None:
        found.append((f"receive + delete <= 0.25 per task (worst {worst:.3f})", worst <= 0.25))
    for path, low, high, factor in (("worker", 1, 4, 2.0), ("lambda", 1, 5, 2.5)):
        one, many = _drain(drains, path, low), _drain(drains, path, high)
        if one and many:
            ratio = many["tasks_per_second"] / one["tasks_per_second"]
            moto = many["moto_core_share"]
            found.append(
                (
                    f"{path} drain at {high} >= x{factor} of at {low}: x{ratio:.2f} "
                    f"(moto at {moto:.0%} of a core)",
                    ratio >= factor or moto >= 0.9,
                )
            )
    return found


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
    e2e = latency.get("end_to_end")
    if e2e:
        lines.append(
            f"  end to end ({e2e['n']} tasks, enqueue_many + sqs_tasks_worker): "
            f"{e2e['tasks_per_second']:.0f} tasks/s; {e2e['requests_total_per_task']:.2f} "
            f"requests/task; moto {e2e['moto_cpu_ms_per_task']:.2f} ms CPU/task "
            f"({e2e['moto_core_share']:.0%} of a core)"
        )
        lines.append(f"    requests per task: {_ops(e2e['requests_per_task'])}")
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
            "moto CPU ms/task (core)"
        )
        for d in drains:
            lines.append(
                f"    {d['path']:7} {d['concurrency']:4} {'on' if d['claim_ahead'] else 'off':11} "
                f"{d['tasks_per_second']:7.1f}  {d['receive_delete_per_task']:13.3f}  "
                f"{d['requests_total_per_task']:13.2f}  {d['moto_cpu_ms_per_task']:6.2f} "
                f"({d['moto_core_share']:.0%})"
            )
        for d in drains:
            lines.append(
                f"    {d['path']} {d['concurrency']}{'' if d['claim_ahead'] else ' no claim ahead'}"
                f": {_ops(d['requests_per_task'])}"
            )
    for p in latency.get("peers", []):
        if "error" in p:
            lines.append(f"  {p['name']}: {p['error']}")
            continue
        lines.append(
            f"  {p['name']} end to end ({p['n']} tasks, 1 worker): {p['tasks_per_second']:.0f} "
            f"tasks/s; {p['requests_total_per_task']:.2f} requests/task; moto "
            f"{p['moto_cpu_ms_per_task']:.2f} ms CPU/task ({p['moto_core_share']:.0%} of a core)"
        )
        lines.append(f"    requests per task: {_ops(p['requests_per_task'])}")
    checks = targets(latency)
    if checks:
        lines.append("  targets:")
        lines += [f"    [{'met' if ok else 'MISSED'}] {text}" for text, ok in checks]
    return lines
