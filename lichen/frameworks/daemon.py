"""Running a lichen framework (Marathon, Chronos) as a daemon: its store, its API app with
`/health`, its service started after the API binds, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from lichen.api.server import make_app, serve, write_addr
from lichen.clock import Clock, SystemClock
from lichen.state.sqlite import SqliteStore
from lichen.state.store import Store

log = logging.getLogger(__name__)


class FrameworkFlags(Protocol):
    @property
    def master(self) -> str: ...
    @property
    def work_dir(self) -> Path: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def hostname(self) -> str | None: ...


class FrameworkService(Protocol):
    address: str

    async def recover(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


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
