"""Small second implementations of the APIs the client verbs call, for the CLI tests.

- `FakeMarathon`: the few Marathon v2 endpoints `lichen app/task/deployment` use, with
  spec-shaped JSON and error bodies. Deployments advance one step per poll of
  `GET /v2/deployments`; `fail_deployments` makes them end as Marathon's cancelled ones
  do (gone from the list, the app left with a rollback deployment in progress).
- `FakeAgent` / `FakeMaster`: the Mesos master's `/master/tasks` and `/master/slaves`,
  and an agent's `/state` and files API over a real sandbox directory.

Each serves on 127.0.0.1 (port 0) from its own thread and event loop, so a test can run
the real `lichen` command as a subprocess against it; `stop()` tears it all down.
Every request is recorded in `requests` as (method, path, query, JSON body or None).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STAMP = "2024-05-01T12:00:00.000Z"


class ThreadedServer:
    """An aiohttp app served on loopback from a background thread."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> ThreadedServer:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            raw = await request.read()
            body = json.loads(raw) if raw else None
            with self._lock:
                self.requests.append((request.method, request.path, dict(request.query), body))
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.routes(app)
        self._runner = web.AppRunner(app)
        self._thread.start()

        async def serve() -> int:
            assert self._runner is not None
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return int(self._runner.addresses[0][1])

        port = asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def calls(self, method: str, path: str) -> list[tuple[dict[str, str], Any]]:
        return [(q, b) for m, p, q, b in self.requests if m == method and p == path]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


