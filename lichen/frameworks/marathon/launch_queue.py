"""Launch backoff per app (Marathon's rate limiter), pure: times are arguments.

A failed instance (TASK_FAILED, TASK_FINISHED, TASK_ERROR, or killed for failing its
health checks; not TASK_KILLED) delays the app's next launch:

- the first failure delays by `backoffSeconds`;
- each further failure multiplies the delay by `backoffFactor`, capped at
  `maxLaunchDelaySeconds`;
- a failure more than `maxLaunchDelaySeconds` after the previous one starts over (the
  quiet period: the app ran fine for a while);
- a new app version or `DELETE /v2/queue/{id}/delay` resets it (`reset`).

The delay runs from the latest failure: launches wait until `last_failure + delay`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    since: float            # first failure of this run of failures
    last_failure: float
    delay: float            # seconds, from last_failure
    failures: int

    @property
    def until(self) -> float:
        return self.last_failure + self.delay


class LaunchQueue:
    """The backoff state of every app that has one; apps without are never delayed."""

    def __init__(self) -> None:
        self._backoffs: dict[str, Backoff] = {}

    def record_failure(self, app_id: str, *, now: float, backoff_seconds: float,
                       backoff_factor: float, max_launch_delay: float) -> Backoff:
        """Note a failed instance of `app_id` at `now`; return the new backoff."""
        prev = self._backoffs.get(app_id)
        if prev is None or now - prev.last_failure > max_launch_delay:
            backoff = Backoff(since=now, last_failure=now, delay=float(backoff_seconds),
                              failures=1)
        else:
            backoff = Backoff(since=prev.since, last_failure=now,
                              delay=min(prev.delay * backoff_factor, float(max_launch_delay)),
                              failures=prev.failures + 1)
        self._backoffs[app_id] = backoff
        return backoff

    def reset(self, app_id: str) -> bool:
        """Forget the app's backoff (new version, DELETE delay, app removed); whether it had one."""
        return self._backoffs.pop(app_id, None) is not None

    def backoff(self, app_id: str) -> Backoff | None:
        return self._backoffs.get(app_id)

    def delayed_apps(self) -> list[str]:
        """Apps that have a backoff, sorted."""
        return sorted(self._backoffs)

    def delay_left(self, app_id: str, now: float) -> float:
        """Seconds until the app may launch again; 0 when it may now."""
        backoff = self._backoffs.get(app_id)
        return 0.0 if backoff is None else max(0.0, backoff.until - now)

    def ready(self, app_id: str, now: float) -> bool:
        """May the app launch now?"""
        return self.delay_left(app_id, now) == 0.0

    def overdue(self, app_id: str, now: float) -> bool:
        """Is the app past its delay (the queue's `delay.overdue`)? True without a delay."""
        backoff = self._backoffs.get(app_id)
        return backoff is None or now > backoff.until

    def since(self, app_id: str) -> float | None:
        """When the current run of failures began; None without a backoff."""
        backoff = self._backoffs.get(app_id)
        return None if backoff is None else backoff.since

    def expire(self, now: float, max_launch_delay: dict[str, float]) -> list[str]:
        """Drop backoffs whose quiet period (the app's `maxLaunchDelaySeconds` since the last
        failure) has passed; return the apps dropped. Optional housekeeping: a stale
        backoff never delays anything, and `record_failure` starts over after it anyway."""
        gone = [app for app, b in self._backoffs.items()
                if now - b.last_failure > max_launch_delay.get(app, float("inf"))
                and now >= b.until]
        for app in gone:
            del self._backoffs[app]
        return sorted(gone)
