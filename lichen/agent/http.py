"""The agent's HTTP endpoints: `/state`, `/files/*`, metrics, version, health, the
operator API (`/api/v1`) and the executor API (`/api/v1/executor`, in executor_api.py).

Everything here reads the agent's records and changes nothing, except the executor API.
"""

from __future__ import annotations

import dataclasses
import getpass
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import lichen
from lichen import MESOS_VERSION
from lichen.agent import executor_api
from lichen.agent.detect import attributes_state_json
from lichen.agent.files import Sandboxes
from lichen.api.server import make_app, read_json
from lichen.errors import InvalidRequest, MethodNotAllowed

if TYPE_CHECKING:
    from lichen.agent.agent import Agent, ExecutorRecord, FrameworkRecord, TaskRecord

_BUILD_TIME = time.time()
_BUILD_USER = getpass.getuser() if hasattr(getpass, "getuser") else "lichen"


def version_json() -> dict[str, Any]:
    built = datetime.fromtimestamp(_BUILD_TIME, tz=UTC)
    return {
        "version": MESOS_VERSION,
        "lichen_version": lichen.__version__,
        "build_date": built.strftime("%Y-%m-%d %H:%M:%S"),
        "build_time": float(int(_BUILD_TIME)),
        "build_user": _BUILD_USER,
    }


# -- /state --------------------------------------------------------------------------------


def task_state_json(agent: Agent, task: TaskRecord, ex: ExecutorRecord) -> dict[str, Any]:
    from lichen.agent.agent import _resources

    out: dict[str, Any] = {
        "id": task.task_id,
        "name": task.info.get("name", ""),
        "framework_id": task.framework_id,
        "executor_id": "" if ex.kind == "command" else task.executor_id,
        "slave_id": agent.agent_id or "",
        "state": task.state,
        "resources": _resources(task.info.get("resources")).to_state_json(),
        "statuses": [{"state": s["state"], "timestamp": s["timestamp"]} for s in task.statuses],
    }
    for key in ("labels", "discovery", "container"):
        if key in task.info:
            out[key] = task.info[key]
    if task.healthy is not None:
        out["statuses"] = [dict(s, healthy=task.healthy) for s in out["statuses"]]
    return out


def executor_state_json(agent: Agent, ex: ExecutorRecord) -> dict[str, Any]:
    from lichen.agent.agent import _resources

    queued = {t for g in ex.pending_launches for t in g["tasks"]}
    tasks = [t for t in ex.tasks.values() if t.task_id not in queued]
    resources = _resources(ex.info.get("resources")) if ex.kind != "command" else None
    total = resources if resources is not None else _resources([])
    for t in ex.tasks.values():
        if not t.terminal:
            total = total + _resources(t.info.get("resources"))
    return {
        "id": ex.executor_id,
        "name": ex.info.get("name", ""),
        "source": ex.info.get("source", ""),
        "container": ex.container_id,
        "directory": str(ex.sandbox),
        "resources": total.to_state_json(),
        "labels": (ex.info.get("labels") or {}).get("labels", []),
        "type": "CUSTOM" if ex.kind == "custom" else "DEFAULT",
        "tasks": [task_state_json(agent, t, ex) for t in tasks],
        "queued_tasks": [task_state_json(agent, ex.tasks[t], ex) for t in sorted(queued) if t in ex.tasks],
        "completed_tasks": [task_state_json(agent, t, ex) for t in ex.completed_tasks],
    }


def framework_state_json(agent: Agent, fw: FrameworkRecord) -> dict[str, Any]:
    info = fw.info
    out: dict[str, Any] = {
        "id": fw.framework_id,
        "name": info.get("name", ""),
        "user": info.get("user", ""),
        "checkpoint": bool(info.get("checkpoint", False)),
        "failover_timeout": info.get("failover_timeout", 0),
        "hostname": info.get("hostname", ""),
        "role": info.get("role", "*"),
        "capabilities": [c.get("type") for c in info.get("capabilities", []) or []],
        "executors": [executor_state_json(agent, e) for e in fw.executors.values()],
        "completed_executors": [executor_state_json(agent, e) for e in fw.completed_executors],
    }
    if "roles" in info:
        out["roles"] = info["roles"]
    if "principal" in info:
        out["principal"] = info["principal"]
    return out


