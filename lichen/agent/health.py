"""Task health checks (TaskInfo.health_check), as Mesos runs them on the agent.

Two parts. `HealthPolicy` is pure: fed each check's result and `now`, it decides what to
report. `HealthChecker` is the shell: it runs COMMAND / HTTP / TCP checks on a timer and
calls `on_change(healthy, kill)` with the policy's decisions.

Policy (Mesos's HealthChecker):
- checks start `delay_seconds` after `start()` and repeat every `interval_seconds`; a
  check that takes longer than `timeout_seconds` failed;
- until the first success, failures within `grace_period_seconds` of the start are
  ignored; after it the grace period no longer applies;
- a success reports healthy=True when the last report was not already True, and resets
  the failure count;
- a counted failure reports healthy=False when the last report was not already False;
- the `consecutive_failures`-th counted failure in a row reports (False, kill=True), once;
  checking stops there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from lichen.clock import Clock, SystemClock
from lichen.errors import InvalidRequest

log = logging.getLogger(__name__)

CheckType = Literal["COMMAND", "HTTP", "TCP"]
OnChange = Callable[[bool, bool], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    type: CheckType
    delay: float = 15.0
    interval: float = 10.0
    timeout: float = 20.0
    consecutive_failures: int = 3
    grace_period: float = 10.0
    argv: tuple[str, ...] = ()                  # COMMAND
    command_env: tuple[tuple[str, str], ...] = ()
    port: int = 0                               # HTTP, TCP
    path: str = "/"                             # HTTP
    scheme: str = "http"
    statuses: frozenset[int] = frozenset()      # HTTP: healthy codes; empty means 200-399

    @classmethod
    def from_json(cls, hc: dict[str, Any]) -> HealthCheckConfig:
        """Parse a Mesos v1 HealthCheck object (raises InvalidRequest)."""
        kind = hc.get("type") or ("COMMAND" if "command" in hc else "HTTP" if "http" in hc else None)
        common: dict[str, Any] = {
            "delay": float(hc.get("delay_seconds", 15.0)),
            "interval": float(hc.get("interval_seconds", 10.0)),
            "timeout": float(hc.get("timeout_seconds", 20.0)),
            "consecutive_failures": int(hc.get("consecutive_failures", 3)),
            "grace_period": float(hc.get("grace_period_seconds", 10.0)),
        }
        if kind == "COMMAND":
            command = hc.get("command") or {}
            if not command.get("value"):
                raise InvalidRequest("COMMAND health check without command.value", field="health_check")
            if command.get("shell", True):
                argv: tuple[str, ...] = ("/bin/sh", "-c", str(command["value"]))
            else:
                argv = tuple(str(a) for a in command.get("arguments") or [command["value"]])
            variables = (command.get("environment") or {}).get("variables") or []
            env = tuple((str(v["name"]), str(v.get("value", ""))) for v in variables)
            return cls("COMMAND", argv=argv, command_env=env, **common)
        if kind == "HTTP":
            http = hc.get("http") or {}
            path = str(http.get("path") or "/")
            return cls(
                "HTTP",
                port=_port(http),
                path=path if path.startswith("/") else "/" + path,
                scheme=str(http.get("scheme") or "http"),
                statuses=frozenset(int(s) for s in http.get("statuses") or []),
                **common,
            )
        if kind == "TCP":
            return cls("TCP", port=_port(hc.get("tcp") or {}), **common)
        raise InvalidRequest(f"unsupported health check type '{kind}'", field="health_check.type")


def _port(section: dict[str, Any]) -> int:
    try:
        port = int(section["port"])
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest("health check without a port", field="health_check") from None
    if not 0 < port < 65536:
        raise InvalidRequest(f"health check port {port} out of range", field="health_check")
    return port


@dataclass(frozen=True, slots=True)
class HealthReport:
    healthy: bool
    kill: bool = False


class HealthPolicy:
    """Counts results and decides what to report. No I/O, no clock: `now` is an argument."""

    def __init__(self, config: HealthCheckConfig, *, started_at: float) -> None:
        self.config = config
        self.started_at = started_at
        self.consecutive_failures = 0
        self.initializing = True         # no success yet: the grace period applies
        self.reported: bool | None = None
        self.killed = False

    def record(self, ok: bool, *, now: float) -> HealthReport | None:
        """Take one check's result; return what to report, if anything."""
        if self.killed:
            return None
        if ok:
            self.initializing = False
            self.consecutive_failures = 0
            return self._report(True)
        if self.initializing and now - self.started_at <= self.config.grace_period:
            return None
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.config.consecutive_failures:
            self.killed = True
            self.reported = False
            return HealthReport(healthy=False, kill=True)
        return self._report(False)

    def _report(self, healthy: bool) -> HealthReport | None:
        if self.reported is healthy:
            return None
        self.reported = healthy
        return HealthReport(healthy=healthy)


class HealthChecker:
    """Runs one task's health check until stopped (or until it asks for a kill)."""

    def __init__(
        self,
        health_check: dict[str, Any],
        *,
        host: str = "127.0.0.1",
        env: dict[str, str],
        sandbox: Path,
        on_change: OnChange,
        clock: Clock | None = None,
    ) -> None:
        self.config = HealthCheckConfig.from_json(health_check)
        self.host = host
        self.env = env
        self.sandbox = Path(sandbox)
        self.on_change = on_change
        self.clock: Clock = clock or SystemClock()
        self.policy: HealthPolicy | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.policy = HealthPolicy(self.config, started_at=self.clock.now())
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        assert self.policy is not None
        await self.clock.sleep(self.config.delay)
        while True:
            ok = await self.check_once()
            report = self.policy.record(ok, now=self.clock.now())
            if report is not None:
                try:
                    result = self.on_change(report.healthy, report.kill)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("health change callback failed")
                if report.kill:
                    return
            await self.clock.sleep(self.config.interval)

    async def check_once(self) -> bool:
        """Run the check once; True when healthy. Never raises (but for cancellation)."""
        check = {"COMMAND": self._check_command, "HTTP": self._check_http, "TCP": self._check_tcp}
        try:
            async with asyncio.timeout(self.config.timeout):
                return await check[self.config.type]()
        except TimeoutError:
            log.debug("%s health check timed out after %ss", self.config.type, self.config.timeout)
            return False
        except (OSError, aiohttp.ClientError) as e:
            log.debug("%s health check failed: %s", self.config.type, e)
            return False

    async def _check_command(self) -> bool:
        env = dict(self.env)
        env.update(self.config.command_env)
        proc = await asyncio.create_subprocess_exec(
            *self.config.argv,
            env=env,
            cwd=self.sandbox,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return await proc.wait() == 0
        finally:
            if proc.returncode is None:     # timed out or cancelled: kill the whole check
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())

    async def _check_http(self) -> bool:
        url = f"{self.config.scheme}://{self.host}:{self.config.port}{self.config.path}"
        async with (
            aiohttp.ClientSession() as session,
            # As Mesos (curl -k): a health check does not verify certificates.
            session.get(url, ssl=False, allow_redirects=False) as response,
        ):
            if self.config.statuses:
                return response.status in self.config.statuses
            return 200 <= response.status < 400

    async def _check_tcp(self) -> bool:
        _, writer = await asyncio.open_connection(self.host, self.config.port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
