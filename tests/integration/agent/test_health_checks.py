"""HealthChecker running real checks against loopback servers and commands."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from lichen.agent.health import HealthChecker

T = TypeVar("T")
FAST = {"delay_seconds": 0, "interval_seconds": 0.05, "timeout_seconds": 2, "grace_period_seconds": 0}
ENV = {"PATH": "/usr/bin:/bin"}


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coro

    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def checker(hc: dict[str, Any], sandbox: Path, changes: list[tuple[bool, bool]]) -> HealthChecker:
    def on_change(healthy: bool, kill: bool) -> None:
        changes.append((healthy, kill))

    return HealthChecker({**FAST, **hc}, env=ENV, sandbox=sandbox, on_change=on_change)


def test_http_check_goes_healthy_then_unhealthy_then_kill(tmp_path: Path) -> None:
    status = {"code": 200}

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=status["code"])

    async def body() -> list[tuple[bool, bool]]:
        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        changes: list[tuple[bool, bool]] = []
        hc = checker({"type": "HTTP", "http": {"port": port, "path": "/health"}}, tmp_path, changes)
        try:
            hc.start()
            await until(lambda: changes == [(True, False)])
            status["code"] = 503
            await until(lambda: len(changes) == 3)
            return changes
        finally:
            await hc.stop()
            await runner.cleanup()

    assert run(body()) == [(True, False), (False, False), (False, True)]


def test_http_redirect_counts_as_healthy(tmp_path: Path) -> None:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async def body() -> list[tuple[bool, bool]]:
        app = web.Application()
        app.router.add_get("/", moved)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        changes: list[tuple[bool, bool]] = []
        hc = checker({"type": "HTTP", "http": {"port": runner.addresses[0][1]}}, tmp_path, changes)
        try:
            hc.start()
            await until(lambda: bool(changes))
            return changes
        finally:
            await hc.stop()
            await runner.cleanup()

    assert run(body()) == [(True, False)]


def test_tcp_check_follows_the_listener(tmp_path: Path) -> None:
    async def body() -> list[tuple[bool, bool]]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        changes: list[tuple[bool, bool]] = []
        hc = checker(
            {"type": "TCP", "tcp": {"port": port}, "consecutive_failures": 2}, tmp_path, changes
        )
        try:
            hc.start()
            await until(lambda: changes == [(True, False)])
            server.close()
            await server.wait_closed()
            await until(lambda: len(changes) == 3)
            return changes
        finally:
            await hc.stop()
            server.close()

    assert run(body()) == [(True, False), (False, False), (False, True)]


def test_tcp_check_on_a_closed_port_fails(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def body() -> list[tuple[bool, bool]]:
        changes: list[tuple[bool, bool]] = []
        hc = checker({"type": "TCP", "tcp": {"port": port}, "consecutive_failures": 1}, tmp_path, changes)
        hc.start()
        try:
            await until(lambda: bool(changes))
            return changes
        finally:
            await hc.stop()

    assert run(body()) == [(False, True)]


def test_command_check_runs_in_the_sandbox_with_the_task_environment(tmp_path: Path) -> None:
    async def body() -> list[tuple[bool, bool]]:
        changes: list[tuple[bool, bool]] = []
        command = {"value": 'test -f "$MARKER"'}
        hc = HealthChecker(
            {**FAST, "type": "COMMAND", "command": command, "consecutive_failures": 100},
            env={**ENV, "MARKER": "ready"},
            sandbox=tmp_path,
            on_change=lambda healthy, kill: changes.append((healthy, kill)),
        )
        hc.start()
        try:
            await asyncio.sleep(0.2)        # a few failing checks: never healthy, so False
            assert changes == [(False, False)]
            (tmp_path / "ready").touch()
            await until(lambda: len(changes) == 2)
            return changes
        finally:
            await hc.stop()

    assert run(body()) == [(False, False), (True, False)]


def test_command_check_that_hangs_times_out_and_is_killed(tmp_path: Path) -> None:
    async def body() -> tuple[list[tuple[bool, bool]], float]:
        changes: list[tuple[bool, bool]] = []
        hc = checker(
            {
                "type": "COMMAND",
                "command": {"value": "echo $$ > pid; exec sleep 30"},
                "timeout_seconds": 0.3,
                "consecutive_failures": 1,
            },
            tmp_path,
            changes,
        )
        started = time.monotonic()
        hc.start()
        try:
            await until(lambda: bool(changes))
            return changes, time.monotonic() - started
        finally:
            await hc.stop()

    changes, elapsed = run(body())
    assert changes == [(False, True)]
    assert elapsed >= 0.3
    pid = int((tmp_path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]


def test_async_callbacks_are_awaited(tmp_path: Path) -> None:
    async def body() -> list[bool]:
        seen: list[bool] = []

        async def on_change(healthy: bool, kill: bool) -> None:
            await asyncio.sleep(0)
            seen.append(healthy)

        hc = HealthChecker(
            {**FAST, "type": "COMMAND", "command": {"value": "true"}},
            env=ENV, sandbox=tmp_path, on_change=on_change,
        )
        hc.start()
        try:
            await until(lambda: bool(seen))
            return seen
        finally:
            await hc.stop()

    assert run(body()) == [True]
