from __future__ import annotations

import pytest

from lichen.agent.health import HealthCheckConfig, HealthPolicy, HealthReport
from lichen.errors import InvalidRequest

START = 1000.0


def policy(**overrides: float) -> HealthPolicy:
    config = HealthCheckConfig(
        "TCP",
        port=80,
        consecutive_failures=int(overrides.pop("consecutive_failures", 3)),
        grace_period=overrides.pop("grace_period", 10.0),
    )
    return HealthPolicy(config, started_at=START)


def test_first_success_reports_healthy() -> None:
    p = policy()
    assert p.record(True, now=START + 1) == HealthReport(healthy=True)


def test_repeated_successes_report_once() -> None:
    p = policy()
    p.record(True, now=START + 1)
    assert p.record(True, now=START + 2) is None


def test_failures_within_the_grace_period_are_ignored_before_the_first_success() -> None:
    p = policy(grace_period=10, consecutive_failures=1)
    for t in (1, 5, 10):
        assert p.record(False, now=START + t) is None
    assert p.consecutive_failures == 0


def test_failures_after_the_grace_period_count() -> None:
    p = policy(grace_period=10)
    assert p.record(False, now=START + 11) == HealthReport(healthy=False)
    assert p.consecutive_failures == 1


def test_grace_period_ends_with_the_first_success() -> None:
    p = policy(grace_period=100)
    p.record(True, now=START + 1)
    assert p.record(False, now=START + 2) == HealthReport(healthy=False)


def test_a_failure_after_healthy_reports_unhealthy_once() -> None:
    p = policy(consecutive_failures=5)
    p.record(True, now=START + 1)
    assert p.record(False, now=START + 2) == HealthReport(healthy=False)
    assert p.record(False, now=START + 3) is None


def test_consecutive_failures_ask_for_a_kill_once() -> None:
    p = policy(consecutive_failures=3, grace_period=0)
    p.record(True, now=START + 1)
    p.record(False, now=START + 2)
    p.record(False, now=START + 3)
    assert p.record(False, now=START + 4) == HealthReport(healthy=False, kill=True)
    assert p.record(False, now=START + 5) is None
    assert p.record(True, now=START + 6) is None


def test_a_success_resets_the_failure_count() -> None:
    p = policy(consecutive_failures=2, grace_period=0)
    p.record(False, now=START + 1)
    assert p.record(True, now=START + 2) == HealthReport(healthy=True)
    assert p.record(False, now=START + 3) == HealthReport(healthy=False)
    assert p.record(False, now=START + 4) == HealthReport(healthy=False, kill=True)


def test_config_defaults_are_mesos_defaults() -> None:
    c = HealthCheckConfig.from_json({"type": "TCP", "tcp": {"port": 8080}})
    assert (c.delay, c.interval, c.timeout, c.consecutive_failures, c.grace_period) == (
        15.0, 10.0, 20.0, 3, 10.0,
    )
    assert c.port == 8080


def test_config_parses_a_shell_command_with_its_environment() -> None:
    c = HealthCheckConfig.from_json({
        "type": "COMMAND",
        "command": {"value": "test -f ok", "environment": {"variables": [{"name": "A", "value": "1"}]}},
    })
    assert c.argv == ("/bin/sh", "-c", "test -f ok")
    assert c.command_env == (("A", "1"),)


def test_config_parses_http_with_scheme_and_statuses() -> None:
    c = HealthCheckConfig.from_json({
        "type": "HTTP", "http": {"port": 80, "path": "health", "scheme": "https", "statuses": [200]},
    })
    assert (c.port, c.path, c.scheme, c.statuses) == (80, "/health", "https", frozenset({200}))


@pytest.mark.parametrize("bad", [
    {"type": "HTTP", "http": {}},
    {"type": "TCP", "tcp": {"port": 70000}},
    {"type": "COMMAND", "command": {}},
    {"type": "GRPC", "grpc": {"port": 1}},
])
def test_config_rejects_incomplete_checks(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        HealthCheckConfig.from_json(bad)