def state_json(agent: Agent) -> dict[str, Any]:
    v = version_json()
    return {
        "version": v["version"],
        "build_date": v["build_date"],
        "build_time": v["build_time"],
        "build_user": v["build_user"],
        "start_time": agent.start_time,
        "id": agent.agent_id or "",
        "pid": agent.pid(),
        "hostname": agent.hostname,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT", "TASK_KILLING_STATE"],
        "resources": agent.resources.to_state_json(),
        "reserved_resources": {},
        "unreserved_resources": agent.resources.to_state_json(),
        "attributes": attributes_state_json(agent.attributes),
        "master_hostname": agent.master_hostname or "",
        "flags": flags_json(agent),
        "frameworks": [framework_state_json(agent, f) for f in agent.frameworks.values()],
        "completed_frameworks": [framework_state_json(agent, f) for f in agent.completed_frameworks],
    }


def flags_json(agent: Agent) -> dict[str, str]:
    out = {}
    for f in dataclasses.fields(agent.flags):
        value = getattr(agent.flags, f.name)
        out[f.name] = "" if value is None else str(value)
    return out


# -- metrics -------------------------------------------------------------------------------


def metrics_snapshot(agent: Agent) -> dict[str, float]:
    used = agent.used_resources()
    out: dict[str, float] = {
        "slave/registered": 1.0 if agent.registered else 0.0,
        "slave/uptime_secs": time.time() - agent.start_time,
    }
    for name in ("cpus", "mem", "disk", "gpus"):
        total = agent.resources.scalar(name)
        out[f"slave/{name}_total"] = total
        out[f"slave/{name}_used"] = used.scalar(name)
        out[f"slave/{name}_percent"] = used.scalar(name) / total if total else 0.0
    live = {"staging": 0, "starting": 0, "running": 0, "killing": 0}
    executors = 0
    for fw in agent.frameworks.values():
        for ex in fw.executors.values():
            if not ex.ended:
                executors += 1
            for t in ex.tasks.values():
                key = t.state.removeprefix("TASK_").lower()
                if key in live:
                    live[key] += 1
    for key, n in live.items():
        out[f"slave/tasks_{key}"] = float(n)
    for key, n in agent.counters.items():
        out[f"slave/tasks_{key}"] = float(n)
    out["slave/executors_running"] = float(executors)
    out["slave/frameworks_active"] = float(len(agent.frameworks))
    return out


class _SnapshotCollector(Collector):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in sorted(metrics_snapshot(self.agent).items()):
            metric = "lichen_agent_" + name.replace("/", "_").removeprefix("slave_")
            yield GaugeMetricFamily(metric, f"Mesos agent metric {name}", value=value)


# -- operator API --------------------------------------------------------------------------


def _v1_task(agent: Agent, task: TaskRecord) -> dict[str, Any]:
    out = agent.task_json(task)
    out.pop("task_info", None)
    return out


def _get_tasks(agent: Agent) -> dict[str, Any]:
    tasks, completed = [], []
    for fw in agent.frameworks.values():
        for ex in [*fw.executors.values(), *fw.completed_executors]:
            tasks += [_v1_task(agent, t) for t in ex.tasks.values()]
            completed += [_v1_task(agent, t) for t in ex.completed_tasks]
    return {"tasks": tasks, "completed_tasks": completed, "launched_tasks": [], "queued_tasks": []}


def _get_executors(agent: Agent) -> dict[str, Any]:
    live, done = [], []
    for fw in agent.frameworks.values():
        live += [{"executor_info": e.info} for e in fw.executors.values()]
        done += [{"executor_info": e.info} for e in fw.completed_executors]
    return {"executors": live, "completed_executors": done}


