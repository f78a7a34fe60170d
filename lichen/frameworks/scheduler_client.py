"""A Mesos v1 HTTP scheduler client, for lichen's own frameworks (Marathon, Chronos).

It talks to the master exactly as pymesos does: SUBSCRIBE opens a RecordIO stream
(re-opened with the framework id whenever it breaks, with backoff), and calls go out
as separate POSTs carrying the `Mesos-Stream-Id`. Events are handed to `on_event` in
order; `on_event` is a coroutine so the framework can persist before acknowledging.
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

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class SchedulerClient:
    def __init__(
        self,
        master: str,
        framework_info: dict[str, Any],
        on_event: EventHandler,
        *,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.master = master.removeprefix("http://").rstrip("/")
        self.framework_info = dict(framework_info)
        self.on_event = on_event
        self.on_disconnect = on_disconnect
        self.stream_id = ""
        self.connected = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def framework_id(self) -> str | None:
        fid = self.framework_info.get("id")
        return fid.get("value") if isinstance(fid, dict) else None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            connector=aiohttp.TCPConnector(limit=32),
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler-client")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._subscribe()
                backoff = 0.1
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                log.info("scheduler stream to %s broke: %s", self.master, e)
            self.connected.clear()
            self.stream_id = ""
            if self.on_disconnect is not None:
                self.on_disconnect()
            await asyncio.sleep(backoff + random.uniform(0, backoff / 2))
            backoff = min(backoff * 2, 2.0)

    async def _subscribe(self) -> None:
        assert self._session is not None
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.framework_info}}
        if self.framework_id:
            body["framework_id"] = {"value": self.framework_id}
        async with self._session.post(f"http://{self.master}/api/v1/scheduler", json=body,
                                      headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise ValueError(f"SUBSCRIBE answered {resp.status}: {(await resp.text()).strip()}")
            self.stream_id = resp.headers.get("Mesos-Stream-Id", "")
            decoder = Decoder()
            async for chunk in resp.content.iter_any():
                for event in decoder.feed(chunk):
                    if event.get("type") == "SUBSCRIBED":
                        self.framework_info["id"] = event["subscribed"]["framework_id"]
                        self.connected.set()
                    elif event.get("type") == "ERROR":
                        log.error("master says: %s", event.get("error", {}).get("message"))
                    try:
                        await self.on_event(event)
                    except Exception:
                        log.exception("handling %s failed", event.get("type"))

    async def call(self, kind: str, payload: dict[str, Any] | None = None) -> bool:
        """Send one call; False (logged) if not subscribed or the master refused it."""
        if not self.connected.is_set() or self._session is None:
            return False
        body: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id}}
        if payload is not None:
            body[kind.lower()] = payload
        try:
            async with self._session.post(
                f"http://{self.master}/api/v1/scheduler", json=body,
                headers={"Mesos-Stream-Id": self.stream_id},
            ) as resp:
                if resp.status >= 300:
                    log.warning("%s answered %d: %s", kind, resp.status, (await resp.text()).strip())
                    return False
                return True
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.warning("%s failed: %s", kind, e)
            return False

    async def launch(self, offer_id: dict[str, Any], task_infos: list[dict[str, Any]]) -> bool:
        """ACCEPT the offer with one LAUNCH of `task_infos`; the rest of it is offered again soon."""
        return await self.call("ACCEPT", {"offer_ids": [offer_id], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": task_infos}}], "filters": {"refuse_seconds": 1}})

    async def decline(self, offer_id: dict[str, Any], refuse_seconds: float) -> bool:
        """DECLINE the offer; the master offers those resources again after `refuse_seconds`."""
        return await self.call("DECLINE", {"offer_ids": [offer_id], "filters": {"refuse_seconds": refuse_seconds}})
