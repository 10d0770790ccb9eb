"""AWS's cron and rate expressions, checked against the examples AWS documents."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from sqs_tasks.periodic.expressions import RATE_EPOCH, ExpressionError, parse

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
# A Wednesday.
START = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


def _next(
    expression: str, count: int, zone: ZoneInfo = UTC_ZONE, after: datetime = START
) -> list[str]:
    firings = parse(expression).firings(after, zone)
    return [f"{m:%a %Y-%m-%d %H:%M}" for m in islice(firings, count)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # AWS: "Run at 10:00 am (UTC) every day".
        ("cron(0 10 * * ? *)", ["Wed 2026-12-02 10:00", "Thu 2026-12-03 10:00"]),
        # AWS: "Run at 12:15 pm (UTC) every day".
        ("cron(15 12 * * ? *)", ["Wed 2026-12-02 12:15", "Thu 2026-12-03 12:15"]),
        # AWS: "Run at 6:00 pm (UTC) every Monday through Friday".
        (
            "cron(0 18 ? * MON-FRI *)",
            [
                "Wed 2026-12-02 18:00",
                "Thu 2026-12-03 18:00",
                "Fri 2026-12-04 18:00",
                "Mon 2026-12-07 18:00",
            ],
        ),
        # AWS: "Run at 8:00 am (UTC) every first day of the month".
        ("cron(0 8 1 * ? *)", ["Fri 2027-01-01 08:00", "Mon 2027-02-01 08:00"]),
        # AWS: "Run every 15 minutes".
        ("cron(0/15 * * * ? *)", ["Wed 2026-12-02 00:15", "Wed 2026-12-02 00:30"]),
        # AWS: "Run every 5 minutes Monday through Friday between 8:00 am and 5:55 pm".
        ("cron(0/5 8-17 ? * MON-FRI *)", ["Wed 2026-12-02 08:00", "Wed 2026-12-02 08:05"]),
        # AWS: "Run at 9 am on the first Monday of each month" (2#1: day 2 is MON).
        ("cron(0 9 ? * 2#1 *)", ["Mon 2026-12-07 09:00", "Mon 2027-01-04 09:00"]),
        # The last day of the month, and the last Friday (6L).
        ("cron(0 0 L * ? *)", ["Thu 2026-12-31 00:00", "Sun 2027-01-31 00:00"]),
        ("cron(30 3 ? * 6L *)", ["Fri 2026-12-25 03:30", "Fri 2027-01-29 03:30"]),
        # The weekday nearest the 6th: Sunday 2026-12-06 -> Monday 7th; Sat 2027-02-06 -> Fri 5th.
        (
            "cron(0 12 6W * ? *)",
            ["Mon 2026-12-07 12:00", "Wed 2027-01-06 12:00", "Fri 2027-02-05 12:00"],
        ),
        # Years narrow it down; names are case-insensitive.
        ("cron(0 0 1 jan ? 2028-2029)", ["Sat 2028-01-01 00:00", "Mon 2029-01-01 00:00"]),
    ],
)
def test_cron_fires_as_aws_documents(expression: str, expected: list[str]) -> None:
    assert _next(expression, len(expected)) == expected


def test_a_cron_that_runs_out_of_years_stops() -> None:
    assert _next("cron(0 0 1 1 ? 2027)", 3) == ["Fri 2027-01-01 00:00"]


def test_the_spring_forward_gap_is_skipped_and_the_fall_back_hour_fires_once() -> None:
    # Europe/Paris: 2027-03-28 02:00 -> 03:00 (no 02:30); 2026-10-25 03:00 -> 02:00 (02:30 twice).
    spring = parse("cron(30 2 * * ? *)").firings(datetime(2027, 3, 27, tzinfo=UTC), PARIS)
    assert [f"{m:%m-%d %H:%M}Z" for m in islice(spring, 2)] == ["03-27 01:30Z", "03-29 00:30Z"]
    autumn = parse("cron(30 2 * * ? *)").firings(datetime(2026, 10, 24, tzinfo=UTC), PARIS)
    assert [f"{m:%m-%d %H:%M}Z" for m in islice(autumn, 3)] == [
        "10-24 00:30Z",  # 02:30 CEST
        "10-25 00:30Z",  # 02:30 CEST, the first of two: the second (01:30Z) does not fire
        "10-26 01:30Z",  # 02:30 CET
    ]


def test_a_rate_fires_on_a_grid_from_its_epoch_whatever_the_time_zone() -> None:
    after = RATE_EPOCH + timedelta(days=10_000, minutes=3)
    utc = list(islice(parse("rate(5 minutes)").firings(after, UTC_ZONE), 3))
    paris = list(islice(parse("rate(5 minutes)").firings(after, PARIS), 3))
    assert utc == paris
    assert [m - after for m in utc] == [timedelta(minutes=m) for m in (2, 7, 12)]
    assert parse("rate(1 day)").next_after(after, UTC_ZONE) == RATE_EPOCH + timedelta(days=10_001)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("cron(0 10 * * *)", "has 5 fields; AWS cron has 6"),
        ("cron(0 10 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 10 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(60 10 * * ? *)", "minutes: 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours: 24 is outside 0-23"),
        ("cron(0 0 32 * ? *)", "day-of-month: 32 is outside 1-31"),
        ("cron(0 0 ? * 8 *)", "day-of-week: 8 is outside 1-7"),
        ("cron(0 0 ? * FUN *)", "day-of-week: 'FUN' is not a number or a name"),
        ("cron(0 0 ? * 2#6 *)", "needs #1 to #5"),
        ("cron(0/0 * * * ? *)", "step '0' is not a positive number"),
        ("cron(0 5-3 * * ? *)", "range '5-3' runs backwards"),
        ("cron(0 0 1 1 ? 2300)", "year: 2300 is outside 1970-2199"),
        ("rate(0 minutes)", "positive whole number"),
        ("rate(5 weeks)", "positive whole number"),
        ("rate(1 minutes)", "say `rate(1 minute)` for one"),
        ("rate(5 minute)", "`rate(5 minutes)` for more"),
        ("every 5 minutes", "neither cron("),
    ],
)
def test_a_bad_expression_says_what_is_wrong(expression: str, problem: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(problem)):
        parse(expression)


@pytest.mark.parametrize(
    "expression",
    ["cron(0 10 * * ? *)", "cron(30 2 * * ? *)", "cron(0 9 ? * 2#1 *)", "rate(5 minutes)"],
)
def test_the_previous_firing_is_the_one_before_the_next(expression: str) -> None:
    parsed = parse(expression)
    firings = list(islice(parsed.firings(datetime(2026, 10, 20, tzinfo=UTC), PARIS), 8))

    for earlier, later in pairwise(firings):
        assert parsed.previous_before(later, PARIS) == earlier
        assert parsed.fires_at(later, PARIS)
        assert not parsed.fires_at(later + timedelta(minutes=1), PARIS)
    assert parse("cron(0 0 1 1 ? 2027)").previous_before(START, UTC_ZONE) is None
