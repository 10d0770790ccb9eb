"""EventBridge Scheduler's recurring expressions, `cron(...)` and `rate(...)`, as AWS reads them.

The cron syntax is AWS's six fields (minutes hours day-of-month month day-of-week year, with
`?`, `L`, `W` and `#`; day-of-week 1-7 is SUN-SAT), not Unix cron's five. In a time zone with
daylight saving time a firing whose local time does not exist (spring forward) is skipped, and
one whose local time happens twice (fall back) fires once, at the first; a rate of days is a
24-hour duration, whatever the clock does.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# A rate schedule's firings count from this instant: the StartDate sync gives every rate
# schedule, so AWS's firings and the ones computed here fall on the same grid.
RATE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MIN_YEAR, MAX_YEAR = 1970, 2199
_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
MONTHS = {name: n for n, name in enumerate(_MONTH_NAMES, 1)}
# AWS numbers days of the week 1 (SUN) to 7 (SAT).
WEEKDAYS = {name: n for n, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}

_CRON = re.compile(r"^cron\((.*)\)$")
_RATE = re.compile(r"^rate\((\d+)\s+([a-z]+)\)$")


class ExpressionError(ValueError):
    """A schedule expression EventBridge Scheduler would refuse; the message says why."""


def _aws_weekday(day: date) -> int:
    """1 (Sunday) to 7 (Saturday)."""
    return (day.weekday() + 1) % 7 + 1


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_MINUTE = _Field("minutes", 0, 59, {})
_HOUR = _Field("hours", 0, 23, {})
_DOM = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, MONTHS)
_DOW = _Field("day-of-week", 1, 7, WEEKDAYS)
_YEAR = _Field("year", MIN_YEAR, MAX_YEAR, {})


def _value(field: _Field, text: str) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names[upper]
    if not text.isdigit():
        raise ExpressionError(f"{field.name}: {text!r} is not a number or a name")
    value = int(text)
    if not field.low <= value <= field.high:
        raise ExpressionError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _values(field: _Field, text: str) -> frozenset[int]:
    """The values of a field made of `*`, `a`, `a-b`, `*/n`, `a/n`, `a-b/n`, comma-separated."""
    found: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ExpressionError(f"{field.name}: empty item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ExpressionError(f"{field.name}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(field, first), _value(field, last)
            if low > high:
                raise ExpressionError(f"{field.name}: range {base!r} runs backwards")
        else:
            low = _value(field, base)
            high = field.high if step_text else low
        found.update(range(low, high + 1, step))
    return frozenset(found)


@dataclass(frozen=True)
class _DayRule:
    """Which days of a month a cron's day-of-month or day-of-week field picks."""

    text: str
    field: _Field

    def days(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        if self.field is _DOM:
            return self._month_days(year, month, last)
        return self._week_days(year, month, last)

    def _month_days(self, year: int, month: int, last: int) -> set[int]:
        text = self.text.upper()
        if text == "L":
            return {last}
        if text == "LW":
            return {_nearest_weekday(year, month, last, last)}
        if text.endswith("W"):
            day = _value(_DOM, text[:-1])
            return {_nearest_weekday(year, month, min(day, last), last)} if day <= last else set()
        return {d for d in _values(_DOM, self.text) if d <= last}

    def _week_days(self, year: int, month: int, last: int) -> set[int]:
        text = self.text.upper()
        weekdays = {d: _aws_weekday(date(year, month, d)) for d in range(1, last + 1)}
        if text == "L":
            return {d for d, w in weekdays.items() if w == 7}
        if text.endswith("L"):
            wanted = _value(_DOW, text[:-1])
            return {max(d for d, w in weekdays.items() if w == wanted)}
        if "#" in text:
            day_text, _, nth_text = text.partition("#")
            wanted = _value(_DOW, day_text)
            if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
                raise ExpressionError(f"day-of-week: {self.text!r} needs #1 to #5")
            matching = sorted(d for d, w in weekdays.items() if w == wanted)
            nth = int(nth_text)
            return {matching[nth - 1]} if nth <= len(matching) else set()
        chosen = _values(_DOW, self.text)
        return {d for d, w in weekdays.items() if w in chosen}

    def check(self) -> None:
        """Parse once so a bad field fails when the expression is read, not at a firing."""
        self.days(2000, 1)


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """The weekday closest to day, within the month (AWS's and Quartz's W)."""
    weekday = date(year, month, day).weekday()  # 0 Monday .. 6 Sunday
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the last day
        return day + 1 if day < last else day - 2
    return day


class _Recurring:
    """What cron and rate expressions share: next firing and membership, from their firings."""

    def firings(self, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """Every firing strictly after `after`, in UTC, in order."""
        raise NotImplementedError

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first firing after `after`, or None if the expression never fires again."""
        return next(self.firings(after, zone), None)

    def fires_at(self, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether moment is one of the expression's firings."""
        return self.next_after(moment - timedelta(seconds=1), zone) == moment


@dataclass(frozen=True)
class Cron(_Recurring):
    """A parsed `cron(minutes hours day-of-month month day-of-week year)`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    day_rule: _DayRule
    months: frozenset[int]
    years: frozenset[int]

    def firings(self, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """Every firing strictly after `after` (aware), in UTC, in order."""
        return (moment for moment in self._walk(after, zone, backward=False) if moment > after)

    def previous_before(self, before: datetime, zone: ZoneInfo) -> datetime | None:
        """The last firing strictly before `before`, or None if it never fired before it."""
        earlier = (m for m in self._walk(before, zone, backward=True) if m < before)
        return next(earlier, None)

    def _walk(self, start: datetime, zone: ZoneInfo, *, backward: bool) -> Iterator[datetime]:
        """The instants of every wall-clock firing from start's local day on (or back), in order."""
        local = start.astimezone(zone)

        def ahead(value: tuple[int, ...], mark: tuple[int, ...]) -> bool:
            return value < mark if backward else value > mark

        def ordered(values: Iterable[int]) -> list[int]:
            return sorted(values, reverse=backward)

        for year in ordered(self.years):
            if ahead((local.year,), (year,)):
                continue
            for month in ordered(self.months):
                if ahead((local.year, local.month), (year, month)):
                    continue
                for day in ordered(self.day_rule.days(year, month)):
                    if ahead((local.year, local.month, local.day), (year, month, day)):
                        continue
                    for hour in ordered(self.hours):
                        for minute in ordered(self.minutes):
                            moment = _existing(datetime(year, month, day, hour, minute), zone)
                            if moment is not None:
                                yield moment


def _existing(local: datetime, zone: ZoneInfo) -> datetime | None:
    """local wall-clock time in zone as a UTC instant; None if DST skips it (first if twice)."""
    aware = local.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        return None  # Spring forward: this wall-clock time never happens.
    return instant


@dataclass(frozen=True)
class Rate(_Recurring):
    """A parsed `rate(value unit)`: a firing every `seconds`, counted from RATE_EPOCH."""

    expression: str
    seconds: int

    def firings(self, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """Every firing strictly after `after`, in UTC, in order (the time zone plays no part)."""
        elapsed = (after - RATE_EPOCH) // timedelta(seconds=self.seconds)
        moment = RATE_EPOCH + (elapsed + 1) * timedelta(seconds=self.seconds)
        while True:
            yield moment.astimezone(UTC)
            moment += timedelta(seconds=self.seconds)

    def previous_before(self, before: datetime, zone: ZoneInfo) -> datetime | None:
        """The last firing strictly before `before`."""
        return self.next_after(before - timedelta(seconds=self.seconds + 1e-6), zone)


Expression = Cron | Rate


def parse(expression: str) -> Expression:
    """A `cron(...)` or `rate(...)` expression, checked as EventBridge Scheduler checks it."""
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if unit not in RATE_UNITS or value < 1:
            raise ExpressionError(
                f"{expression!r}: a rate is a positive whole number of minutes, hours or days"
            )
        if (value == 1) != (not unit.endswith("s")):
            raise ExpressionError(
                f"{expression!r}: say `rate(1 {unit.rstrip('s')})` for one, "
                f"`rate({value} {unit.rstrip('s')}s)` for more"
            )
        return Rate(expression, value * RATE_UNITS[unit])
    cron = _CRON.match(expression)
    if not cron:
        raise ExpressionError(
            f"{expression!r} is neither cron(minutes hours day-of-month month day-of-week year) "
            "nor rate(value unit)"
        )
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ExpressionError(
            f"{expression!r} has {len(fields)} fields; AWS cron has 6: "
            "minutes hours day-of-month month day-of-week year"
        )
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ExpressionError(
            f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        )
    day_rule = _DayRule(dow, _DOW) if dom == "?" else _DayRule(dom, _DOM)
    day_rule.check()
    return Cron(
        expression,
        minutes=_values(_MINUTE, minute),
        hours=_values(_HOUR, hour),
        day_rule=day_rule,
        months=_values(_MONTH, month),
        years=_values(_YEAR, year),
    )
