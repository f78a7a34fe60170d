"""`/v2/apps` and `/v2/tasks`.

App ids may have any number of segments, so `/v2/apps/{tail}` is one route and the tail
is split here. Like Marathon (whose routes with a literal suffix win over the bare id),
a trailing `restart`, `tasks`, `tasks/<tid>`, `versions` or `versions/<v>` is an action
on the app before it, never part of an app id.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lichen.errors import InvalidRequest, NotFound
from lichen.frameworks.marathon import appdef, events, paths
from lichen.frameworks.marathon.api_common import (
    app_embeds,
    body,
    client_ip,
    deployment_result,
    flag,
    json_response,
    location,
    now,
    path_id,
    reject_scale_and_wipe,
    render_app,
    require_app,
    service_of,
)
from lichen.frameworks.marathon.model import Instance
from lichen.frameworks.marathon.service_api import MarathonServiceApi

Json = dict[str, Any]

_ALL_EMBEDS = {"tasks", "counts", "deployments", "lastTaskFailure"}


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/v2/apps", _apps_root)
    app.router.add_route("*", "/v2/apps/{tail:.*}", _apps_tail)
    app.router.add_get("/v2/tasks", _list_tasks)
    app.router.add_post("/v2/tasks/delete", _delete_tasks)


# ---------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class _Target:
    kind: str  # app, restart, tasks, task, versions, version, group_apps
    app_id: str
    arg: str = ""  # task id or version


def _resolve(tail: str) -> _Target:
    segments = [s for s in tail.split("/") if s]
    if not segments:
        return _Target("root", "/")

    def app_of(n: int) -> str:
        return paths.normalize_id("/" + "/".join(segments[:n]))

    if len(segments) >= 2 and segments[-1] == "restart":
        return _Target("restart", app_of(-1))
    if len(segments) >= 2 and segments[-1] == "tasks":
        return _Target("tasks", app_of(-1))
    if len(segments) >= 3 and segments[-2] == "tasks":
        return _Target("task", app_of(-2), segments[-1])
    if len(segments) >= 2 and segments[-1] == "versions":
        return _Target("versions", app_of(-1))
    if len(segments) >= 3 and segments[-2] == "versions":
        return _Target("version", app_of(-2), segments[-1])
    if segments[-1] == "*":
        return _Target("group_apps", app_of(-1))
    return _Target("app", path_id(tail))


_TargetHandler = Callable[[web.Request, "_Target"], Awaitable[web.StreamResponse]]
_HANDLERS: dict[tuple[str, str], _TargetHandler] = {}


def _handles(kind: str, *methods: str) -> Callable[[_TargetHandler], _TargetHandler]:
    def register(fn: _TargetHandler) -> _TargetHandler:
        for method in methods:
            _HANDLERS[(kind, method)] = fn
        return fn

    return register


async def _apps_root(request: web.Request) -> web.StreamResponse:
    return await _dispatch(request, _Target("root", "/"))


async def _apps_tail(request: web.Request) -> web.StreamResponse:
    return await _dispatch(request, _resolve(request.match_info["tail"]))


async def _dispatch(request: web.Request, target: _Target) -> web.StreamResponse:
    method = "GET" if request.method == "HEAD" else request.method
    handler = _HANDLERS.get((target.kind, method))
    if handler is None:
        allowed = sorted(m for (k, m) in _HANDLERS if k == target.kind)
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    response: web.StreamResponse = await handler(request, target)
    return response


# ---------------------------------------------------------------- filters


_SELECTOR = re.compile(
    r"^\s*(?P<key>[^\s!=,()]+)\s*"
    r"(?:(?P<op>==|!=|=)\s*(?P<value>[^,()]*?)"
    r"|\s(?P<set_op>in|notin)\s*\((?P<values>[^()]*)\))?\s*$"
)


def _split_selector(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


_LabelCheck = Callable[[dict[str, str]], bool]


def _label_check(part: str, selector: str) -> _LabelCheck:
    match = _SELECTOR.match(part)
    if match is None:
        raise InvalidRequest(f"Can not parse label selector {selector}")
    key: str = match["key"]
    if match["op"]:
        value = match["value"].strip()
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match["set_op"]:
        values = {v.strip() for v in match["values"].split(",")}
        if match["set_op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    return lambda labels: key in labels


def _label_filter(selector: str) -> _LabelCheck:
    """Marathon's label selector: `k`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`; `,` = AND."""
    checks = [_label_check(part, selector) for part in _split_selector(selector)]
    return lambda labels: all(check(labels) for check in checks)


def _filtered_apps(request: web.Request, service: MarathonServiceApi) -> list[appdef.AppDefinition]:
    apps: list[appdef.AppDefinition] = list(service.list_apps())
    cmd = request.query.get("cmd")
    if cmd:
        apps = [a for a in apps if a.cmd is not None and cmd in a.cmd]
    wanted_id = request.query.get("id")
    if wanted_id:
        apps = [a for a in apps if wanted_id.lower() in a.id.lower()]
    selector = request.query.get("label")
    if selector:
        matches = _label_filter(selector)
        apps = [a for a in apps if matches(a.labels)]
    return apps


