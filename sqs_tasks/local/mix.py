"""The demo mix of the example project's tasks, and the forged message of --dead-letter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .expectations import Expected, Tracker, failed_with, returns
from .stack import Deployment

# The deferred task of the mix waits this long (an SQS DelaySeconds).
DEFER = timedelta(seconds=5)
FAN_OUT = 3
FORGED_BODY = (
    '{"v":1,"id":"forged","backend":"default","task":"example.tasks.add",'
    '"q":"default","p":0,"sig":"not-a-valid-signature"}'
)


def enqueue_mix(tracker: Tracker) -> list[str]:
    """The example project's mix, as its web app would enqueue it; returns the result ids."""
    from example import tasks

    run_after = datetime.now(UTC) + DEFER

    def waited(result: Any) -> str | None:
        if result.started_at is None or result.started_at < run_after:
            return f"ran early: started {result.started_at}, due {run_after}"
        return returns(42)(result)

    def saw_itself(result: Any) -> str | None:
        return returns({"id": result.id, "attempt": 1})(result)

    def enqueued_children(result: Any) -> str | None:
        return None if len(result.return_value) == FAN_OUT else f"expected {FAN_OUT} ids"

    def retried(result: Any) -> str | None:
        if result.attempts != 2 or len(result.errors) != 1:
            return f"expected 2 attempts, 1 error; got {result.attempts}, {len(result.errors)}"
        return returns("payments answered on attempt 2")(result)

    mix: list[tuple[Any, Expected]] = [
        (tasks.add.enqueue(2, 3), Expected("add(2, 3)", "SUCCESSFUL", returns(5))),
        (tasks.shout.enqueue("hi"), Expected("shout('hi') priority", "SUCCESSFUL", returns("HI"))),
        (
            tasks.shout.using(queue_name="emails", priority=-5).enqueue("you've got mail"),
            Expected("shout(...) emails queue", "SUCCESSFUL", returns("YOU'VE GOT MAIL")),
        ),
        (
            tasks.greet.enqueue("Ada"),
            Expected("greet('Ada') async", "SUCCESSFUL", returns("Hello, Ada!")),
        ),
        (tasks.whoami.enqueue(), Expected("whoami() context", "SUCCESSFUL", saw_itself)),
        (
            tasks.fan_out.enqueue(FAN_OUT),
            Expected(f"fan_out({FAN_OUT})", "SUCCESSFUL", enqueued_children),
        ),
        (
            tasks.flaky.enqueue("payments"),
            Expected("flaky('payments') retry", "SUCCESSFUL", retried),
        ),
        (
            tasks.fail.enqueue("on purpose"),
            Expected("fail('on purpose')", "FAILED", failed_with("ValueError")),
        ),
        (
            tasks.add.using(run_after=run_after).enqueue(40, 2),
            Expected(f"add(40, 2) deferred {DEFER.seconds} s", "SUCCESSFUL", waited),
        ),
    ]
    for result, expected in mix:
        tracker.expect(result.id, expected)
    return [result.id for result, _ in mix]


def send_forged(deployment: Deployment, tracker: Tracker, mappings: Sequence[Any]) -> None:
    """A message nobody signed, on the default queue: refused until SQS dead-letters it."""
    (default,) = [m for m in mappings if m.config.queue_name.endswith("-default")]
    tracker.forged_dead_letter_arn = default.config.dead_letter_arn
    tracker.forged_id = deployment.client("sqs").send_message(
        QueueUrl=default.config.queue_url, MessageBody=FORGED_BODY
    )["MessageId"]
