"""`lichen bench chronos`: many scheduled jobs, how late their runs start and what each
due run costs the scheduler.

A real `lichen master` and a real `lichen chronos` run as child processes; this process
hosts simulated agents (`lichen.sim`: RUN_TASK answered with TASK_RUNNING and
TASK_FINISHED at once). N jobs are created with one-minute periods whose first instants
are staggered evenly over the measured window, so about N/window runs fall due each
second. Each run's lateness is the time its RUN_TASK reaches an agent minus its due
instant (read from the Chronos task id, `ct:<dueMillis>:...`). The scheduling overhead is
the CPU time `lichen chronos` used during the window divided by the runs launched.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import psutil

from lichen.bench.marathon import _percentile, _start, _stop
from lichen.sim.agent import SimAgent


async def _bench(master: str, chronos: str, chronos_pid: int, jobs: int, window: float, agents: int,
                 allocation_interval: float) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        sims = [SimAgent(master, session, hostname=f"sim{i}", port=20000 + i, finish=True,
                         resources="cpus:64;mem:262144;disk:1000000") for i in range(agents)]
        for s in sims:
            s.start()
        await asyncio.wait_for(asyncio.gather(*(s.registered.wait() for s in sims)), 60)

        lead = 10.0 + jobs / 500.0          # time to create every job before the first falls due
        first = time.time() + lead
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            at = datetime.fromtimestamp(first + window * i / jobs, tz=UTC)
            body = {"name": f"job{i:05d}", "command": "true", "owner": "", "disabled": False,
                    "cpus": 0.01, "mem": 1, "disk": 0,
                    "schedule": f"R/{at.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z/PT1M"}
            async with sem, session.post(f"http://{chronos}/v1/scheduler/iso8601", json=body) as r:
                if r.status != 204:
                    raise RuntimeError(f"creating a job answered {r.status}: {await r.text()}")

        await asyncio.gather(*(create(i) for i in range(jobs)))
        if time.time() > first:
            raise RuntimeError("creating the jobs took longer than the lead time")
        proc = psutil.Process(chronos_pid)
        await asyncio.sleep(max(0.0, first - time.time()))
        cpu_before = sum(proc.cpu_times()[:2])
        await asyncio.sleep(window + allocation_interval + 2.0)
        cpu_after = sum(proc.cpu_times()[:2])
        late: list[float] = []
        for s in sims:
            for task_id, seen in s.launch_times.items():
                due = int(task_id.split(":")[1]) / 1000.0
                if first - 0.001 <= due < first + window - 0.001:
                    late.append(seen - due)
        for s in sims:
            await s.stop()
        if len(late) < jobs:
            raise RuntimeError(f"only {len(late)} of {jobs} due runs were launched in the window")
        return {"bench": "chronos", "jobs": jobs, "window_s": window, "runs": len(late),
                "allocation_interval_s": allocation_interval,
                "late_ms_p50": round(_percentile(late, 50) * 1000, 1),
                "late_ms_p99": round(_percentile(late, 99) * 1000, 1),
                "late_ms_max": round(max(late) * 1000, 1),
                "cpu_ms_per_run": round((cpu_after - cpu_before) * 1000 / len(late), 3)}


def scheduling_overhead(jobs: int, window: float = 60.0) -> dict[str, Any]:
    """The scheduler's own work per due run, in process: from a job whose instant has come
    to its advanced schedule, its queued run and the bytes stored for both
    (`service.advance` plus the JSON written), over `jobs` staggered one-minute jobs."""
    from lichen.frameworks.chronos import job as chronos_job
    from lichen.frameworks.chronos.service import advance

    start = time.time()
    defaults = chronos_job.JobDefaults()
    batch = []
    for i in range(jobs):
        at = datetime.fromtimestamp(start + window * i / jobs, tz=UTC)
        batch.append(chronos_job.parse_job(
            {"name": f"job{i:05d}", "command": "true", "owner": "",
             "schedule": f"R/{at.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z/PT1M"}, now=start, defaults=defaults))
    runs = 0
    began = time.perf_counter()
    for i, one in enumerate(batch):
        new_job, queued, _ = advance(one, start + window * i / jobs + 0.01, True)
        json.dumps(new_job.raw)
        if queued is not None:
            json.dumps(queued.task_id)
            runs += 1
    elapsed = time.perf_counter() - began
    assert runs == jobs, f"{runs} of {jobs} jobs were due"
    return {"scheduling_ms_per_run": round(elapsed * 1000 / runs, 4)}


def run(jobs: int = 10000, window: float = 60.0, agents: int = 10, allocation_interval: float = 1.0) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="lichen-bench-") as tmp:
        master, master_addr = _start("master", Path(tmp) / "master", "--allocation-interval", str(allocation_interval))
        try:
            chronos, chronos_addr = _start("chronos", Path(tmp) / "chronos", "--master", master_addr)
            try:
                result = asyncio.run(_bench(master_addr, chronos_addr, chronos.pid, jobs, window, agents,
                                            allocation_interval))
                return {**result, **scheduling_overhead(jobs, window)}
            finally:
                _stop(chronos)
        finally:
            _stop(master)


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, 20.0)))
