"""The master's read endpoints: `/master/state` and friends, `/metrics/snapshot`,
`/metrics` (Prometheus), `/health`, `/version`, `/master/redirect` and the v1 operator
API (`POST /api/v1`, also answered at any `/api/v1/*` path but scheduler and executor,
as libprocess's longest-prefix routing does for Mesos)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lichen.api.server import open_stream
from lichen.errors import InvalidRequest
from lichen.master.master import Master
from lichen.master.registry import Agent, Framework, Task, is_terminal
from lichen.master.scheduler_api import read_call
from lichen.master.streams import EventStream
from lichen.resources import Resources

TASK_STATES = ("staging", "starting", "running", "killing", "finished", "failed", "killed",
               "lost", "error", "dropped", "unreachable", "gone", "gone_by_operator")


def task_json(task: Task) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id,
        "slave_id": task.agent_id,
        "agent_id": task.agent_id,
        "state": task.state,
        "resources": task.resources.to_state_json(),
        "role": task.role,
        "statuses": task.statuses,
    }
    for key in ("labels", "discovery", "container", "health_check"):
        if key in task.info:
            body[key] = task.info[key]
    if task.latest is not None and "healthy" in task.latest:
        body["healthy"] = task.latest["healthy"]
    return body


def _sum(resources: list[Resources]) -> Resources:
    total = Resources.empty()
    for r in resources:
        total = total + r
    return total


def framework_json(master: Master, fw: Framework) -> dict[str, Any]:
    info = fw.info
    used = _sum([t.resources for t in fw.tasks.values() if not is_terminal(t.state)])
    offered = _sum([o.resources for o in fw.offers.values()])
    body: dict[str, Any] = {
        "id": fw.framework_id,
        "name": info.get("name", ""),
        "user": info.get("user", ""),
        "hostname": info.get("hostname", ""),
        "webui_url": info.get("webui_url", ""),
        "active": fw.active,
        "connected": fw.connected,
        "recovered": fw.recovered,
        "failover_timeout": float(info.get("failover_timeout") or 0.0),
        "checkpoint": bool(info.get("checkpoint", False)),
        "capabilities": [c.get("type") for c in info.get("capabilities", []) if isinstance(c, dict)],
        "registered_time": fw.registered_time,
        "unregistered_time": fw.unregistered_time or 0.0,
        "used_resources": used.to_state_json(),
        "offered_resources": offered.to_state_json(),
        "resources": (used + offered).to_state_json(),
        "tasks": [task_json(t) for t in fw.tasks.values()],
        "unreachable_tasks": [task_json(t) for t in fw.unreachable_tasks.values()],
        "completed_tasks": [task_json(t) for t in fw.completed_tasks],
        "offers": [offer_state_json(master, o) for o in fw.offers.values()],
        "executors": [
            {**ex, "slave_id": aid} for (aid, _), ex in fw.executors.items()
        ],
    }
    if "MULTI_ROLE" in body["capabilities"]:
        body["roles"] = info.get("roles", [])
    else:
        body["role"] = info.get("role", "*")
    for key in ("principal", "labels"):
        if key in info:
            body[key] = info[key]
    if fw.reregistered_time is not None:
        body["reregistered_time"] = fw.reregistered_time
    return body


def offer_state_json(master: Master, offer: Any) -> dict[str, Any]:
    return {"id": offer.offer_id, "framework_id": offer.framework_id, "slave_id": offer.agent_id,
            "resources": offer.resources.to_state_json(), "allocation_info": {"role": offer.role}}


def agent_json(master: Master, agent: Agent) -> dict[str, Any]:
    used = agent.used()
    offered = _sum([o.resources for o in master.offers.values() if o.agent_id == agent.agent_id])
    reserved: dict[str, Any] = {}
    for role in sorted(agent.resources.roles() - {"*"}):
        reserved[role] = agent.resources.reserved(role).to_state_json()
    attributes: dict[str, Any] = {}
    for attr in agent.attributes:
        name = str(attr.get("name", ""))
        if attr.get("type") == "SCALAR":
            attributes[name] = attr.get("scalar", {}).get("value")
        elif attr.get("type") == "RANGES":
            rs = attr.get("ranges", {}).get("range", [])
            attributes[name] = "[" + ", ".join(f"{r['begin']}-{r['end']}" for r in rs) + "]"
        else:
            attributes[name] = attr.get("text", {}).get("value", "")
    body: dict[str, Any] = {
        "id": agent.agent_id,
        "hostname": agent.hostname,
        "port": agent.port,
        "pid": agent.pid,
        "attributes": attributes,
        "registered_time": agent.registered_time,
        "resources": agent.resources.to_state_json(),
        "used_resources": used.to_state_json(),
        "offered_resources": offered.to_state_json(),
        "reserved_resources": reserved,
        "unreserved_resources": agent.resources.unreserved().to_state_json(),
        "active": agent.reachable and agent.connected,
        "deactivated": not (agent.reachable and agent.connected),
        "version": agent.version or "1.11.0",
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    }
    if agent.reregistered_time is not None:
        body["reregistered_time"] = agent.reregistered_time
    return body


def state_json(master: Master) -> dict[str, Any]:
    reachable = [a for a in master.agents.values() if a.reachable]
    return {
        **master.version_json(),
        "git_sha": "",
        "start_time": master.start_time,
        "elected_time": master.elected_time,
        "id": master.master_id,
        "pid": f"master@{master.ip}:{master.port}",
        "hostname": master.hostname,
        "capabilities": ["AGENT_UPDATE"],
        "activated_slaves": sum(1 for a in reachable if a.connected),
        "deactivated_slaves": sum(1 for a in reachable if not a.connected),
        "unreachable_slaves": sum(1 for a in master.agents.values() if not a.reachable),
        "leader": f"master@{master.ip}:{master.port}",
        "leader_info": master.master_info(),
        "log_dir": "",
        "flags": flags_json(master),
        "slaves": [agent_json(master, a) for a in reachable],
        "recovered_slaves": [dict(v, id=k) for k, v in master.recovered_agents.items()],
        "frameworks": [framework_json(master, f) for f in master.frameworks.values()],
        "completed_frameworks": [framework_json(master, f) for f in master.completed_frameworks],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }


def flags_json(master: Master) -> dict[str, str]:
    f = master.flags
    return {
        "port": str(master.port),
        "hostname": master.hostname,
        "work_dir": str(f.work_dir),
        "allocation_interval": f"{f.allocation_interval}secs",
        "agent_ping_timeout": f"{f.agent_ping_timeout}secs",
        "max_agent_ping_timeouts": str(f.max_agent_ping_timeouts),
        "max_completed_frameworks": str(f.max_completed_frameworks),
        "max_completed_tasks_per_framework": str(f.max_completed_tasks_per_framework),
        "offer_timeout": f"{f.offer_timeout}secs" if f.offer_timeout else "",
        "weights": ",".join(f"{k}={v}" for k, v in f.weights.items()),
    }


def metrics_json(master: Master) -> dict[str, float]:
    m: dict[str, float] = {}
    now = master.clock.now()
    m["master/elected"] = 1.0
    m["master/uptime_secs"] = now - master.start_time
    total = _sum([a.resources for a in master.agents.values() if a.reachable])
    used = _sum([a.used() for a in master.agents.values() if a.reachable])
    for r in ("cpus", "mem", "disk", "gpus"):
        t, u = total.scalar(r), used.scalar(r)
        m[f"master/{r}_total"] = t
        m[f"master/{r}_used"] = u
        m[f"master/{r}_percent"] = u / t if t else 0.0
    reachable = [a for a in master.agents.values() if a.reachable]
    m["master/slaves_active"] = sum(1 for a in reachable if a.connected)
    m["master/slaves_connected"] = sum(1 for a in reachable if a.connected)
    m["master/slaves_disconnected"] = sum(1 for a in reachable if not a.connected)
    m["master/slaves_inactive"] = sum(1 for a in reachable if not a.connected)
    m["master/slaves_unreachable"] = sum(1 for a in master.agents.values() if not a.reachable)
    fws = list(master.frameworks.values())
    m["master/frameworks_active"] = sum(1 for f in fws if f.active)
    m["master/frameworks_inactive"] = sum(1 for f in fws if not f.active)
    m["master/frameworks_connected"] = sum(1 for f in fws if f.connected)
    m["master/frameworks_disconnected"] = sum(1 for f in fws if not f.connected)
    m["master/outstanding_offers"] = len(master.offers)
    live: dict[str, int] = {}
    for fw in fws:
        for task in [*fw.tasks.values(), *fw.unreachable_tasks.values()]:
            live[task.state] = live.get(task.state, 0) + 1
    for s in ("staging", "starting", "running", "killing", "unreachable"):
        m[f"master/tasks_{s}"] = live.get(f"TASK_{s.upper()}", 0)
    for s in ("finished", "failed", "killed", "lost", "error", "dropped", "gone", "gone_by_operator"):
        m[f"master/tasks_{s}"] = master.counters.get(f"master/tasks_{s}", 0)
    m["master/invalid_operations"] = master.counters.get("master/invalid_operations", 0)
    return m


def setup(app: web.Application, master: Master) -> None:
    async def state(request: web.Request) -> web.Response:
        return web.json_response(state_json(master))

    async def state_summary(request: web.Request) -> web.Response:
        s = state_json(master)
        slaves = []
        for a in s["slaves"]:
            counts: dict[str, int] = {}
            for fw in master.frameworks.values():
                for t in fw.tasks.values():
                    if t.agent_id == a["id"]:
                        counts[t.state] = counts.get(t.state, 0) + 1
            slaves.append({**{k: a[k] for k in ("id", "pid", "hostname", "registered_time", "resources",
                                                   "used_resources", "attributes", "active", "version")},
                           **{k[5:]: v for k, v in counts.items()},
                           "framework_ids": sorted({t.framework_id for fw in master.frameworks.values()
                                                    for t in fw.tasks.values() if t.agent_id == a["id"]})})
        frameworks = [{k: f[k] for k in ("id", "name", "pid", "used_resources", "offered_resources",
                                          "capabilities", "hostname", "webui_url", "active") if k in f}
                      for f in s["frameworks"]]
        return web.json_response({"hostname": s["hostname"], "cluster": "", "slaves": slaves,
                                  "frameworks": frameworks})

    async def slaves(request: web.Request) -> web.Response:
        s = state_json(master)
        sid = request.query.get("slave_id")
        agents = [a for a in s["slaves"] if sid is None or a["id"] == sid]
        return web.json_response({"slaves": agents, "recovered_slaves": s["recovered_slaves"]})

    async def frameworks(request: web.Request) -> web.Response:
        fid = request.query.get("framework_id")
        fws = [framework_json(master, f) for f in master.frameworks.values() if fid in (None, f.framework_id)]
        done = [framework_json(master, f) for f in master.completed_frameworks if fid in (None, f.framework_id)]
        return web.json_response({"frameworks": fws, "completed_frameworks": done, "unregistered_frameworks": []})

    async def tasks(request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "100"))
            offset = int(q.get("offset", "0"))
        except ValueError:
            raise InvalidRequest("'limit' and 'offset' must be integers") from None
        if limit < 0 or offset < 0:
            raise InvalidRequest("'limit' and 'offset' must not be negative")
        order = q.get("order", "des")
        if order not in ("asc", "des"):
            raise InvalidRequest("'order' must be 'asc' or 'des'")
        out: list[Task] = []
        for fw in [*master.frameworks.values(), *master.completed_frameworks]:
            if q.get("framework_id") not in (None, fw.framework_id):
                continue
            out += [*fw.tasks.values(), *fw.unreachable_tasks.values(), *fw.completed_tasks]
        if "task_id" in q:
            out = [t for t in out if t.task_id == q["task_id"]]
        out.sort(key=lambda t: t.statuses[0]["timestamp"] if t.statuses else 0.0, reverse=(order == "des"))
        return web.json_response({"tasks": [task_json(t) for t in out[offset: offset + limit]]})

    async def metrics_snapshot(request: web.Request) -> web.Response:
        return web.json_response(metrics_json(master))

    async def prometheus(request: web.Request) -> web.Response:
        registry = CollectorRegistry()
        for name, value in metrics_json(master).items():
            g = Gauge("mesos_" + name.replace("/", "_"), name, registry=registry)
            g.set(value)
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(request: web.Request) -> web.Response:
        return web.json_response(master.version_json())

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"//{master.hostname}:{master.port}"})

    async def flags(request: web.Request) -> web.Response:
        return web.json_response({"flags": flags_json(master)})

    async def operator(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        if tail in ("scheduler", "executor"):
            raise web.HTTPNotFound()
        kind, call = await read_call(request)
        if kind == "SUBSCRIBE":
            return await _operator_subscribe(request, master)
        return web.json_response(operator_call(master, kind, call))

    for path in ("/master/state", "/state", "/state.json", "/master/state.json"):
        app.router.add_get(path, state)
    for path in ("/master/state-summary", "/state-summary"):
        app.router.add_get(path, state_summary)
    for path in ("/master/slaves", "/slaves", "/master/slaves.json"):
        app.router.add_get(path, slaves)
    for path in ("/master/frameworks", "/frameworks", "/master/frameworks.json"):
        app.router.add_get(path, frameworks)
    for path in ("/master/tasks", "/tasks", "/master/tasks.json"):
        app.router.add_get(path, tasks)
    for path in ("/metrics/snapshot", "/master/metrics/snapshot"):
        app.router.add_get(path, metrics_snapshot)
    app.router.add_get("/metrics", prometheus)
    for path in ("/health", "/master/health"):
        app.router.add_get(path, health)
    app.router.add_get("/version", version)
    for path in ("/master/redirect", "/redirect"):
        app.router.add_get(path, redirect)
    for path in ("/master/flags", "/flags"):
        app.router.add_get(path, flags)
    app.router.add_route("*", "/api/v1", operator)
    app.router.add_route("*", "/api/v1/{tail:(?!scheduler$|executor$).*}", operator)


def _get_agents(master: Master) -> dict[str, Any]:
    return {
        "agents": [master._agent_op_json(a) for a in master.agents.values() if a.reachable],
        "recovered_agents": [{"id": {"value": k}, **{kk: vv for kk, vv in v.items() if kk != "id"}}
                             for k, v in master.recovered_agents.items()],
    }


def _get_frameworks(master: Master) -> dict[str, Any]:
    return {
        "frameworks": [master._framework_op_json(f) for f in master.frameworks.values()],
        "completed_frameworks": [master._framework_op_json(f) for f in master.completed_frameworks],
    }


def _get_tasks(master: Master) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    unreachable: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    for fw in [*master.frameworks.values(), *master.completed_frameworks]:
        tasks += [master._task_op_json(t) for t in fw.tasks.values()]
        unreachable += [master._task_op_json(t) for t in fw.unreachable_tasks.values()]
        completed += [master._task_op_json(t) for t in fw.completed_tasks]
    return {"tasks": tasks, "unreachable_tasks": unreachable, "completed_tasks": completed}


def _get_executors(master: Master) -> dict[str, Any]:
    return {"executors": [{"executor_info": ex, "agent_id": {"value": aid}}
                          for fw in master.frameworks.values() for (aid, _), ex in fw.executors.items()]}


def _get_state(master: Master) -> dict[str, Any]:
    return {"get_tasks": _get_tasks(master), "get_executors": _get_executors(master),
            "get_frameworks": _get_frameworks(master), "get_agents": _get_agents(master)}


def operator_call(master: Master, kind: str, call: dict[str, Any]) -> dict[str, Any]:
    if kind == "GET_HEALTH":
        return {"type": kind, "get_health": {"healthy": True}}
    if kind == "GET_VERSION":
        return {"type": kind, "get_version": {"version_info": master.version_json()}}
    if kind == "GET_STATE":
        return {"type": kind, "get_state": _get_state(master)}
    if kind == "GET_AGENTS":
        return {"type": kind, "get_agents": _get_agents(master)}
    if kind == "GET_FRAMEWORKS":
        return {"type": kind, "get_frameworks": _get_frameworks(master)}
    if kind == "GET_TASKS":
        return {"type": kind, "get_tasks": _get_tasks(master)}
    if kind == "GET_EXECUTORS":
        return {"type": kind, "get_executors": _get_executors(master)}
    if kind == "GET_MASTER":
        return {"type": kind, "get_master": {"master_info": master.master_info(),
                                             "start_time": master.start_time,
                                             "elected_time": master.elected_time}}
    if kind == "GET_FLAGS":
        return {"type": kind, "get_flags": {"flags": [{"name": k, "value": v}
                                                      for k, v in flags_json(master).items()]}}
    if kind == "GET_METRICS":
        return {"type": kind, "get_metrics": {"metrics": [{"name": k, "value": v}
                                                          for k, v in metrics_json(master).items()]}}
    if kind == "GET_ROLES":
        roles = sorted({r for f in master.frameworks.values() for r in f.roles} | set(master.flags.weights))
        return {"type": kind, "get_roles": {"roles": [
            {"name": r, "weight": master.flags.weights.get(r, 1.0)} for r in roles]}}
    raise InvalidRequest(f"Unsupported operator call type '{kind}'")


async def _operator_subscribe(request: web.Request, master: Master) -> web.StreamResponse:
    stream = EventStream()
    stream.send({"type": "SUBSCRIBED", "subscribed": {
        "get_state": _get_state(master), "heartbeat_interval_seconds": float(master.flags.heartbeat_interval)}})
    master.operator_streams.add(stream)
    resp = await open_stream(request)
    try:
        await stream.pump(resp)
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        master.operator_streams.discard(stream)
        stream.close()
    return resp
