"""The agent's side of docs/agent-protocol.md: one REGISTER stream plus calls.

`MasterLink.run()` keeps a stream open forever: it POSTs REGISTER (built fresh by
`register_body()` each time, so it carries the checkpointed id and current tasks),
hands every record to `on_event` in order, and when the stream ends or fails calls
`on_disconnect` and reconnects after a backoff (0.1 s doubling to 2 s, plus jitter).
`call()` POSTs one call; a 403 (the master does not know us) drops the stream so that
the agent re-registers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from lichen.recordio import Decoder

log = logging.getLogger(__name__)

_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 2.0
_CALL_TIMEOUT = 10.0


class MasterLink:
    def __init__(
        self,
        master: str,
        register_body: Callable[[], dict[str, Any]],
        on_event: Callable[[dict[str, Any]], Awaitable[None]],
        on_disconnect: Callable[[], None],
    ) -> None:
        self.url = f"http://{master}/internal/agent"
        self._register_body = register_body
        self._on_event = on_event
        self._on_disconnect = on_disconnect
        self._session: aiohttp.ClientSession | None = None
        self._resp: aiohttp.ClientResponse | None = None
        self.connected = False

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10.0)
        )
        backoff = _BACKOFF_MIN
        try:
            while True:
                opened = False
                try:
                    opened = await self._stream_once()
                except asyncio.CancelledError:
                    raise
                except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                    log.info("master stream at %s failed: %s", self.url, e)
                finally:
                    if self.connected:
                        self.connected = False
                    self._on_disconnect()
                if opened:
                    backoff = _BACKOFF_MIN
                await asyncio.sleep(backoff + random.uniform(0, backoff / 2))
                backoff = min(backoff * 2, _BACKOFF_MAX)
        finally:
            await self._session.close()

    async def _stream_once(self) -> bool:
        assert self._session is not None
        body = self._register_body()
        try:
            async with self._session.post(
                self.url, json=body, headers={"Accept": "application/json"}
            ) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    log.warning("master refused REGISTER: %s %s", resp.status, text.strip())
                    return False
                self.connected = True
                self._resp = resp
                decoder = Decoder()
                async for chunk in resp.content.iter_any():
                    for record in decoder.feed(chunk):
                        await self._on_event(record)
                log.info("master closed the agent stream")
                return True
        finally:
            self._resp = None

    def drop_stream(self) -> None:
        """Make `run()` reconnect (and so re-register)."""
        if self._resp is not None:
            self._resp.close()

    async def call(self, record: dict[str, Any]) -> bool:
        """POST one call; True when the master accepted it (2xx)."""
        session = self._session
        if session is None or session.closed:
            return False
        try:
            async with asyncio.timeout(_CALL_TIMEOUT):
                async with session.post(self.url, json=record) as resp:
                    await resp.read()
                    if resp.status == 403:
                        log.info("master does not know this agent; re-registering")
                        self.drop_stream()
                        return False
                    if resp.status // 100 != 2:
                        log.warning("master answered %s to %s", resp.status, record.get("type"))
                        return False
                    return True
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.info("call %s to master failed: %s", record.get("type"), e)
            return False
