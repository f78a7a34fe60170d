"""Best-effort delivery of events to HTTP callback subscribers (`/v2/eventSubscriptions`).

Each callback URL has its own bounded queue and worker task; an event is POSTed as JSON
to every URL. A slow or dead subscriber never blocks the service or the other
subscribers: its queue drops new events once full, and each POST has a short timeout.
Failures are logged at debug level and forgotten (Marathon's callbacks were best effort
too). The service owns the sender: `start()` once, `await stop()` on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

__all__ = ["CallbackSender"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 1024
POST_TIMEOUT = 5.0


class CallbackSender:
    def __init__(self, *, queue_size: int = QUEUE_SIZE, timeout: float = POST_TIMEOUT) -> None:
        self._queue_size = queue_size
        self._timeout = timeout
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._urls: list[str] = []
        self.dropped = 0  # events dropped on full queues, for tests and metrics

    def start(self) -> None:
        """Open the HTTP session and start a worker per known URL (needs a running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout, connect=min(self._timeout, 2.0))
            )
        self._sync_workers()

    async def stop(self) -> None:
        """Cancel every worker and close the session; undelivered events are dropped."""
        workers = list(self._workers.values())
        self._workers.clear()
        self._queues.clear()
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._session is not None:
            await self._session.close()
            self._session = None

    def set_urls(self, urls: list[str]) -> None:
        """Deliver to exactly these URLs from now on."""
        self._urls = list(dict.fromkeys(urls))
        if self._session is not None:
            self._sync_workers()

    def send(self, event: dict[str, Any]) -> None:
        """Queue `event` for every URL; never blocks. Before `start()` it is dropped."""
        for url, queue in self._queues.items():
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1
                log.debug("callback queue for %s is full; dropping %s", url, event.get("eventType"))

    def _sync_workers(self) -> None:
        for url in list(self._workers):
            if url not in self._urls:
                self._workers.pop(url).cancel()
                self._queues.pop(url, None)
        for url in self._urls:
            if url not in self._workers:
                queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._queue_size)
                self._queues[url] = queue
                self._workers[url] = asyncio.get_running_loop().create_task(
                    self._deliver(url, queue), name=f"marathon-callback {url}"
                )

    async def _deliver(self, url: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await queue.get()
            session = self._session
            if session is None:
                return
            try:
                async with session.post(url, json=event) as resp:
                    await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                log.debug("callback %s failed: %s", url, e)
