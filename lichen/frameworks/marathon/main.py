"""`lichen marathon`: the service, its v2 API and its scheduler link, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from lichen.api.server import make_app, serve, write_addr
from lichen.clock import SystemClock
from lichen.frameworks.marathon import api
from lichen.frameworks.marathon.service import MarathonFlags, MarathonService
from lichen.state.sqlite import SqliteStore

log = logging.getLogger(__name__)


async def serve_marathon(flags: MarathonFlags, stop: asyncio.Event) -> None:
    store = SqliteStore(flags.work_dir / "marathon.db")
    service = MarathonService(flags, store, SystemClock())
    await service.recover()
    app = make_app()

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app.router.add_get("/health", health)  # every lichen daemon answers /health
    api.setup(app, service)
    runner, host, port = await serve(app, flags.host, flags.port, None, "marathon")
    service.address = f"{flags.hostname or host}:{port}"
    await service.start()
    write_addr(flags.work_dir, "marathon", f"{host}:{port}")
    log.info("marathon listening on %s:%d, master %s", host, port, flags.master)
    try:
        await stop.wait()
    finally:
        await service.stop()
        await runner.cleanup()
        await store.close()


def run(flags: MarathonFlags) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_marathon(flags, stop)

    try:
        asyncio.run(main())
    except OSError as e:
        log.error("lichen marathon cannot start: %s", e)
        raise SystemExit(1) from None
