"""Test harness for `lichen agent`: a fake master and agent processes.

`FakeMaster` is a second, minimal implementation of docs/agent-protocol.md's master
side (an aiohttp app on its own thread and loop): it accepts REGISTER streams, records
every call, acknowledges status updates when told to, and lets a test send events.
`AgentProcess` runs a real `lichen agent` in its own session and cleans up everything it
started: the agent, task processes (by process group) and cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from lichen.agent.containerizer.cgroups import remove_root
from lichen.recordio import encode

REPO = Path(__file__).resolve().parents[3]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class FakeMaster:
    def __init__(self) -> None:
        self.registrations: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.auto_ack = True
        self.agent_id = "fake-master-S0"
        self._lock = threading.Lock()
        self._stream: asyncio.Queue[dict[str, Any] | None] | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/internal/agent", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["type"] == "REGISTER":
            return await self._register(request, body["register"])
        with self._lock:
            self.calls.append(body)
        if body["type"] == "STATUS_UPDATE" and self.auto_ack:
            status = body["status_update"]["status"]
            if "uuid" in status:
                self.acknowledge(body["status_update"]["framework_id"]["value"], status)
        return web.Response(status=202)

    async def _register(self, request: web.Request, register: dict[str, Any]) -> web.StreamResponse:
        with self._lock:
            self.registrations.append(register)
        given = (register["agent_info"].get("id") or {}).get("value")
        agent_id = given or self.agent_id
        if self._stream is not None:
            self._stream.put_nowait(None)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._stream = queue
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(
            encode(
                {
                    "type": "REGISTERED",
                    "registered": {
                        "agent_id": {"value": agent_id},
                        "master_info": {"id": "fake", "ip": 0, "port": self.port, "hostname": "127.0.0.1"},
                    },
                }
            )
        )
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                await resp.write(encode(event))
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            if self._stream is queue:
                self._stream = None
        return resp

    # -- what tests use --------------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        def put() -> None:
            assert self._stream is not None, "no agent stream"
            self._stream.put_nowait(event)

        self._loop.call_soon_threadsafe(put)

    def connected(self) -> bool:
        return self._stream is not None

    def drop_stream(self) -> None:
        def close() -> None:
            if self._stream is not None:
                self._stream.put_nowait(None)

        self._loop.call_soon_threadsafe(close)

    def acknowledge(self, framework_id: str, status: dict[str, Any]) -> None:
        self.send(
            {
                "type": "ACKNOWLEDGE",
                "acknowledge": {
                    "framework_id": {"value": framework_id},
                    "task_id": status["task_id"],
                    "uuid": status["uuid"],
                },
            }
        )

    def run_task(self, task: dict[str, Any], framework: dict[str, Any] | None = None) -> None:
        fw = framework or framework_info()
        task = dict(task)
        task.setdefault("agent_id", {"value": self.agent_id})
        self.send({"type": "RUN_TASK", "run_task": {"framework_info": fw, "task": task}})

    def kill_task(self, task_id: str, framework_id: str = "fw-1", grace: float | None = None) -> None:
        body: dict[str, Any] = {"framework_id": {"value": framework_id}, "task_id": {"value": task_id}}
        if grace is not None:
            body["kill_policy"] = {"grace_period": {"nanoseconds": int(grace * 1e9)}}
        self.send({"type": "KILL_TASK", "kill_task": body})

    def calls_of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["type"] == kind]

    def statuses(self, task_id: str | None = None) -> list[dict[str, Any]]:
        out = [c["status_update"]["status"] for c in self.calls_of("STATUS_UPDATE")]
        if task_id is not None:
            out = [s for s in out if s["task_id"]["value"] == task_id]
        return out

    def states(self, task_id: str) -> list[str]:
        """Distinct states in order (retries of one update collapse)."""
        seen: list[str] = []
        uuids: set[str] = set()
        for s in self.statuses(task_id):
            key = s.get("uuid") or str(len(uuids)) + s["state"]
            if key in uuids:
                continue
            uuids.add(key)
            seen.append(s["state"])
        return seen

    def wait_state(self, task_id: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for s in self.statuses(task_id):
                if s["state"] == state:
                    return s
            return None

        return wait_for(find, timeout, f"{task_id} to reach {state}; saw {self.states(task_id)}")

    def close(self) -> None:
        async def stop() -> None:
            if self._stream is not None:
                self._stream.put_nowait(None)
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def framework_info(fw_id: str = "fw-1", **extra: Any) -> dict[str, Any]:
    return {"id": {"value": fw_id}, "name": "test", "user": "root", **extra}


def command_task(task_id: str, command: str | dict[str, Any], **extra: Any) -> dict[str, Any]:
    cmd = {"value": command} if isinstance(command, str) else command
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
        ],
        "command": cmd,
        **extra,
    }


class AgentProcess:
    """A `lichen agent` subprocess with its own work dir and cgroups root."""

    def __init__(self, master: FakeMaster, work_dir: Path, *extra: str) -> None:
        self.master = master
        self.work_dir = work_dir
        self.cgroups_root = f"lichen-test-{uuid.uuid4().hex[:8]}"
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0                  # a restart binds the port the first start got
        self.log = work_dir.parent / f"{work_dir.name}-agent.log"

    def start(self) -> AgentProcess:
        with contextlib.suppress(FileNotFoundError):
            (self.work_dir / "agent.addr").unlink()
        argv = [
            PYTHON,
            "-c",
            "from lichen.cli.main import cli; cli(prog_name='lichen')",
            "agent",
            "--master", self.master.addr,
            "--port", str(self.port),
            "--work-dir", str(self.work_dir),
            "--resources", "cpus:2;mem:1024;disk:1024",
            "--attributes", "rack:a;zone:1",
            "--cgroups-root", self.cgroups_root,
            "--status-update-retry-interval", "0.5",
            "--log-level", "debug",
            *self.extra,
        ]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
        wait_for(lambda: (self.work_dir / "agent.addr").exists() or self.proc.poll() is not None, 30, "agent.addr")  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.log.read_text()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return "http://" + (self.work_dir / "agent.addr").read_text().strip()

    def get(self, endpoint: str, **params: Any) -> requests.Response:
        return requests.get(self.url + endpoint, params=params, timeout=10)

    def state(self) -> dict[str, Any]:
        r = self.get("/state")
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def cleanup(self) -> None:
        """Kill the agent, every task process it started and its cgroups."""
        self.kill()
        kill_task_processes(self.work_dir)
        remove_root(self.cgroups_root)
        remove_cgroups(self.cgroups_root)


def kill_task_processes(work_dir: Path) -> None:
    for meta in work_dir.rglob(".lichen"):
        pid_file = meta / "pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
        described = meta / "container.json"
        if described.exists():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, TypeError):
                wrapper = json.loads(described.read_text()).get("wrapper_pid")
                os.killpg(int(wrapper), signal.SIGKILL)


def remove_cgroups(root_name: str, timeout: float = 10.0) -> None:
    """rmdir the test's cgroup tree, deepest first, retrying while killed tasks exit."""
    base = Path("/sys/fs/cgroup")
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for root in [*base.glob(f"*/{root_name}"), base / root_name]:
            if not root.is_dir():
                continue
            dirs = [p for p in root.rglob("*") if p.is_dir()]
            for d in sorted(dirs, key=lambda p: -len(p.parts)) + [root]:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2 :][0] != "Z"
    except OSError:
        return False


def task_pid(work_dir: Path, task_id: str) -> int:
    for meta in work_dir.rglob(".lichen"):
        if f"/executors/{task_id}/runs/" in str(meta) and (meta / "pid").exists():
            return int((meta / "pid").read_text().strip())
    raise AssertionError(f"no pid for {task_id}")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
