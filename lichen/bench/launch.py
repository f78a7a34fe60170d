"""`lichen bench launch`: end-to-end task launches per second through a real master.

A real `lichen master` runs as a child process (its own core); this process hosts the
simulated agents (`lichen.sim`, which answer RUN_TASK with TASK_RUNNING at once) and a
minimal v1 HTTP scheduler that accepts every offer with as many tiny tasks as fit and
acknowledges every update. A launch counts when its TASK_RUNNING has been acknowledged:
ACCEPT with LAUNCH -> master -> agent -> TASK_RUNNING -> master -> scheduler -> ACKNOWLEDGE.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from lichen.bench.marathon import _start, _stop
from lichen.recordio import Decoder
from lichen.resources import Resources
from lichen.sim.agent import SimAgent

TASK_CPUS = 0.01
TASK_MEM = 1.0


class V1Scheduler:
    """A minimal v1 HTTP scheduler for the benchmarks: one SUBSCRIBE stream (no
    reconnection), each event handed to `on_event` in order, calls that raise when the
    master refuses them. `run` returns after the event that sets `done`."""

    def __init__(self, master: str, session: aiohttp.ClientSession, framework_info: dict[str, Any]) -> None:
        self.url = f"http://{master}/api/v1/scheduler"
        self.session = session
        self.framework_info = framework_info
        self.framework_id: dict[str, str] | None = None
        self.stream_id = ""
        self.done = asyncio.Event()

    async def call(self, body: dict[str, Any]) -> None:
        body["framework_id"] = self.framework_id
        async with self.session.post(self.url, json=body, headers={"Mesos-Stream-Id": self.stream_id}) as r:
            if r.status >= 300:
                raise RuntimeError(f"{body['type']} answered {r.status}: {await r.text()}")

    async def run(self) -> None:
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.framework_info}}
        async with self.session.post(self.url, json=sub) as resp:
            self.stream_id = resp.headers["Mesos-Stream-Id"]
            decoder = Decoder()
            async for chunk in resp.content.iter_any():
                for event in decoder.feed(chunk):
                    if event["type"] == "SUBSCRIBED":
                        self.framework_id = event["subscribed"]["framework_id"]
                    await self.on_event(event)
                    if self.done.is_set():
                        return

    async def on_event(self, event: dict[str, Any]) -> None:
        """One event from the master (SUBSCRIBED has set `framework_id` already)."""

    async def acknowledge(self, status: dict[str, Any]) -> None:
        await self.call({"type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})

    async def launch_tasks(self, offer: dict[str, Any], task_infos: list[dict[str, Any]]) -> None:
        """ACCEPT `offer` with one LAUNCH of `task_infos`, refusing nothing of what is left."""
        await self.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": task_infos}}], "filters": {"refuse_seconds": 0}}})


class _Scheduler(V1Scheduler):
    def __init__(self, master: str, session: aiohttp.ClientSession, tasks: int) -> None:
        super().__init__(master, session, {"user": "bench", "name": "bench"})
        self.wanted = tasks
        self.launched = 0
        self.running = 0
        self.first_launch: float | None = None

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "OFFERS":
            for offer in event["offers"]["offers"]:
                await self.launch(offer)
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if status["state"] == "TASK_RUNNING":
                self.running += 1
            if "uuid" in status:
                asyncio.get_running_loop().create_task(self.acknowledge(status))
            if self.running >= self.wanted:
                self.done.set()

    async def launch(self, offer: dict[str, Any]) -> None:
        res = Resources.from_json(offer["resources"])
        fit = int(min(res.scalar("cpus") / TASK_CPUS, res.scalar("mem") / TASK_MEM))
        n = max(0, min(fit, self.wanted - self.launched))
        if n == 0:
            await self.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]],
                                                            "filters": {"refuse_seconds": 3600}}})
            return
        task_res = Resources.scalars({"cpus": TASK_CPUS, "mem": TASK_MEM}).to_json()
        infos = []
        for _ in range(n):
            self.launched += 1
            infos.append({"name": "t", "task_id": {"value": f"t{self.launched}"}, "agent_id": offer["agent_id"],
                          "resources": task_res, "command": {"value": "true"}})
        if self.first_launch is None:
            self.first_launch = time.perf_counter()
        await self.launch_tasks(offer, infos)


async def _bench(master: str, tasks: int, agents: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sims = [SimAgent(master, session, hostname=f"sim{i}", port=10000 + i,
                         resources=f"cpus:{tasks * TASK_CPUS / agents + 1};mem:{tasks * TASK_MEM / agents + 64}")
                for i in range(agents)]
        for s in sims:
            s.start()
        await asyncio.wait_for(asyncio.gather(*(s.registered.wait() for s in sims)), 30)
        sched = _Scheduler(master, session, tasks)
        runner = asyncio.get_running_loop().create_task(sched.run())
        await asyncio.wait_for(sched.done.wait(), 600)
        end = time.perf_counter()
        runner.cancel()
        for s in sims:
            await s.stop()
        assert sched.first_launch is not None
        assert sum(s.launched for s in sims) >= tasks, "not every task reached an agent"
        elapsed = end - sched.first_launch
        return {"bench": "launch", "tasks": tasks, "agents": agents, "seconds": round(elapsed, 3),
                "launches_per_s": round(tasks / elapsed, 1)}


def run(tasks: int = 10000, agents: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lichen-bench-") as tmp:
        proc, addr = _start("master", Path(tmp) / "master", "--allocation-interval", "0.05")
        try:
            return asyncio.run(_bench(addr, tasks, agents))
        finally:
            _stop(proc)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--agents", type=int, default=10)
    a = p.parse_args()
    print(json.dumps(run(a.tasks, a.agents)))
    os._exit(0)
