"""Marathon benchmarks: `lichen bench marathon-scale` and `lichen bench marathon-apps`.

marathon-scale: a real `lichen master` and a real `lichen marathon` run as child
processes; this process hosts simulated agents (`lichen.sim`, answering RUN_TASK with
TASK_RUNNING at once) and reads `/v2/events`. One app is POSTed with N instances; the
figure is N divided by the time from the POST to the last task's TASK_RUNNING event, and
each task's latency is the time from the POST to its TASK_RUNNING event. The whole path
runs: API -> planner -> offers -> agents -> status updates -> Marathon.

marathon-apps: the same processes; 1,000 apps with 10,000 tasks in all, then timed
`GET /v2/apps?embed=apps.tasks` requests (p50/p99 ms).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from lichen.sim.agent import SimAgent


def _start(kind: str, work_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / f"{kind}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lichen.cli.main", kind, "--port", "0",
                                 "--work-dir", str(work_dir), "--log-level", "warning", *args],
                                stdout=log, stderr=log)
    addr_file = work_dir / f"{kind}.addr"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if addr_file.exists() and addr_file.read_text().strip():
            return proc, addr_file.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"lichen {kind} exited during start-up; see {work_dir}/{kind}.log")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"lichen {kind} did not start within 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _agents(session: aiohttp.ClientSession, master: str, count: int, cpus: float, mem: float) -> list[SimAgent]:
    sims = [SimAgent(master, session, hostname=f"sim{i}", port=20000 + i,
                     resources=f"cpus:{cpus};mem:{mem};disk:1000;ports:[31000-32000]") for i in range(count)]
    for s in sims:
        s.start()
    await asyncio.wait_for(asyncio.gather(*(s.registered.wait() for s in sims)), 60)
    return sims


async def _scale(master: str, marathon: str, instances: int, agents: int) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        per_agent = instances / agents
        sims = await _agents(session, master, agents, per_agent * 0.01 + 1, per_agent * 1 + 64)
        running: dict[str, float] = {}
        done = asyncio.Event()
        attached = asyncio.Event()

        async def read_events() -> None:
            async with session.get(f"http://{marathon}/v2/events",
                                   params={"event_type": ["status_update_event", "event_stream_attached"]}) as r:
                async for line in r.content:
                    if line.startswith(b"data: "):
                        event = json.loads(line[6:])
                        if event["eventType"] == "event_stream_attached":
                            attached.set()
                        elif event["taskStatus"] == "TASK_RUNNING" and event["taskId"] not in running:
                            running[event["taskId"]] = time.perf_counter()
                            if len(running) >= instances:
                                done.set()
                                return

        reader = asyncio.get_running_loop().create_task(read_events())
        await asyncio.wait_for(attached.wait(), 30)
        app = {"id": "/bench", "cmd": "sleep 3600", "cpus": 0.01, "mem": 1, "instances": instances,
               "portDefinitions": []}
        posted = time.perf_counter()
        async with session.post(f"http://{marathon}/v2/apps", json=app) as r:
            if r.status != 201:
                raise RuntimeError(f"POST /v2/apps answered {r.status}: {await r.text()}")
        await asyncio.wait_for(done.wait(), 600)
        reader.cancel()
        for s in sims:
            await s.stop()
        assert sum(s.launched for s in sims) >= instances, "not every instance reached an agent"
        latencies = [t - posted for t in running.values()]
        elapsed = max(running.values()) - posted
        return {"bench": "marathon-scale", "instances": instances, "agents": agents,
                "seconds": round(elapsed, 3), "tasks_per_s": round(instances / elapsed, 1),
                "latency_ms_p50": round(_percentile(latencies, 50) * 1000, 1),
                "latency_ms_p99": round(_percentile(latencies, 99) * 1000, 1)}


async def _apps(master: str, marathon: str, apps: int, tasks: int, requests: int) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        sims = await _agents(session, master, 20, tasks * 0.01 / 20 + 1, tasks / 20 + 64)
        per_app = tasks // apps
        body = [{"id": f"/bench/app-{i:04d}", "cmd": "sleep 3600", "cpus": 0.01, "mem": 1,
                 "instances": per_app, "portDefinitions": [{"port": 0}], "labels": {"HAPROXY_GROUP": "external"},
                 "healthChecks": []} for i in range(apps)]
        async with session.put(f"http://{marathon}/v2/apps", json=body) as r:
            if r.status >= 300:
                raise RuntimeError(f"PUT /v2/apps answered {r.status}: {await r.text()}")
        deadline = time.monotonic() + 600
        while True:
            async with session.get(f"http://{marathon}/v2/deployments") as r:
                if not await r.json():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the apps did not deploy within 600 s")
            await asyncio.sleep(0.5)
        timings: list[float] = []
        size = 0
        for _ in range(requests):
            started = time.perf_counter()
            async with session.get(f"http://{marathon}/v2/apps", params={"embed": "apps.tasks"}) as r:
                data = await r.read()
            timings.append((time.perf_counter() - started) * 1000)
            size = len(data)
        listed = json.loads(data)["apps"]
        assert len(listed) == apps and sum(len(a["tasks"]) for a in listed) == per_app * apps
        for s in sims:
            await s.stop()
        return {"bench": "marathon-apps", "apps": apps, "tasks": per_app * apps, "requests": requests,
                "response_bytes": size, "ms_p50": round(_percentile(timings, 50), 1),
                "ms_p99": round(_percentile(timings, 99), 1)}


def _run(body: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lichen-bench-") as tmp:
        master, master_addr = _start("master", Path(tmp) / "master", "--allocation-interval", "0.2")
        try:
            marathon, marathon_addr = _start("marathon", Path(tmp) / "marathon", "--master", master_addr)
            try:
                return asyncio.run(body(master_addr, marathon_addr))
            finally:
                _stop(marathon)
        finally:
            _stop(master)


def run_scale(instances: int = 10000, agents: int = 100) -> dict[str, Any]:
    return _run(lambda m, mt: _scale(m, mt, instances, agents))


def run_apps(apps: int = 1000, tasks: int = 10000, requests: int = 50) -> dict[str, Any]:
    return _run(lambda m, mt: _apps(m, mt, apps, tasks, requests))


if __name__ == "__main__":
    print(json.dumps(run_scale(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, 10)))
