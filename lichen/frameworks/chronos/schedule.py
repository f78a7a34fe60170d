"""ISO 8601 repeating schedules `R[n]/[start]/Pperiod`: parse, step, decide what is due (pure).

Theory of operation. A `Schedule` is the job's stored `schedule` string made typed: how many
runs are left (`repeats`, -1 = forever), the next occurrence (`start`) and the `period`. The
occurrences are `start + k * period` for k = 0, 1, ... (fewer than `repeats` when that is not
-1). The scheduler asks `due(schedule, now, epsilon)`; every occurrence at or before `now` is
consumed: the latest one is run when it is no older than `epsilon`, the others are skipped (never
stacked). The answer carries the schedule advanced past `now`, which the service stores back as
the job's `schedule` (Chronos rewrites it the same way, so GET shows it move).

Time zones. `start` is an aware datetime. Without `scheduleTimeZone` its zone is the fixed offset
written in the string (UTC when none is written, as Chronos on a UTC JVM). With one, the wall-clock
fields of the string are kept and read in that zone (`tz` holds its IANA name); Chronos's
`withZoneRetainFields`. Legacy abbreviations (`PST`, `EST`, ...) map to the IANA zone of the place
(so `EST` follows New York's daylight saving time), see `LEGACY_ZONES`.

Arithmetic (`add_period`), the java.time rules: the date part (years, months, weeks, days) moves
the wall-clock date in the schedule's zone, keeping the time of day; a month step from the 31st
lands on the month's last day (Jan 31 + P1M = Feb 28/29). The time part (hours, minutes, seconds)
is an absolute duration. A wall-clock time that does not exist that day (the spring-forward gap)
stays *nominal* in `start`, so the next day is back at the usual time; its instant is the first
valid instant after it, which is the transition itself (a daily 02:30 job in New York runs at
03:00 EDT on the day clocks jump from 02:00 to 03:00). A wall-clock time that happens twice
(fall back) is the first of the two, unless the string's offset names the second.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aniso8601
from aniso8601.builders import TupleBuilder

from lichen.errors import InvalidRequest

__all__ = [
    "LEGACY_ZONES",
    "Decision",
    "Period",
    "Schedule",
    "ScheduleError",
    "add_period",
    "due",
    "format_period",
    "format_schedule",
    "format_start",
    "instant",
    "next_run",
    "occurrence",
    "parse_duration",
    "parse_schedule",
    "resolve_zone",
]

_GRAMMAR = re.compile(r"(R\d*)/(.*)/(P.*)", re.DOTALL)
_EARLIEST = 1.0  # 1970-01-01T00:00:01Z: Chronos refuses anything earlier
_LONGEST = 1000 * 365.2425 * 86400  # keeps every step inside datetime's years 1..9999

# Abbreviations people write for a place; mapped to the place's zone so daylight saving follows.
# Those not listed must be real tz database names (`CET`, `EET` and `UTC` are), else 400.
LEGACY_ZONES: dict[str, str] = {
    "UTC": "UTC", "GMT": "UTC", "UT": "UTC", "Z": "UTC", "ZULU": "UTC",
    "EST": "America/New_York", "EDT": "America/New_York",
    "CST": "America/Chicago", "CDT": "America/Chicago",
    "MST": "America/Denver", "MDT": "America/Denver",
    "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles",
    "AKST": "America/Anchorage", "AKDT": "America/Anchorage",
    "HST": "Pacific/Honolulu", "HDT": "Pacific/Honolulu",
    "JST": "Asia/Tokyo", "KST": "Asia/Seoul",
    "CEST": "Europe/Berlin", "EEST": "Europe/Helsinki", "WEST": "Europe/Lisbon",
    "MSK": "Europe/Moscow",
    "AEST": "Australia/Sydney", "AEDT": "Australia/Sydney",
    "ACST": "Australia/Adelaide", "ACDT": "Australia/Adelaide",
    "AWST": "Australia/Perth",
    "NZST": "Pacific/Auckland", "NZDT": "Pacific/Auckland",
}


class ScheduleError(InvalidRequest):
    """A schedule, period or time zone that cannot be used (400, naming the field)."""

    def __init__(self, message: str, *, field: str = "schedule") -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True, slots=True)
class Period:
    """An ISO 8601 period. Date fields are calendar steps, time fields absolute durations."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0.0
    weeks: int = 0

    @property
    def time_seconds(self) -> float:
        return self.hours * 3600 + self.minutes * 60 + self.seconds

    @property
    def is_zero(self) -> bool:
        return not (self.years or self.months or self.weeks or self.days or self.time_seconds)

    @property
    def approx_seconds(self) -> float:
        """An estimate of the length (a year of 365.2425 days), to seek far occurrences."""
        days = self.years * 365.2425 + self.months * 30.436875 + self.weeks * 7 + self.days
        return days * 86400 + self.time_seconds