# ---------------------------------------------------------------- /v2/apps


@_handles("root", "GET")
async def _list_apps(request: web.Request, _: _Target) -> web.StreamResponse:
    service = service_of(request)
    embeds = app_embeds(request) | {"counts", "deployments"}
    return json_response(
        {"apps": [render_app(service, a, embeds) for a in _filtered_apps(request, service)]}
    )


@_handles("root", "POST")
async def _create_app(request: web.Request, _: _Target) -> web.StreamResponse:
    service = service_of(request)
    app = appdef.parse_app(await body(request))
    stored, plan = await service.create_app(app, force=flag(request, "force"))
    rendered = appdef.app_json(
        stored,
        counts={"tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0, "tasksUnhealthy": 0},
        deployments=[plan.id],
        instances=[],
    )
    _post_event(request, appdef.app_json(stored))
    return json_response(
        rendered,
        status=201,
        headers={
            "Location": location(request, "/v2/apps" + stored.id),
            "Marathon-Deployment-Id": plan.id,
        },
    )


async def _update_many(request: web.Request, *, create: bool) -> web.StreamResponse:
    service = service_of(request)
    data = await body(request)
    if not isinstance(data, list):
        raise appdef.ValidationFailed.at("/", "error.expected.jsarray", "Invalid JSON")
    partial = flag(request, "partialUpdate", True)
    apps = []
    for i, item in enumerate(data):
        raw_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(raw_id, str):
            raise appdef.ValidationFailed.at(f"/({i})/id", "error.path.missing", "Invalid JSON")
        app_id = path_id(raw_id)
        current = service.get_app(app_id)
        if current is None and not create:
            raise NotFound(f"App '{app_id}' does not exist")
        apps.append(appdef.merge_app(current if partial else None, item, app_id=app_id))
    plan = await service.put_apps(apps, force=flag(request, "force"))
    for app in apps:
        stored = service.get_app(app.id)
        _post_event(request, appdef.app_json(stored if stored is not None else app))
    return deployment_result(plan)


@_handles("root", "PUT")
async def _put_apps(request: web.Request, _: _Target) -> web.StreamResponse:
    return await _update_many(request, create=True)


@_handles("root", "PATCH")
async def _patch_apps(request: web.Request, _: _Target) -> web.StreamResponse:
    return await _update_many(request, create=False)


@_handles("app", "GET")
async def _get_app(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    app = require_app(service, target.app_id)
    embeds = app_embeds(request) | _ALL_EMBEDS
    return json_response({"app": render_app(service, app, embeds)})


@_handles("group_apps", "GET")
async def _get_group_apps(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    embeds = app_embeds(request) | _ALL_EMBEDS
    apps = [a for a in service.list_apps() if paths.is_ancestor(target.app_id, a.id)]
    return json_response({"*": [render_app(service, a, embeds) for a in apps]})


@_handles("app", "PUT")
async def _put_app(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    data = await body(request)
    force = flag(request, "force")
    version = appdef.is_rollback(data)
    if version is not None:
        plan = await service.rollback_app(target.app_id, version, force=force)
        _post_stored(request, service, target.app_id)
        return deployment_result(plan)
    current = service.get_app(target.app_id)
    partial = flag(request, "partialUpdate", True)
    app = appdef.merge_app(current if partial else None, data, app_id=target.app_id)
    plan = await service.put_apps([app], force=force)
    _post_stored(request, service, target.app_id)
    if current is None:
        return deployment_result(
            plan, status=201, headers={"Location": location(request, "/v2/apps" + app.id)}
        )
    return deployment_result(plan)


@_handles("app", "PATCH")
async def _patch_app(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    data = await body(request)
    current = require_app(service, target.app_id)
    app = appdef.merge_app(current, data, app_id=target.app_id)
    plan = await service.put_apps([app], force=flag(request, "force"))
    _post_stored(request, service, target.app_id)
    return deployment_result(plan)


@_handles("app", "DELETE")
async def _delete_app(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    app = require_app(service, target.app_id)
    # Unlike every other endpoint, DELETE defaults to force=true in Marathon.
    plan = await service.delete_app(target.app_id, force=flag(request, "force", True))
    _post_event(request, appdef.app_json(app))
    return deployment_result(plan)


@_handles("restart", "POST")
async def _restart_app(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    require_app(service, target.app_id)
    plan = await service.restart_app(target.app_id, force=flag(request, "force"))
    _post_stored(request, service, target.app_id)
    return deployment_result(plan)


@_handles("versions", "GET")
async def _list_versions(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    require_app(service, target.app_id)
    return json_response({"versions": service.app_versions(target.app_id)})


@_handles("version", "GET")
async def _get_version(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    require_app(service, target.app_id)
    app = service.app_version(target.app_id, target.arg)
    if app is None:
        raise NotFound(f"App '{target.app_id}' does not exist in version {target.arg}")
    return json_response(appdef.app_json(app))


def _post_event(request: web.Request, app_json: Json) -> None:
    service_of(request).publish(
        events.api_post_event(client_ip(request), request.path, app_json, now=now())
    )


def _post_stored(request: web.Request, service: MarathonServiceApi, app_id: str) -> None:
    app = service.get_app(app_id)
    if app is not None:
        _post_event(request, appdef.app_json(app))


# ---------------------------------------------------------------- app tasks


def _wants_text(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/plain" in accept and "application/json" not in accept


def _tasks_text(service: MarathonServiceApi, apps: list[Any]) -> str:
    """The old haproxy bridge format: one line per app service port (running tasks only)."""
    lines = []
    for app in apps:
        safe = paths.safe_id(app.id)
        running = [i for i in service.instances(app.id) if i.state == "TASK_RUNNING" and i.host]
        service_ports: list[int] = list(app.service_ports)
        if not service_ports:
            hosts = "".join(f"{i.host}\t" for i in running)
            lines.append(f"{safe}\t \t{hosts}")
            continue
        for index, service_port in enumerate(service_ports):
            backends = "".join(
                f"{i.host}:{i.ports[index]}\t" for i in running if index < len(i.ports)
            )
            lines.append(f"{safe}\t{service_port}\t{backends}")
    return "".join(line + "\n" for line in lines)


@_handles("tasks", "GET")
async def _app_tasks(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    app = require_app(service, target.app_id)
    if _wants_text(request):
        return web.Response(text=_tasks_text(service, [app]), content_type="text/plain")
    return json_response(
        {"tasks": [appdef.task_json(i, app) for i in service.instances(app.id)]}
    )


def _task_list(service: MarathonServiceApi, killed: list[Instance]) -> list[Json]:
    return [appdef.task_json(i, service.get_app(i.app_id)) for i in killed]


@_handles("tasks", "DELETE")
async def _kill_app_tasks(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    scale, wipe = flag(request, "scale"), flag(request, "wipe")
    reject_scale_and_wipe(scale, wipe)
    require_app(service, target.app_id)
    host = request.query.get("host")
    victims = [i for i in service.instances(target.app_id) if host is None or i.host == host]
    killed, plan = await service.kill_instances(
        [i.task_id for i in victims], scale=scale, wipe=wipe, force=flag(request, "force")
    )
    if plan is not None:
        return deployment_result(plan)
    return json_response({"tasks": _task_list(service, killed)})


@_handles("task", "DELETE")
async def _kill_app_task(request: web.Request, target: _Target) -> web.StreamResponse:
    service = service_of(request)
    scale, wipe = flag(request, "scale"), flag(request, "wipe")
    reject_scale_and_wipe(scale, wipe)
    require_app(service, target.app_id)
    wanted = target.arg
    victim = next(
        (i for i in service.instances(target.app_id) if wanted in (i.task_id, i.instance_id)),
        None,
    )
    if victim is None:
        raise NotFound(f"Task '{wanted}' does not exist")
    killed, plan = await service.kill_instances(
        [victim.task_id], scale=scale, wipe=wipe, force=flag(request, "force")
    )
    if plan is not None:
        return deployment_result(plan)
    shown = killed[0] if killed else victim
    return json_response({"task": appdef.task_json(shown, service.get_app(shown.app_id))})


# ---------------------------------------------------------------- /v2/tasks

_STATUS_STATES = {
    "running": ("TASK_RUNNING",),
    "staging": ("TASK_STAGING", "TASK_STARTING"),
}


async def _list_tasks(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    apps = {a.id: a for a in service.list_apps()}
    if _wants_text(request):
        return web.Response(
            text=_tasks_text(service, list(apps.values())), content_type="text/plain"
        )
    statuses = [
        s.lower() for s in request.query.getall("status", []) + request.query.getall("status[]", [])
    ]
    states = {state for s in statuses for state in _STATUS_STATES.get(s, ())}
    instances = [i for i in service.instances() if not statuses or i.state in states]
    return json_response(
        {"tasks": [appdef.task_json(i, apps.get(i.app_id)) for i in instances]}
    )


async def _delete_tasks(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    scale, wipe = flag(request, "scale"), flag(request, "wipe")
    reject_scale_and_wipe(scale, wipe)
    data = await body(request)
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(t, str) for t in ids):
        raise InvalidRequest('Body must be {"ids": ["<task id>", ...]}')
    for task_id in ids:
        if paths.app_id_of_task(task_id) is None:
            raise InvalidRequest(f"Invalid task id '{task_id}'")
    wanted = set(ids)
    known = [
        i.task_id for i in service.instances() if i.task_id in wanted or i.instance_id in wanted
    ]
    killed, plan = await service.kill_instances(
        known, scale=scale, wipe=wipe, force=flag(request, "force")
    )
    if plan is not None:
        return deployment_result(plan)
    return json_response({"tasks": _task_list(service, killed)})
