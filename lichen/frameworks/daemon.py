"""Running a lichen framework (Marathon, Chronos) as a daemon: its store, its API app with
`/health`, its service started after the API binds, until SIGTERM/SIGINT; and what both
services share around that: the flags every framework has, the scheduler link they
start, and stopping their background tasks."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from lichen.api.server import make_app, serve, write_addr
from lichen.clock import Clock, SystemClock
from lichen.frameworks.scheduler_client import EventHandler, SchedulerClient
from lichen.state.sqlite import SqliteStore
from lichen.state.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrameworkFlags:
    """The flags every lichen framework has; each framework's flags extend these (and
    give `port` and `framework_name` their own defaults)."""

    master: str
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    hostname: str | None = None
    framework_name: str = ""
    failover_timeout: float = 604800.0
    mesos_role: str = "*"


class FrameworkService(Protocol):
    address: str

    async def recover(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def start_scheduler(
    flags: FrameworkFlags,
    store: Store,
    *,
    id_key: str,
    user: str,
    address: str,
    capabilities: Iterable[str],
    on_event: EventHandler,
) -> SchedulerClient:
    """Subscribe to the master as the framework `flags` describe, checkpointing, partition
    aware, failing over to the framework id stored at `id_key` when there is one. The
    client is started; the framework stores the id of its SUBSCRIBED event at `id_key`."""
    fid = await store.get(id_key)
    info: dict[str, Any] = {
        "user": user, "name": flags.framework_name,
        "failover_timeout": flags.failover_timeout, "checkpoint": True, "role": flags.mesos_role,
        "hostname": flags.hostname or flags.host,
        "webui_url": f"http://{address}" if address else "",
        "capabilities": [{"type": c} for c in capabilities],
    }
    if fid:
        info["id"] = {"value": fid.decode()}
    client = SchedulerClient(flags.master, info, on_event)
    client.start()
    return client


async def wait_woken(wake: asyncio.Event, timeout: float) -> None:
    """Wait until `wake` is set or `timeout` seconds have passed, then clear it: a control
    loop's pause between steps, cut short by whatever gives it work."""
    try:
        await asyncio.wait_for(wake.wait(), timeout)
    except TimeoutError:
        pass
    wake.clear()


async def cancel_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until each has ended."""
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except asyncio.CancelledError:
            pass


async def serve_framework(
    name: str,
    flags: FrameworkFlags,
    make_service: Callable[[Store, Clock], FrameworkService],
    setup_api: Callable[[web.Application, Any], None],
    stop: asyncio.Event,
) -> None:
    store = SqliteStore(flags.work_dir / f"{name}.db")
    service = make_service(store, SystemClock())
    await service.recover()
    app = make_app()

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app.router.add_get("/health", health)  # every lichen daemon answers /health
    setup_api(app, service)
    runner, host, port = await serve(app, flags.host, flags.port, None, name)
    service.address = f"{flags.hostname or host}:{port}"
    await service.start()
    write_addr(flags.work_dir, name, f"{host}:{port}")  # last: whoever reads it finds it serving
    log.info("%s listening on %s:%d, master %s", name, host, port, flags.master)
    try:
        await stop.wait()
    finally:
        await service.stop()
        await runner.cleanup()
        await store.close()


def run_framework(
    name: str,
    flags: FrameworkFlags,
    make_service: Callable[[Store, Clock], FrameworkService],
    setup_api: Callable[[web.Application, Any], None],
) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_framework(name, flags, make_service, setup_api, stop)

    try:
        asyncio.run(main())
    except OSError as e:  # the port is taken, the work dir is not writable, ...
        log.error("lichen %s cannot start: %s", name, e)
        raise SystemExit(1) from None
