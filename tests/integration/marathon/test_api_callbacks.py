"""CallbackSender: events POSTed as JSON to each callback URL, best effort."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lichen.api.server import serve
from lichen.frameworks.marathon.callbacks import CallbackSender


async def _receiver() -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/cb", handle)
    runner, host, port = await serve(app, "127.0.0.1", 0, None, "callback")
    return runner, f"http://{host}:{port}/cb", received


async def _until(predicate: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


def test_events_are_posted_to_every_url_in_order() -> None:
    async def main() -> None:
        runner, url, received = await _receiver()
        sender = CallbackSender()
        try:
            sender.set_urls([url, "http://127.0.0.1:9/dead"])
            sender.start()
            for n in range(3):
                sender.send({"eventType": "app_terminated_event", "n": n})
            await _until(lambda: len(received) == 3)
            assert [e["n"] for e in received] == [0, 1, 2]
        finally:
            await sender.stop()
            await runner.cleanup()

    asyncio.run(main())


def test_full_queue_drops_and_removed_urls_stop_receiving() -> None:
    async def main() -> None:
        runner, url, received = await _receiver()
        sender = CallbackSender(queue_size=2)
        try:
            sender.set_urls([url])
            sender.start()
            for n in range(10):  # no await in between: the worker cannot drain
                sender.send({"eventType": "x", "n": n})
            assert sender.dropped == 8
            await _until(lambda: len(received) == 2)
            sender.set_urls([])
            sender.send({"eventType": "x", "n": 99})
            await asyncio.sleep(0.1)
            assert len(received) == 2
        finally:
            await sender.stop()
            await runner.cleanup()

    asyncio.run(main())


def test_send_before_start_and_stop_twice_are_harmless() -> None:
    async def main() -> None:
        sender = CallbackSender()
        sender.set_urls(["http://127.0.0.1:9/cb"])
        sender.send({"eventType": "x"})
        sender.start()
        await sender.stop()
        await sender.stop()

    asyncio.run(main())
