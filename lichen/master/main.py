"""`lichen master`: wire the master's pieces together and serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from lichen.api.server import make_app, serve
from lichen.clock import SystemClock
from lichen.master import agent_api, scheduler_api, state_api
from lichen.master.flags import MasterFlags
from lichen.master.master import Master
from lichen.state.sqlite import SqliteStore

log = logging.getLogger(__name__)


async def serve_master(flags: MasterFlags, stop: asyncio.Event) -> None:
    store = SqliteStore(flags.work_dir / "registry.db")
    master = Master(flags, store, SystemClock())
    await master.recover()
    app = make_app()
    scheduler_api.setup(app, master)
    agent_api.setup(app, master)
    state_api.setup(app, master)
    runner, host, port = await serve(app, flags.host, flags.port, None, "master")
    master.bind(host, port)
    master.start()
    # The address file is written last: whoever reads it finds a master ready to serve.
    from lichen.api.server import write_addr

    write_addr(flags.work_dir, "master", f"{host}:{port}")
    log.info("master %s listening on %s:%d", master.master_id, host, port)
    try:
        await stop.wait()
    finally:
        await master.stop()
        await runner.cleanup()
        await store.close()


def run(flags: MasterFlags) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_master(flags, stop)

    try:
        asyncio.run(main())
    except OSError as e:  # the port is taken, the work dir is not writable, ...
        log.error("lichen master cannot start: %s", e)
        raise SystemExit(1) from None