class FakeMarathon(ThreadedServer):
    def __init__(self, polls_to_finish: int = 2) -> None:
        super().__init__()
        self.apps: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[str]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self._left: dict[str, int] = {}        # polls until a deployment ends
        self._removing: set[str] = set()
        self.polls_to_finish = polls_to_finish
        self.fail_deployments = False

    # --- state helpers -----------------------------------------------------------------

    def add_app(self, definition: dict[str, Any], running: int | None = None) -> dict[str, Any]:
        app_id = "/" + definition["id"].strip("/")
        app = {
            "id": app_id, "cmd": None, "args": None, "instances": 1, "cpus": 1.0, "mem": 128.0,
            "disk": 0.0, "env": {}, "labels": {}, "healthChecks": [], "version": STAMP,
            **{k: v for k, v in definition.items() if k != "id"},
        }
        app["tasksStaged"] = 0
        app["tasksRunning"] = app["instances"] if running is None else running
        app["tasksHealthy"] = 0
        app["tasksUnhealthy"] = 0
        app["deployments"] = []
        self.apps[app_id] = app
        self.versions.setdefault(app_id, []).insert(0, STAMP)
        return app

    def tasks_of(self, app: dict[str, Any]) -> list[dict[str, Any]]:
        safe = app["id"].strip("/").replace("/", "_")
        return [
            {"id": f"{safe}.instance-{i:04d}._app.1", "appId": app["id"], "host": "127.0.0.1",
             "ports": [31000 + i], "servicePorts": [10000], "ipAddresses": [{"ipAddress": "127.0.0.1",
             "protocol": "IPv4"}], "stagedAt": STAMP, "startedAt": STAMP, "version": app["version"],
             "slaveId": "agent-1", "state": "TASK_RUNNING", "healthCheckResults": [], "localVolumes": []}
            for i in range(app["tasksRunning"])
        ]

    def _start_deployment(self, app_id: str, action: str, removing: bool = False) -> dict[str, Any]:
        dep_id = str(uuid.uuid4())
        self.deployments[dep_id] = {
            "id": dep_id, "version": STAMP, "affectedApps": [app_id], "affectedPods": [],
            "steps": [{"actions": [{"action": action, "app": app_id}]}],
            "currentActions": [{"action": action, "app": app_id, "readinessCheckResults": []}],
            "currentStep": 1, "totalSteps": 1,
        }
        self._left[dep_id] = self.polls_to_finish
        if removing:
            self._removing.add(dep_id)
        if app_id in self.apps:
            self.apps[app_id]["deployments"].append({"id": dep_id})
        return {"deploymentId": dep_id, "version": STAMP}

    def _advance(self) -> None:
        for dep_id in list(self.deployments):
            if self._left.get(dep_id) is None:
                continue
            self._left[dep_id] -= 1
            if self._left[dep_id] > 0:
                continue
            dep = self.deployments.pop(dep_id)
            del self._left[dep_id]
            for app_id in dep["affectedApps"]:
                app = self.apps.get(app_id)
                if app is None:
                    continue
                app["deployments"] = [d for d in app["deployments"] if d["id"] != dep_id]
                if self.fail_deployments:
                    rollback = self._start_deployment(app_id, "RestartApplication")["deploymentId"]
                    self._left[rollback] = None  # type: ignore[assignment]  # never ends
                elif dep_id in self._removing:
                    del self.apps[app_id]
                else:
                    app["tasksRunning"] = app["instances"]

    # --- routes ------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/apps", self.list_apps)
        app.router.add_post("/v2/apps", self.create_app)
        app.router.add_get("/v2/tasks", self.all_tasks)
        app.router.add_get("/v2/deployments", self.list_deployments)
        app.router.add_delete("/v2/deployments/{id}", self.delete_deployment)
        app.router.add_route("*", "/v2/apps/{tail:.+}", self.app_route)

    async def list_apps(self, request: web.Request) -> web.Response:
        return web.json_response({"apps": list(self.apps.values())})

    async def create_app(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not body.get("id"):
            return _error(422, "Object is not valid",
                          details=[{"path": "/id", "errors": ["error.path.missing"]}])
        if not (body.get("cmd") or body.get("args") or body.get("container")):
            return _error(422, "Object is not valid", details=[{"path": "/", "errors": [
                "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]}])
        app_id = "/" + body["id"].strip("/")
        if app_id in self.apps:
            return _error(409, f"An app with id [{app_id}] already exists.")
        app = self.add_app(body, running=0)
        dep = self._start_deployment(app_id, "StartApplication")
        return web.json_response(app, status=201, headers={
            "Location": f"{self.url}/v2/apps{app_id}", "Marathon-Deployment-Id": dep["deploymentId"]})

    async def app_route(self, request: web.Request) -> web.Response:
        tail = "/" + request.match_info["tail"].strip("/")
        suffix = ""
        for s in ("/versions", "/tasks", "/restart"):
            if tail.endswith(s):
                tail, suffix = tail[: -len(s)], s
        method = request.method
        if method == "PUT" and suffix == "":
            return await self._update(tail, await request.json())
        app = self.apps.get(tail)
        if app is None:
            return _error(404, f"App '{tail}' does not exist")
        if method == "GET" and suffix == "":
            return web.json_response({"app": {**app, "tasks": self.tasks_of(app)}})
        if method == "GET" and suffix == "/versions":
            return web.json_response({"versions": self.versions[tail]})
        if method == "GET" and suffix == "/tasks":
            return web.json_response({"tasks": self.tasks_of(app)})
        if method == "POST" and suffix == "/restart":
            return web.json_response(self._start_deployment(tail, "RestartApplication"))
        if method == "DELETE" and suffix == "":
            return web.json_response(self._start_deployment(tail, "StopApplication", removing=True))
        return _error(404, "URI not found")

    async def _update(self, app_id: str, body: dict[str, Any]) -> web.Response:
        if "instances" in body and not isinstance(body["instances"], int):
            return _error(422, "Invalid JSON", details=[
                {"path": "/instances", "errors": ["error.expected.jsnumber"]}])
        app = self.apps.get(app_id)
        created = app is None
        if app is None:
            app = self.add_app({"id": app_id, **body}, running=0)
        else:
            app.update(body)
        self.versions[app_id].insert(0, f"2024-05-01T12:00:{len(self.versions[app_id]):02d}.000Z")
        action = "ScaleApplication" if set(body) == {"instances"} else "RestartApplication"
        return web.json_response(self._start_deployment(app_id, action), status=201 if created else 200)

    async def all_tasks(self, request: web.Request) -> web.Response:
        return web.json_response({"tasks": [t for a in self.apps.values() for t in self.tasks_of(a)]})

    async def list_deployments(self, request: web.Request) -> web.Response:
        body = list(self.deployments.values())
        self._advance()
        return web.json_response(body)

    async def delete_deployment(self, request: web.Request) -> web.Response:
        dep_id = request.match_info["id"]
        dep = self.deployments.pop(dep_id, None)
        if dep is None:
            return _error(404, f"DeploymentPlan {dep_id} does not exist")
        if request.query.get("force", "").lower() == "true":
            return web.Response(status=202)
        result = self._start_deployment(dep["affectedApps"][0], "RestartApplication")
        return web.json_response(result)


class FakeAgent(ThreadedServer):
    """An agent whose only executor ran `task_id` in `sandbox`."""

    def __init__(self, task_id: str, sandbox: Path, completed: bool = False) -> None:
        super().__init__()
        self.task_id = task_id
        self.sandbox = sandbox
        self.completed = completed

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/state", self.state)
        app.router.add_get("/files/read", self.read)

    async def state(self, request: web.Request) -> web.Response:
        task = {"id": self.task_id, "state": "TASK_RUNNING"}
        other = {"id": "other", "directory": "/nonexistent", "tasks": [{"id": "other"}],
                 "queued_tasks": [], "completed_tasks": []}
        ours = {"id": self.task_id, "directory": str(self.sandbox), "tasks": [] if self.completed else [task],
                "queued_tasks": [], "completed_tasks": [task] if self.completed else []}
        fw = {"id": "fw-1", "executors": [other] if self.completed else [other, ours],
              "completed_executors": [ours] if self.completed else []}
        return web.json_response({"id": "agent-1", "frameworks": [fw], "completed_frameworks": []})

    async def read(self, request: web.Request) -> web.Response:
        path = Path(request.query["path"])
        if path.parent != self.sandbox or not path.exists():
            return web.Response(status=404, text=f"Failed to find '{path}'")
        data = path.read_bytes()
        offset = int(request.query.get("offset", "0"))
        if offset == -1:
            return web.json_response({"data": "", "offset": len(data)})
        length = int(request.query.get("length", str(len(data))))
        return web.json_response({"data": data[offset: offset + length].decode(), "offset": offset})


class FakeMaster(ThreadedServer):
    def __init__(self, task_id: str, agent_url: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.agent_address = agent_url.removeprefix("http://")

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/master/tasks", self.tasks)
        app.router.add_get("/master/slaves", self.slaves)

    async def tasks(self, request: web.Request) -> web.Response:
        tasks = [{"id": self.task_id, "slave_id": "agent-1", "framework_id": "fw-1", "state": "TASK_RUNNING"}]
        wanted = request.query.get("task_id")
        return web.json_response({"tasks": [t for t in tasks if wanted in (None, t["id"])]})

    async def slaves(self, request: web.Request) -> web.Response:
        return web.json_response({"slaves": [
            {"id": "agent-0", "pid": "slave(1)@127.0.0.1:1", "hostname": "elsewhere"},
            {"id": "agent-1", "pid": f"slave(1)@{self.agent_address}", "hostname": "127.0.0.1"},
        ]})


# --- running the real command ------------------------------------------------------------

_REPO = Path(__file__).resolve().parents[3]


def run_lichen(*args: str, env: dict[str, str] | None = None, input: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m lichen.cli.main ARGS` with LICHEN_* taken from `env` only."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LICHEN_")}
    return subprocess.run(
        [sys.executable, "-m", "lichen.cli.main", *args], check=False, cwd=_REPO,
        env={**base, **(env or {})},
        input=input, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def marathon() -> Iterator[FakeMarathon]:
    server = FakeMarathon()
    server.start()
    try:
        yield server
    finally:
        server.stop()
