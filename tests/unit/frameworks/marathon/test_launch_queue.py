"""Launch backoff: growth, cap, quiet period, reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.frameworks.marathon.launch_queue import LaunchQueue


def fail(q: LaunchQueue, now: float, app: str = "/a", *, base: float = 1.0,
         factor: float = 2.0, cap: float = 10.0) -> float:
    backoff = q.record_failure(app, now=now, backoff_seconds=base, backoff_factor=factor,
                               max_launch_delay=cap)
    return backoff.delay


def test_an_app_without_failures_is_never_delayed() -> None:
    q = LaunchQueue()
    assert q.delay_left("/a", 5.0) == 0.0
    assert q.ready("/a", 5.0) and q.overdue("/a", 5.0)
    assert q.since("/a") is None and q.backoff("/a") is None


def test_first_failure_delays_by_backoff_seconds() -> None:
    q = LaunchQueue()
    assert fail(q, 100.0) == 1.0
    assert q.delay_left("/a", 100.0) == 1.0
    assert q.delay_left("/a", 100.25) == pytest.approx(0.75)
    assert not q.ready("/a", 100.5) and not q.overdue("/a", 100.5)
    assert q.ready("/a", 101.0)
    assert q.overdue("/a", 101.5)
    assert q.since("/a") == 100.0


def test_delay_grows_by_the_factor_up_to_the_max() -> None:
    q = LaunchQueue()
    delays = [fail(q, 100.0 + i) for i in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert q.delay_left("/a", 105.0) == 10.0      # runs from the latest failure
    assert q.since("/a") == 100.0
    backoff = q.backoff("/a")
    assert backoff is not None and backoff.failures == 6


def test_default_marathon_settings() -> None:
    q = LaunchQueue()
    assert fail(q, 0.0, base=1.0, factor=1.15, cap=300.0) == 1.0
    assert fail(q, 1.0, base=1.0, factor=1.15, cap=300.0) == pytest.approx(1.15)
    assert fail(q, 2.0, base=1.0, factor=1.15, cap=300.0) == pytest.approx(1.3225)


def test_a_failure_after_a_quiet_period_starts_over() -> None:
    q = LaunchQueue()
    fail(q, 100.0)
    fail(q, 101.0)
    assert fail(q, 111.0) == 4.0                  # exactly max_launch_delay later: not quiet yet
    assert fail(q, 121.5) == 1.0
    assert q.since("/a") == 121.5


def test_reset_forgets_the_delay() -> None:
    q = LaunchQueue()
    fail(q, 100.0)
    fail(q, 100.5)
    assert q.reset("/a")
    assert q.ready("/a", 100.5)
    assert not q.reset("/a")
    assert fail(q, 101.0) == 1.0


def test_apps_back_off_independently() -> None:
    q = LaunchQueue()
    fail(q, 0.0, "/a")
    fail(q, 0.0, "/a")
    fail(q, 0.0, "/b")
    assert q.delay_left("/a", 0.0) == 2.0 and q.delay_left("/b", 0.0) == 1.0
    assert q.delayed_apps() == ["/a", "/b"]


def test_expire_drops_backoffs_after_their_quiet_period() -> None:
    q = LaunchQueue()
    fail(q, 0.0, "/a")
    fail(q, 0.0, "/b")
    assert q.expire(5.0, {"/a": 10.0, "/b": 3.0}) == ["/b"]
    assert q.delayed_apps() == ["/a"]
    assert q.expire(20.0, {}) == []               # unknown quiet period: keep


@given(st.floats(0.1, 60), st.floats(1.0, 3.0), st.floats(60, 600),
       st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=30))
def test_delay_never_exceeds_max_and_never_shrinks_within_a_run(
        base: float, factor: float, cap: float, gaps: list[float]) -> None:
    q = LaunchQueue()
    now, prev = 0.0, 0.0
    for gap in gaps:
        now += gap
        before = q.backoff("/a")
        restarted = before is None or now - before.last_failure > cap
        delay = fail(q, now, base=base, factor=factor, cap=cap)
        if restarted:
            assert delay == base
        else:
            assert prev <= delay <= max(cap, base)
        assert q.delay_left("/a", now) == pytest.approx(delay)
        prev = delay
