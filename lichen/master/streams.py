"""Outbound event streams (scheduler, agent and operator subscriptions).

Whoever decides to send an event calls `send()`, which never blocks; the HTTP handler
that owns the connection runs `pump()` to write queued events as RecordIO records.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from lichen.recordio import encode


class EventStream:
    def __init__(self) -> None:
        self.stream_id = str(uuid.uuid4())
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self._queue.put_nowait(event)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def pump(self, resp: web.StreamResponse) -> None:
        """Write events until the stream is closed or the peer goes away."""
        while True:
            event = await self._queue.get()
            if event is None:
                return
            chunk = bytearray(encode(event))
            # Coalesce whatever else is queued into one write.
            while not self._queue.empty() and len(chunk) < 1 << 20:
                more = self._queue.get_nowait()
                if more is None:
                    await resp.write(bytes(chunk))
                    return
                chunk += encode(more)
            await resp.write(bytes(chunk))