@dataclass(frozen=True, slots=True)
class Schedule:
    repeats: int        # runs left; -1 = forever
    start: datetime     # the next occurrence, aware; wall-clock fields nominal in `tz`
    period: Period
    tz: str | None      # IANA zone from scheduleTimeZone; None = the fixed offset of `start`


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do at `now`: run the occurrence at `run_at` (None: nothing), `skipped` missed
    ones, and store `next` (the same schedule when nothing was consumed)."""

    run_at: float | None
    skipped: int
    next: Schedule


# --------------------------------------------------------------------------- parsing

def parse_schedule(text: str, *, time_zone: str = "", now: float) -> Schedule:
    """`R[n]/[start]/Pperiod`; an empty start is `now`. ScheduleError when anything is off."""
    try:
        return _parse_schedule(text, time_zone=time_zone, now=now)
    except (ValueError, OverflowError) as e:  # dates past year 9999 after a zone change, ...
        raise ScheduleError(f"Cannot parse schedule '{text}': {e}") from None


def _parse_schedule(text: str, *, time_zone: str, now: float) -> Schedule:
    if not isinstance(text, str):
        raise ScheduleError(f"Cannot parse schedule '{text}': not a string")
    match = _GRAMMAR.fullmatch(text.strip())
    if match is None:
        raise ScheduleError(f"Cannot parse schedule '{text}': expected R[n]/[start]/Pperiod")
    rep_text, start_text, period_text = match.groups()
    repeats = int(rep_text[1:]) if len(rep_text) > 1 else -1
    period = _parse_period(period_text, text)
    zone = resolve_zone(time_zone) if time_zone else None
    if start_text == "":
        start = datetime.fromtimestamp(math.floor(now * 1000) / 1000, UTC)
        if zone is not None:
            start = start.astimezone(zone)
    else:
        start = _parse_start(start_text, text)
        if zone is not None:
            start = _retain_fields(start, zone)
    if instant(start) < _EARLIEST:
        raise ScheduleError(f"Cannot parse schedule '{text}': start before 1970-01-01T00:00:01Z")
    return Schedule(repeats, start, period, _zone_name(zone))


def parse_duration(text: str) -> float:
    """An ISO 8601 duration (`epsilon`, e.g. `PT60S`) in seconds; a month counts 30 days."""
    if not isinstance(text, str) or not text.startswith("P"):
        raise ScheduleError(f"Cannot parse duration '{text}'", field="epsilon")
    try:
        period = _parse_period(text, text)
    except ScheduleError:
        raise ScheduleError(f"Cannot parse duration '{text}'", field="epsilon") from None
    days = period.years * 365 + period.months * 30 + period.weeks * 7 + period.days
    return days * 86400 + period.time_seconds


def resolve_zone(name: str) -> ZoneInfo:
    """An IANA zone or a legacy abbreviation; ScheduleError naming the zone otherwise."""
    key = LEGACY_ZONES.get(name.upper(), name)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"Unknown time zone '{name}' in scheduleTimeZone",
                            field="scheduleTimeZone") from None


def _zone_name(zone: ZoneInfo | None) -> str | None:
    return None if zone is None else zone.key


def _parse_period(period_text: str, text: str) -> Period:
    try:
        parsed = aniso8601.parse_duration(period_text, builder=TupleBuilder)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ScheduleError(f"Cannot parse schedule '{text}': bad period ({exc})") from None
    try:
        period = Period(
            years=_whole(parsed.PnY), months=_whole(parsed.PnM), weeks=_whole(parsed.PnW),
            days=_whole(parsed.PnD), hours=_whole(parsed.TnH), minutes=_whole(parsed.TnM),
            seconds=float(parsed.TnS or 0),
        )
    except ValueError:
        raise ScheduleError(
            f"Cannot parse schedule '{text}': only seconds may have a fraction") from None
    if period.is_zero:
        raise ScheduleError(f"Cannot parse schedule '{text}': the period is zero")
    if period.approx_seconds > _LONGEST or not math.isfinite(period.seconds):
        raise ScheduleError(f"Cannot parse schedule '{text}': the period is over 1000 years")
    return period


def _whole(value: str | None) -> int:
    if value is None:
        return 0
    number = float(value)
    if number != int(number) or number < 0:
        raise ValueError(value)
    return int(number)


def _parse_start(start_text: str, text: str) -> datetime:
    try:
        if "T" in start_text:
            parsed: datetime = aniso8601.parse_datetime(start_text)
        else:  # a bare date is midnight, as Joda's dateTimeParser reads it
            date = aniso8601.parse_date(start_text)
            parsed = datetime(date.year, date.month, date.day)
    except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:
        raise ScheduleError(f"Cannot parse schedule '{text}': bad start ({exc})") from None
    offset = parsed.utcoffset()
    zone: tzinfo = UTC if not offset else timezone(offset)
    return parsed.replace(tzinfo=zone)


def _retain_fields(start: datetime, zone: ZoneInfo) -> datetime:
    """The same wall-clock fields in `zone`; an ambiguous time takes the fold whose offset the
    string named, so a printed schedule reads back as the same instant."""
    offset = start.utcoffset()
    moved = start.replace(tzinfo=zone, fold=0)
    if moved.utcoffset() != offset and moved.replace(fold=1).utcoffset() == offset:
        moved = moved.replace(fold=1)
    return moved


# --------------------------------------------------------------------------- arithmetic

def add_period(dt: datetime, period: Period, n: int = 1) -> datetime:
    """`dt + n * period`: the date part on the wall clock of dt's zone (month ends clamped),
    then the time part as an absolute duration. The result may be a nominal (nonexistent)
    wall-clock time when the time part is zero; `instant` resolves it."""
    months = (period.years * 12 + period.months) * n
    days = (period.weeks * 7 + period.days) * n
    result = dt
    if months:
        index = dt.year * 12 + dt.month - 1 + months
        year, month = divmod(index, 12)
        month += 1
        day = min(dt.day, calendar.monthrange(year, month)[1])
        result = result.replace(year=year, month=month, day=day)
    if days:
        result = result + timedelta(days=days)  # aware + timedelta keeps the wall clock
    seconds = period.time_seconds * n
    if seconds:
        zone = result.tzinfo
        at = instant(result) + seconds
        result = datetime.fromtimestamp(at, UTC).astimezone(zone)
    return result


def instant(dt: datetime) -> float:
    """Epoch seconds of an aware datetime; a nonexistent wall-clock time (a DST gap) is the
    first valid instant after it: the transition."""
    at = dt.timestamp()
    zone = dt.tzinfo
    if isinstance(zone, ZoneInfo):
        back = datetime.fromtimestamp(at, UTC).astimezone(zone)
        if back.replace(tzinfo=None) != dt.replace(tzinfo=None):
            return _gap_end(dt, zone)
    return at


def _gap_end(dt: datetime, zone: ZoneInfo) -> float:
    """The first instant whose wall clock in `zone` is at or after dt's (nonexistent) one."""
    wall = dt.replace(tzinfo=None)
    lo = math.floor(dt.replace(fold=1).timestamp()) - 1  # wall clock before dt's
    hi = math.ceil(dt.replace(fold=0).timestamp())       # wall clock after dt's
    if hi <= lo:
        lo, hi = hi - 86400, lo + 86400
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return float(hi)


