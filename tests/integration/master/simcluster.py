"""A real `lichen master` process plus simulated agents on a background event loop."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import requests

from lichen.sim.agent import SimAgent


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class MasterProcess:
    def __init__(self, work_dir: Path, *flags: str, port: int = 0) -> None:
        self.work_dir = work_dir
        self.flags = flags
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = ""

    def start(self) -> MasterProcess:
        addr_file = self.work_dir / "master.addr"
        if addr_file.exists():
            addr_file.unlink()
        self.log = open(self.work_dir / "master.log", "ab")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lichen.cli.main", "master", "--port", str(self.port),
             "--work-dir", str(self.work_dir), *self.flags],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.addr = wait_for(lambda: addr_file.exists() and addr_file.read_text().strip(), 20, "master.addr")
        self.port = int(self.addr.rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def get(self, path: str) -> Any:
        r = requests.get(self.url + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


class SimAgents:
    """Simulated agents on their own event loop thread."""

    def __init__(self, master_addr: str) -> None:
        self.master_addr = master_addr
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.session: aiohttp.ClientSession = self._run(self._session())
        self.agents: list[SimAgent] = []

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def add(self, resources: str = "cpus:4;mem:4096;disk:1000;ports:[31000-32000]", finish: bool = True) -> SimAgent:
        async def make() -> SimAgent:
            a = SimAgent(self.master_addr, self.session, hostname=f"sim{len(self.agents)}",
                         port=20000 + len(self.agents), resources=resources, finish=finish)
            a.start()
            await asyncio.wait_for(a.registered.wait(), 10)
            return a
        agent = self._run(make())
        self.agents.append(agent)
        return agent

    def stop_agent(self, agent: SimAgent) -> None:
        self._run(agent.stop())

    def close(self) -> None:
        for a in self.agents:
            self._run(a.stop())
        self._run(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
