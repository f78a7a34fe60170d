"""A simulated agent: registers with a real master over HTTP and answers RUN_TASK with
TASK_RUNNING at once (and, if asked, TASK_FINISHED right after), KILL_TASK with
TASK_KILLED. It runs no process; many fit in one event loop."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from typing import Any

import aiohttp

from lichen import MESOS_VERSION
from lichen.recordio import Decoder
from lichen.resources import Resources

log = logging.getLogger(__name__)


def _uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


class SimAgent:
    def __init__(
        self,
        master: str,
        session: aiohttp.ClientSession,
        *,
        hostname: str = "sim",
        port: int = 5051,
        resources: str = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
        finish: bool = False,
    ) -> None:
        self.url = f"http://{master}/internal/agent"
        self.session = session
        self.hostname = hostname
        self.port = port
        self.resources = Resources.parse(resources)
        self.finish = finish
        self.agent_id: str | None = None
        self.registered = asyncio.Event()
        self.tasks: dict[str, str] = {}          # task id -> state
        self.frameworks: dict[str, dict[str, str]] = {}  # task id -> framework id
        self.launched = 0
        self.launch_times: dict[str, float] = {}  # task id -> wall time RUN_TASK arrived
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        """Register, serve the stream, and re-register (with our id) whenever it breaks."""
        while True:
            try:
                await self._serve_stream()
            except (aiohttp.ClientError, OSError) as e:
                log.debug("sim agent %s: stream broke: %s", self.hostname, e)
            await asyncio.sleep(0.1)

    async def _serve_stream(self) -> None:
        info: dict[str, Any] = {"hostname": self.hostname, "port": self.port,
                                "resources": self.resources.to_json(), "attributes": []}
        if self.agent_id is not None:
            info["id"] = {"value": self.agent_id}
        body = {"type": "REGISTER", "register": {
            "agent_info": info, "tasks": [], "frameworks": [], "version": MESOS_VERSION}}
        async with self.session.post(self.url, json=body) as resp:
            resp.raise_for_status()
            decoder = Decoder()
            async for chunk in resp.content.iter_any():
                for event in decoder.feed(chunk):
                    await self._on_event(event)

    async def _call(self, kind: str, payload: dict[str, Any]) -> None:
        payload["agent_id"] = {"value": self.agent_id}
        async with self.session.post(self.url, json={"type": kind, kind.lower(): payload}) as resp:
            await resp.read()

    async def _update(self, framework_id: dict[str, str], task_id: dict[str, str], state: str) -> None:
        self.tasks[task_id["value"]] = state
        status = {"task_id": task_id, "state": state, "source": "SOURCE_EXECUTOR", "uuid": _uuid(),
                  "agent_id": {"value": self.agent_id}, "executor_id": task_id}
        await self._call("STATUS_UPDATE", {"framework_id": framework_id, "status": status})

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "REGISTERED":
            self.agent_id = event["registered"]["agent_id"]["value"]
            self.registered.set()
        elif kind == "PING":
            await self._call("PONG", {})
        elif kind == "RUN_TASK":
            task = event["run_task"]["task"]
            fid = event["run_task"]["framework_info"]["id"]
            self.launched += 1
            self.launch_times[task["task_id"]["value"]] = time.time()
            self.frameworks[task["task_id"]["value"]] = fid
            await self._update(fid, task["task_id"], "TASK_RUNNING")
            if self.finish:
                await self._update(fid, task["task_id"], "TASK_FINISHED")
        elif kind == "KILL_TASK":
            body = event["kill_task"]
            await self._update(body["framework_id"], body["task_id"], "TASK_KILLED")
        elif kind == "SHUTDOWN_FRAMEWORK":
            fid = event["shutdown_framework"]["framework_id"]
            for tid, f in list(self.frameworks.items()):
                if f == fid and self.tasks.get(tid) == "TASK_RUNNING":
                    await self._update(fid, {"value": tid}, "TASK_KILLED")
