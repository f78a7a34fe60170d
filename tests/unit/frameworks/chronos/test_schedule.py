"""Schedules: the grammar, time zones, calendar steps, DST, missed runs and epsilon."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lichen.frameworks.chronos.schedule import (
    Period,
    Schedule,
    ScheduleError,
    add_period,
    due,
    format_schedule,
    instant,
    next_run,
    occurrence,
    parse_duration,
    parse_schedule,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def wall(at: float, zone: str) -> tuple[int, int]:
    local = datetime.fromtimestamp(at, ZoneInfo(zone))
    return local.hour, local.minute


# --------------------------------------------------------------------------- parsing

def test_forever_schedule_has_repeats_minus_one() -> None:
    schedule = parse_schedule("R/2014-01-01T00:00:00Z/PT60M", now=NOW)
    assert schedule.repeats == -1
    assert schedule.period == Period(hours=0, minutes=60)
    assert instant(schedule.start) == epoch("2014-01-01T00:00:00Z")
    assert schedule.tz is None


def test_counted_schedule_keeps_its_count() -> None:
    assert parse_schedule("R5/2014-01-01T00:00:00Z/P1D", now=NOW).repeats == 5


def test_empty_start_is_now_to_the_millisecond() -> None:
    schedule = parse_schedule("R5//PT10M", now=NOW + 0.1234567)
    assert instant(schedule.start) == pytest.approx(NOW + 0.123)
    assert format_schedule(schedule) == "R5/2023-11-14T22:13:20.123Z/PT10M"


def test_start_without_offset_is_utc() -> None:
    schedule = parse_schedule("R/2014-01-01T10:00:00/P1D", now=NOW)
    assert instant(schedule.start) == epoch("2014-01-01T10:00:00Z")


def test_start_with_offset_keeps_the_instant() -> None:
    schedule = parse_schedule("R/2014-01-01T10:00:00+02:00/P1D", now=NOW)
    assert instant(schedule.start) == epoch("2014-01-01T08:00:00Z")
    assert format_schedule(schedule) == "R/2014-01-01T10:00:00.000+02:00/P1D"


def test_time_zone_overrides_the_offset_keeping_wall_clock_fields() -> None:
    schedule = parse_schedule("R/2014-01-01T10:00:00Z/P1D", time_zone="America/New_York",
                              now=NOW)
    assert schedule.tz == "America/New_York"
    assert instant(schedule.start) == epoch("2014-01-01T15:00:00Z")


@pytest.mark.parametrize(("abbreviation", "zone"), [
    ("PST", "America/Los_Angeles"), ("PDT", "America/Los_Angeles"), ("EST", "America/New_York"),
    ("CST", "America/Chicago"), ("MST", "America/Denver"), ("UTC", "UTC"), ("GMT", "UTC"),
    ("pst", "America/Los_Angeles"),
])
def test_legacy_abbreviations_map_to_iana_zones(abbreviation: str, zone: str) -> None:
    schedule = parse_schedule("R//P1D", time_zone=abbreviation, now=NOW)
    assert schedule.tz == zone


@pytest.mark.parametrize("zone", ["IST", "Mars/Olympus", "../../etc/passwd", "America/"])
def test_unknown_zone_is_refused_naming_it(zone: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule("R//P1D", time_zone=zone, now=NOW)
    assert zone in info.value.message
    assert info.value.field == "scheduleTimeZone"


@pytest.mark.parametrize("text", [
    "R/PT1H", "R5/PT1H", "X/2014-01-01T00:00:00Z/PT1H", "R/2014-01-01T00:00:00Z/1H",
    "R/2014-13-01T00:00:00Z/PT1H", "R/garbage/PT1H", "R/2014-01-01T00:00:00Z/P",
    "R/2014-01-01T00:00:00Z/PT0S", "R/2014-01-01T00:00:00Z/P0D", "R/1969-12-31T00:00:00Z/P1D",
    "R/1970-01-01T00:00:00Z/P1D", "R/2014-01-01T00:00:00Z/P1.5M", "R-1/2014-01-01T00:00:00Z/P1D",
    "", "R//", "R/2014-01-01T00:00:00Z/P2000Y",
])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text, now=NOW)
    assert info.value.message.startswith(f"Cannot parse schedule '{text}'")
    assert info.value.field == "schedule"


def test_epsilon_durations_parse_to_seconds() -> None:
    assert parse_duration("PT60S") == 60
    assert parse_duration("PT1M30S") == 90
    assert parse_duration("P1D") == 86400
    assert parse_duration("PT0.5S") == 0.5


@pytest.mark.parametrize("text", ["60", "PT", "P", "bogus", ""])
def test_bad_epsilon_is_refused(text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_duration(text)
    assert info.value.field == "epsilon"


# --------------------------------------------------------------------------- printing

@pytest.mark.parametrize("text", [
    "R/2014-01-01T00:00:00.000Z/PT60M", "R0/2014-01-01T00:00:00.000Z/P1Y2M3DT4H5M6S",
    "R3/2014-01-01T00:00:00.500Z/PT0.5S", "R/2014-01-01T00:00:00.000Z/P2W",
])
def test_format_prints_the_schedule_back(text: str) -> None:
    assert format_schedule(parse_schedule(text, now=NOW)) == text


def test_a_zoned_schedule_reads_back_as_the_same_instants() -> None:
    schedule = parse_schedule("R/2014-06-01T09:00:00/P1D", time_zone="Europe/Berlin", now=NOW)
    text = format_schedule(schedule)
    assert text == "R/2014-06-01T09:00:00.000+02:00/P1D"
    again = parse_schedule(text, time_zone="Europe/Berlin", now=NOW)
    assert [instant(occurrence(again, k)) for k in range(200)] == \
        [instant(occurrence(schedule, k)) for k in range(200)]


def test_the_second_of_two_equal_wall_clock_times_reads_back() -> None:
    # 2023-11-05 01:30 happens twice in New York; -05:00 names the second one.
    schedule = parse_schedule("R/2023-11-05T01:30:00-05:00/PT1H", time_zone="America/New_York",
                              now=NOW)
    assert instant(schedule.start) == epoch("2023-11-05T06:30:00Z")


# --------------------------------------------------------------------------- arithmetic

def test_month_steps_clamp_to_the_end_of_the_month() -> None:
    start = datetime(2024, 1, 31, 10, tzinfo=UTC)
    assert add_period(start, Period(months=1)) == datetime(2024, 2, 29, 10, tzinfo=UTC)
    assert add_period(start, Period(months=1), 2) == datetime(2024, 3, 31, 10, tzinfo=UTC)
    assert add_period(datetime(2023, 1, 31, tzinfo=UTC), Period(months=1)).day == 28


def test_year_step_from_leap_day_lands_on_feb_28() -> None:
    assert add_period(datetime(2024, 2, 29, tzinfo=UTC), Period(years=1)) == \
        datetime(2025, 2, 28, tzinfo=UTC)


def test_hours_are_absolute_across_dst() -> None:
    zone = ZoneInfo("America/New_York")
    start = datetime(2024, 3, 10, 0, 0, tzinfo=zone)
    later = add_period(start, Period(hours=24))
    assert instant(later) - instant(start) == 24 * 3600
    assert later.hour == 1  # 23 h of wall clock that day


def test_days_keep_the_wall_clock_across_dst() -> None:
    zone = ZoneInfo("America/New_York")
    start = datetime(2024, 3, 9, 9, 0, tzinfo=zone)
    later = add_period(start, Period(days=1))
    assert (later.hour, later.minute) == (9, 0)
    assert instant(later) - instant(start) == 23 * 3600


def test_a_time_in_the_spring_gap_runs_at_the_transition() -> None:
    schedule = parse_schedule("R/2024-03-09T02:30:00/P1D", time_zone="America/New_York",
                              now=NOW)
    assert instant(occurrence(schedule, 1)) == epoch("2024-03-10T07:00:00Z")  # 03:00 EDT
    assert wall(instant(occurrence(schedule, 2)), "America/New_York") == (2, 30)


def test_a_time_in_the_autumn_overlap_runs_at_the_first_of_the_two() -> None:
    schedule = parse_schedule("R/2024-11-02T01:30:00/P1D", time_zone="America/New_York",
                              now=NOW)
    assert instant(occurrence(schedule, 1)) == epoch("2024-11-03T05:30:00Z")  # 01:30 EDT


# --------------------------------------------------------------------------- due

def test_nothing_is_due_before_the_start() -> None:
    schedule = parse_schedule("R/2099-01-01T00:00:00Z/P1D", now=NOW)
    decision = due(schedule, NOW, 60)
    assert decision.run_at is None and decision.skipped == 0 and decision.next is schedule


def test_a_due_occurrence_runs_and_the_schedule_advances() -> None:
    schedule = parse_schedule("R3/2023-11-14T22:13:00Z/PT1M", now=NOW)
    decision = due(schedule, NOW, 60)
    assert decision.run_at == epoch("2023-11-14T22:13:00Z")
    assert decision.skipped == 0
    assert format_schedule(decision.next) == "R2/2023-11-14T22:14:00.000Z/PT1M"


def test_only_the_latest_missed_occurrence_within_epsilon_runs() -> None:
    schedule = parse_schedule("R/2023-11-14T22:10:00Z/PT30S", now=NOW)
    decision = due(schedule, NOW, 60)
    assert decision.run_at == epoch("2023-11-14T22:13:00Z")
    assert decision.skipped == 6
    assert format_schedule(decision.next) == "R/2023-11-14T22:13:30.000Z/PT30S"


def test_an_occurrence_older_than_epsilon_is_skipped() -> None:
    schedule = parse_schedule("R5/2023-11-14T22:10:00Z/PT1H", now=NOW)
    decision = due(schedule, NOW, 60)
    assert decision.run_at is None
    assert decision.skipped == 1
    assert decision.next.repeats == 4
    assert format_schedule(decision.next) == "R4/2023-11-14T23:10:00.000Z/PT1H"


def test_r0_never_runs() -> None:
    schedule = parse_schedule("R0/2014-01-01T00:00:00Z/PT60M", now=NOW)
    decision = due(schedule, NOW, 1e12)
    assert decision.run_at is None and decision.skipped == 0
    assert next_run(schedule) is None


def test_repeats_stop_the_count_of_consumed_occurrences() -> None:
    schedule = parse_schedule("R2/2023-11-14T22:13:18Z/PT1S", now=NOW)
    decision = due(schedule, NOW, 60)
    assert decision.run_at == epoch("2023-11-14T22:13:19Z")
    assert decision.skipped == 1
    assert decision.next.repeats == 0
    assert next_run(decision.next) is None


def test_a_late_start_far_in_the_past_is_decided_quickly() -> None:
    schedule = parse_schedule("R/1980-01-01T00:00:00Z/PT1S", now=NOW)
    decision = due(schedule, NOW, 60)
    assert decision.run_at == NOW
    assert decision.skipped == NOW - epoch("1980-01-01T00:00:00Z")


# --------------------------------------------------------------------------- properties

ZONES = st.sampled_from([None, "UTC", "America/New_York", "Europe/Berlin", "Australia/Sydney",
                         "Asia/Kolkata"])
PERIODS = st.one_of(
    st.builds(Period, seconds=st.integers(1, 7200).map(float)),
    st.builds(Period, minutes=st.integers(1, 180)),
    st.builds(Period, hours=st.integers(1, 48)),
    st.builds(Period, days=st.integers(1, 10)),
    st.builds(Period, days=st.integers(0, 3), hours=st.integers(1, 5)),
    st.builds(Period, months=st.integers(1, 14)),
    st.builds(Period, years=st.integers(1, 3)),
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    zone = draw(ZONES)
    at = draw(st.integers(1_000_000_000, 1_900_000_000))
    tz = ZoneInfo(zone) if zone else UTC
    start = datetime.fromtimestamp(at, UTC).astimezone(tz)
    repeats = draw(st.one_of(st.just(-1), st.integers(0, 30)))
    return Schedule(repeats, start, draw(PERIODS), zone)


@settings(max_examples=300, deadline=None)
@given(schedules(), st.integers(-10**6, 10**8), st.integers(0, 7200))
def test_due_leaves_the_next_occurrence_strictly_after_now(
    schedule: Schedule, offset: int, epsilon: int,
) -> None:
    now = instant(schedule.start) + offset
    decision = due(schedule, now, epsilon)
    upcoming = next_run(decision.next)
    assert upcoming is None or upcoming > now


@settings(max_examples=300, deadline=None)
@given(schedules(), st.integers(-10**6, 10**8), st.integers(0, 7200))
def test_repeats_decrease_by_exactly_the_occurrences_consumed(
    schedule: Schedule, offset: int, epsilon: int,
) -> None:
    now = instant(schedule.start) + offset
    decision = due(schedule, now, epsilon)
    consumed = decision.skipped + (decision.run_at is not None)
    if schedule.repeats < 0:
        assert decision.next.repeats == -1
    else:
        assert decision.next.repeats == schedule.repeats - consumed >= 0
    if consumed == 0:
        assert decision.next == schedule


@settings(max_examples=300, deadline=None)
@given(schedules(), st.integers(0, 10**7), st.integers(0, 7200))
def test_missed_runs_are_skipped_not_stacked(
    schedule: Schedule, offset: int, epsilon: int,
) -> None:
    now = instant(schedule.start) + offset
    decision = due(schedule, now, epsilon)
    if decision.run_at is not None:
        assert now - epsilon <= decision.run_at <= now
    again = due(decision.next, now, epsilon)
    assert again.run_at is None and again.skipped == 0


@settings(max_examples=100, deadline=None)
@given(schedules(), st.lists(st.integers(1, 59), min_size=1, max_size=60))
def test_polling_within_epsilon_consumes_every_occurrence_once_and_runs_each_poll(
    schedule: Schedule, gaps: list[int],
) -> None:
    end = instant(schedule.start) + sum(gaps)
    expected: list[float] = []
    while instant(occurrence(schedule, len(expected))) <= end and (
            schedule.repeats < 0 or len(expected) < schedule.repeats):
        expected.append(instant(occurrence(schedule, len(expected))))
    ran: list[float] = []
    consumed = 0
    now = instant(schedule.start)
    current = schedule
    for gap in [0, *gaps]:
        now += gap
        decision = due(current, now, 60)
        consumed += decision.skipped
        if decision.skipped:  # several fell inside one poll: only the latest ran
            assert decision.run_at is not None
        if decision.run_at is not None:
            consumed += 1
            ran.append(decision.run_at)
        current = decision.next
    assert consumed == len(expected)
    assert ran == sorted(set(ran))
    assert set(ran) <= set(expected)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["America/New_York", "Europe/Berlin"]), st.integers(0, 23),
       st.integers(0, 59), st.integers(1, 365))
def test_a_daily_job_keeps_its_wall_clock_time_for_a_year(
    zone: str, hour: int, minute: int, first_day: int,
) -> None:
    start = datetime(2024, 1, 1, hour, minute, tzinfo=ZoneInfo(zone)) + timedelta(days=first_day)
    current = Schedule(-1, start, Period(days=1), zone)
    for _ in range(366):
        at = next_run(current)
        assert at is not None
        decision = due(current, at, 0)
        assert decision.run_at == at and decision.skipped == 0
        local = datetime.fromtimestamp(at, ZoneInfo(zone))
        if (local.hour, local.minute) != (hour, minute):
            # Only in the spring-forward gap, and then at the transition (on the hour).
            nominal = current.start.replace(fold=0)
            assert nominal.utcoffset() != nominal.replace(fold=1).utcoffset()
            assert local.minute == 0 and local.hour > hour
        assert (current.start.hour, current.start.minute) == (hour, minute)
        current = decision.next


@settings(max_examples=200, deadline=None)
@given(st.integers(1990, 2090), st.integers(1, 12), st.integers(1, 31), st.integers(0, 60),
       ZONES)
def test_month_steps_land_on_the_clamped_day(
    year: int, month: int, day: int, k: int, zone: str | None,
) -> None:
    day = min(day, calendar.monthrange(year, month)[1])
    start = datetime(year, month, day, 12, tzinfo=ZoneInfo(zone) if zone else UTC)
    stepped = add_period(start, Period(months=1), k)
    index = year * 12 + month - 1 + k
    assert (stepped.year, stepped.month) == (index // 12, index % 12 + 1)
    assert stepped.day == min(day, calendar.monthrange(stepped.year, stepped.month)[1])
    assert (stepped.hour, stepped.minute) == (12, 0)
