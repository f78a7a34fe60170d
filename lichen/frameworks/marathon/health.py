"""An instance's health under several health checks: one state per check, one verdict.

Theory of operation. An app may define several health checks. Mesos runs at most one
check per task, so lichen hands one to the agent (`agent_check`: the app's Mesos-run
check, MESOS_HTTP / MESOS_HTTPS / MESOS_TCP / COMMAND, if it has one, else its first
check); its results come back as `healthy` in status updates and the agent kills the
task itself. The service probes every other HTTP / HTTPS / TCP check from the Marathon
process (`marathon_checks`), as Marathon does. A second Mesos-run check (only COMMAND
checks can be repeated, see appdef) cannot run anywhere: like Marathon, it is skipped
and does not count.

Each (instance, check) has a `Health`, Marathon's record of it. `record` moves it, fed
one result and `now`:

    result                                    Health                      failed  kill
    success                                   firstSuccess (once),        no      no
                                              lastSuccess = now,
                                              consecutiveFailures = 0
    failure, no success yet and within        unchanged                   no      no
      gracePeriodSeconds of the task's start
    any other failure                         lastFailure = now, cause,   yes     when failures
                                              consecutiveFailures + 1             reach max (> 0)

A check is alive when its last success is after its last failure. An instance is
healthy when every counted check has a result and all are alive, unhealthy as soon as
one counted check has a result that is not alive, and unknown (None) otherwise.
Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MESOS_RUN = frozenset({"MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP", "COMMAND"})
MARATHON_RUN = frozenset({"HTTP", "HTTPS", "TCP"})


@dataclass(frozen=True, slots=True)
class Health:
    """One check's results for one instance (Marathon's `Health`)."""

    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_failure_cause: str | None = None
    consecutive_failures: int = 0

    @property
    def alive(self) -> bool:
        return self.last_success is not None and (
            self.last_failure is None or self.last_success > self.last_failure)


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """What `record` and the prober need of one health check definition."""

    protocol: str = "HTTP"
    grace_period: float = 300.0
    interval: float = 60.0
    timeout: float = 20.0
    max_consecutive_failures: int = 3
    path: str = "/"
    ignore_http_1xx: bool = False
    port: int | None = None          # a literal port; else the task's host port at port_index
    port_index: int = 0

    @classmethod
    def from_json(cls, hc: dict[str, Any]) -> CheckPolicy:
        """From a normalized Marathon health check (appdef fills every default)."""
        return cls(
            protocol=str(hc.get("protocol", "HTTP")),
            grace_period=float(hc.get("gracePeriodSeconds", 300)),
            interval=float(hc.get("intervalSeconds", 60)),
            timeout=float(hc.get("timeoutSeconds", 20)),
            max_consecutive_failures=int(hc.get("maxConsecutiveFailures", 3)),
            path=str(hc.get("path") or "/"),
            ignore_http_1xx=bool(hc.get("ignoreHttp1xx", False)),
            port=int(hc["port"]) if hc.get("port") else None,
            port_index=int(hc.get("portIndex") or 0),
        )

    def target_port(self, host_ports: Sequence[int]) -> int | None:
        """The port to probe on the task's host; None when the task has no such port."""
        if self.port:
            return self.port
        return host_ports[self.port_index] if self.port_index < len(host_ports) else None


@dataclass(frozen=True, slots=True)
class Outcome:
    health: Health
    failed: bool      # a counted failure: Marathon publishes failed_health_check_event
    kill: bool        # maxConsecutiveFailures reached: kill the task


def record(health: Health, ok: bool, *, cause: str = "", now: float, started_at: float,
           policy: CheckPolicy) -> Outcome:
    """Fold one check result taken at `now` into `health` (see the table above)."""
    if ok:
        return Outcome(dataclasses.replace(
            health, first_success=health.first_success if health.first_success is not None else now,
            last_success=now, consecutive_failures=0), failed=False, kill=False)
    if health.first_success is None and now < started_at + policy.grace_period:
        return Outcome(health, failed=False, kill=False)
    failures = health.consecutive_failures + 1
    after = dataclasses.replace(health, last_failure=now, last_failure_cause=cause or "unhealthy",
                                consecutive_failures=failures)
    limit = policy.max_consecutive_failures
    return Outcome(after, failed=True, kill=limit > 0 and failures >= limit)


def combine(results: Sequence[Health | None]) -> bool | None:
    """An instance's verdict from its counted checks' results (None: no result yet)."""
    if any(h is not None and not h.alive for h in results):
        return False
    if results and all(h is not None for h in results):
        return True
    return None


def http_result(status: int, *, ignore_1xx: bool) -> bool | None:
    """Marathon's reading of an HTTP check's status: 200-399 healthy; 1xx ignored (no
    result) when the check says so; anything else a failure."""
    if 200 <= status < 400:
        return True
    if ignore_1xx and 100 <= status < 200:
        return None
    return False


def agent_check(checks: Sequence[dict[str, Any]]) -> int | None:
    """Index of the check handed to the agent: the first Mesos-run one, else the first."""
    if not checks:
        return None
    return next((i for i, c in enumerate(checks) if c.get("protocol") in MESOS_RUN), 0)


def marathon_checks(checks: Sequence[dict[str, Any]]) -> list[int]:
    """Indexes of the checks the service probes itself: every HTTP/HTTPS/TCP check the
    agent does not run."""
    handed = agent_check(checks)
    return [i for i, c in enumerate(checks)
            if i != handed and c.get("protocol", "HTTP") in MARATHON_RUN]


def counted_checks(checks: Sequence[dict[str, Any]]) -> list[int]:
    """Indexes of the checks that run and so count for the verdict, in order."""
    handed = agent_check(checks)
    return sorted(([handed] if handed is not None else []) + marathon_checks(checks))
