"""Marathon health: the per-check state machine, the instance verdict and who runs which check."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lichen.frameworks.marathon import health
from lichen.frameworks.marathon.health import CheckPolicy, Health

POLICY = CheckPolicy(grace_period=10.0, interval=1.0, timeout=1.0, max_consecutive_failures=3)
START = 1000.0


def run(results: list[bool], *, policy: CheckPolicy = POLICY, first: float = START + 20.0) -> list[health.Outcome]:
    """Feed one result per second from `first`; every outcome."""
    h = Health()
    out = []
    for n, ok in enumerate(results):
        outcome = health.record(h, ok, cause="refused", now=first + n, started_at=START, policy=policy)
        h = outcome.health
        out.append(outcome)
    return out


def test_success_sets_first_and_last_success() -> None:
    [_, b] = run([True, True])
    assert b.health.first_success == START + 20 and b.health.last_success == START + 21
    assert b.health.alive and not b.failed and not b.kill


def test_failure_counts_and_records_cause() -> None:
    [_, out] = run([True, False])
    assert out.health.consecutive_failures == 1 and out.health.last_failure == START + 21
    assert out.health.last_failure_cause == "refused" and out.failed and not out.health.alive


def test_success_resets_consecutive_failures() -> None:
    *_, out = run([False, False, True])
    assert out.health.consecutive_failures == 0 and out.health.alive
    assert out.health.last_failure == START + 21


def test_kill_when_failures_reach_max() -> None:
    outs = run([False, False, False])
    assert [o.kill for o in outs] == [False, False, True]


def test_zero_max_consecutive_failures_never_kills() -> None:
    policy = CheckPolicy(grace_period=0, max_consecutive_failures=0)
    assert not any(o.kill for o in run([False] * 10, policy=policy))


def test_failures_in_grace_period_before_first_success_are_ignored() -> None:
    outs = run([False, False, False, False], first=START + 1)
    assert all(o.health == Health() and not o.failed and not o.kill for o in outs)


def test_grace_period_ends_with_the_first_success() -> None:
    [_, out] = run([True, False], first=START + 1)
    assert out.failed and out.health.consecutive_failures == 1


def test_combine_needs_every_check_alive() -> None:
    ok = Health(first_success=1.0, last_success=1.0)
    bad = Health(last_failure=2.0, consecutive_failures=1)
    assert health.combine([ok, ok]) is True
    assert health.combine([ok, None]) is None
    assert health.combine([ok, bad]) is False
    assert health.combine([None, bad]) is False
    assert health.combine([]) is None


def test_alive_needs_success_after_last_failure() -> None:
    assert not Health(last_success=1.0, last_failure=2.0).alive
    assert Health(last_success=3.0, last_failure=2.0).alive
    assert not Health().alive


def test_http_result_follows_marathon() -> None:
    assert health.http_result(200, ignore_1xx=False) is True
    assert health.http_result(302, ignore_1xx=False) is True
    assert health.http_result(399, ignore_1xx=False) is True
    assert health.http_result(404, ignore_1xx=False) is False
    assert health.http_result(500, ignore_1xx=False) is False
    assert health.http_result(101, ignore_1xx=False) is False
    assert health.http_result(101, ignore_1xx=True) is None


def test_agent_runs_the_mesos_check_and_marathon_the_rest() -> None:
    checks = [{"protocol": "HTTP"}, {"protocol": "TCP"}, {"protocol": "MESOS_HTTP"}]
    assert health.agent_check(checks) == 2
    assert health.marathon_checks(checks) == [0, 1]
    assert health.counted_checks(checks) == [0, 1, 2]


def test_agent_runs_the_first_check_when_none_is_mesos_run() -> None:
    checks = [{"protocol": "HTTP"}, {"protocol": "HTTPS"}]
    assert health.agent_check(checks) == 0
    assert health.marathon_checks(checks) == [1]


def test_a_second_command_check_does_not_run_or_count() -> None:
    checks = [{"protocol": "COMMAND"}, {"protocol": "COMMAND"}, {"protocol": "TCP"}]
    assert health.agent_check(checks) == 0
    assert health.marathon_checks(checks) == [2]
    assert health.counted_checks(checks) == [0, 2]


def test_no_checks_run_nothing() -> None:
    assert health.agent_check([]) is None and health.counted_checks([]) == []


def test_target_port_prefers_literal_port() -> None:
    assert CheckPolicy(port=8080).target_port([31000]) == 8080
    assert CheckPolicy(port_index=1).target_port([31000, 31001]) == 31001
    assert CheckPolicy(port_index=2).target_port([31000]) is None


def test_policy_reads_normalized_check() -> None:
    p = CheckPolicy.from_json({"protocol": "TCP", "portIndex": 1, "gracePeriodSeconds": 0, "intervalSeconds": 2,
                               "timeoutSeconds": 1, "maxConsecutiveFailures": 5, "ignoreHttp1xx": True})
    assert (p.protocol, p.port_index, p.grace_period, p.interval, p.timeout, p.max_consecutive_failures) \
        == ("TCP", 1, 0.0, 2.0, 1.0, 5)
    assert p.ignore_http_1xx and p.port is None


@given(st.lists(st.booleans(), max_size=40), st.integers(min_value=0, max_value=5),
       st.floats(min_value=0, max_value=30))
def test_counters_follow_the_results(results: list[bool], limit: int, grace: float) -> None:
    policy = CheckPolicy(grace_period=grace, max_consecutive_failures=limit)
    outs = run(results, policy=policy, first=START)
    counted = 0
    for n, (ok, o) in enumerate(zip(results, outs)):
        ignored = not ok and o.health.first_success is None and START + n < START + grace
        if ok:
            counted = 0
        elif not ignored:
            counted += 1
        assert o.health.consecutive_failures == counted
        assert o.failed == (not ok and not ignored)
        # A kill exactly when a counted failure brings the run to the limit (or past it).
        assert o.kill == (o.failed and limit > 0 and counted >= limit)
        assert o.health.alive == (o.health.last_success is not None and (
            o.health.last_failure is None or o.health.last_success > o.health.last_failure))
        if ok:
            assert o.health.alive