def _get_frameworks(agent: Agent) -> dict[str, Any]:
    return {
        "frameworks": [{"framework_info": f.info} for f in agent.frameworks.values()],
        "completed_frameworks": [{"framework_info": f.info} for f in agent.completed_frameworks],
    }


def operator_call(agent: Agent, body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise InvalidRequest("Expecting 'type' to be present")
    kind = body["type"]
    if kind == "GET_HEALTH":
        return {"type": kind, "get_health": {"healthy": True}}
    if kind == "GET_VERSION":
        v = version_json()
        return {"type": kind, "get_version": {"version_info": {k: v[k] for k in ("version", "build_date", "build_time", "build_user")}}}
    if kind == "GET_FLAGS":
        return {"type": kind, "get_flags": {"flags": [{"name": k, "value": v} for k, v in flags_json(agent).items()]}}
    if kind == "GET_METRICS":
        return {"type": kind, "get_metrics": {"metrics": [{"name": k, "value": v} for k, v in metrics_snapshot(agent).items()]}}
    if kind == "GET_AGENT":
        return {"type": kind, "get_agent": {"agent_info": agent.agent_info()}}
    if kind == "GET_TASKS":
        return {"type": kind, "get_tasks": _get_tasks(agent)}
    if kind == "GET_EXECUTORS":
        return {"type": kind, "get_executors": _get_executors(agent)}
    if kind == "GET_FRAMEWORKS":
        return {"type": kind, "get_frameworks": _get_frameworks(agent)}
    if kind == "GET_STATE":
        return {
            "type": kind,
            "get_state": {
                "get_tasks": _get_tasks(agent),
                "get_executors": _get_executors(agent),
                "get_frameworks": _get_frameworks(agent),
            },
        }
    raise InvalidRequest(f"Unsupported operator call type '{kind}'")


# -- the app -------------------------------------------------------------------------------


def build_app(agent: Agent) -> web.Application:
    app = make_app()
    sandboxes = Sandboxes(agent.work_dir / "slaves")
    registry = CollectorRegistry()
    registry.register(_SnapshotCollector(agent))

    async def state(request: web.Request) -> web.Response:
        return web.json_response(state_json(agent))

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(request: web.Request) -> web.Response:
        return web.json_response(version_json())

    async def snapshot(request: web.Request) -> web.Response:
        return web.json_response(metrics_snapshot(agent))

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")

    async def browse(request: web.Request) -> web.Response:
        return web.json_response(sandboxes.browse(request.query.get("path")))

    async def read(request: web.Request) -> web.Response:
        q = request.query
        return web.json_response(sandboxes.read(q.get("path"), q.get("offset"), q.get("length")))

    async def download(request: web.Request) -> web.StreamResponse:
        path = sandboxes.download(request.query.get("path"))
        return web.FileResponse(
            path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
        )

    async def executor(request: web.Request) -> web.StreamResponse:
        return await executor_api.handle(agent, request)

    async def operator(request: web.Request) -> web.Response:
        executor_api.check_json_post(request)
        reply = operator_call(agent, await read_json(request))
        return web.json_response(reply)

    async def not_allowed(request: web.Request) -> web.Response:
        raise MethodNotAllowed(f"Expecting 'GET', received '{request.method}'")

    gets = {
        "/state": state,
        "/state.json": state,
        "/health": health,
        "/version": version,
        "/metrics/snapshot": snapshot,
        "/metrics": prometheus,
        "/files/browse": browse,
        "/files/browse.json": browse,
        "/files/read": read,
        "/files/read.json": read,
        "/files/download": download,
        "/files/download.json": download,
    }
    for path, handler in gets.items():
        app.router.add_get(path, handler)
        if not path.startswith("/files/") and not path.startswith("/metrics") and path != "/version":
            app.router.add_get("/slave(1)" + path, handler)
        app.router.add_route("POST", path, not_allowed)
    for prefix in ("", "/slave(1)"):
        app.router.add_route("*", prefix + "/api/v1/executor", executor)
        app.router.add_route("*", prefix + "/api/v1", operator)
        app.router.add_route("*", prefix + "/api/v1/operator", operator)
    return app