def occurrence(schedule: Schedule, k: int) -> datetime:
    """The k-th occurrence (0 = start), stepped from start so month ends do not drift."""
    return add_period(schedule.start, schedule.period, k) if k else schedule.start


# --------------------------------------------------------------------------- deciding

def due(schedule: Schedule, now: float, epsilon: float) -> Decision:
    """Consume every occurrence at or before `now`: run the latest if it is no more than
    `epsilon` late, skip the rest; `next` starts after `now` (or is exhausted)."""
    k = _count_through(schedule, now)
    if k == 0:
        return Decision(None, 0, schedule)
    latest = instant(occurrence(schedule, k - 1))
    if now - latest <= epsilon:
        run_at: float | None = latest
        skipped = k - 1
    else:
        run_at = None
        skipped = k
    repeats = -1 if schedule.repeats < 0 else schedule.repeats - k
    return Decision(run_at, skipped, replace(schedule, repeats=repeats,
                                             start=occurrence(schedule, k)))


def _count_through(schedule: Schedule, now: float) -> int:
    """How many occurrences fall at or before `now` (at most `repeats`)."""
    if schedule.repeats == 0:
        return 0
    first = instant(schedule.start)
    if first > now:
        return 0
    k = int((now - first) // schedule.period.approx_seconds) + 1
    while k > 1 and instant(occurrence(schedule, k - 1)) > now:
        k -= 1
    while instant(occurrence(schedule, k)) <= now:
        k += 1
    return k if schedule.repeats < 0 else min(k, schedule.repeats)


def next_run(schedule: Schedule) -> float | None:
    """Epoch seconds of the next occurrence; None once the repeats are used up."""
    return None if schedule.repeats == 0 else instant(schedule.start)


# --------------------------------------------------------------------------- printing

def format_schedule(schedule: Schedule) -> str:
    """`R<n>/<yyyy-MM-ddTHH:mm:ss.SSS(Z|±HH:MM)>/<period>`, `R` alone for forever."""
    repeats = "" if schedule.repeats < 0 else str(schedule.repeats)
    return f"R{repeats}/{format_start(schedule.start)}/{format_period(schedule.period)}"


def format_start(start: datetime) -> str:
    """In the schedule's own zone, as Joda's ISODateTimeFormat.dateTime() prints it: `Z` for
    UTC, else the offset, so reading it back with scheduleTimeZone gives the same instant."""
    offset = start.utcoffset() or timedelta(0)
    if offset:
        total = int(offset.total_seconds())
        sign = "+" if total >= 0 else "-"
        hours, minutes = divmod(abs(total) // 60, 60)
        suffix = f"{sign}{hours:02d}:{minutes:02d}"
    else:
        suffix = "Z"
    return start.strftime("%Y-%m-%dT%H:%M:%S") + f".{start.microsecond // 1000:03d}" + suffix


def format_period(period: Period) -> str:
    """ISO 8601 back: `P1Y2M3DT4H5M6S`, zero fields left out."""
    date = "".join(f"{value}{unit}" for value, unit in (
        (period.years, "Y"), (period.months, "M"), (period.weeks, "W"), (period.days, "D"),
    ) if value)
    seconds = period.seconds
    sec_text = f"{int(seconds)}" if seconds == int(seconds) else f"{seconds:.6f}".rstrip("0")
    time = "".join(f"{value}{unit}" for value, unit in (
        (period.hours, "H"), (period.minutes, "M"), (sec_text, "S"),
    ) if value and value != "0")
    return "P" + date + ("T" + time if time else "")
