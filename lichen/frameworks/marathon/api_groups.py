"""`/v2/groups`, `/v2/deployments` and `/v2/queue`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lichen.errors import NotFound
from lichen.frameworks.marathon import appdef, paths, planner
from lichen.frameworks.marathon.api_common import (
    body,
    deployment_result,
    flag,
    json_response,
    location,
    now,
    path_id,
    service_of,
)
from lichen.frameworks.marathon.model import DeploymentPlan

Json = dict[str, Any]


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/v2/groups", _groups)
    app.router.add_route("*", "/v2/groups/{tail:.*}", _groups)
    app.router.add_get("/v2/deployments", _list_deployments)
    app.router.add_delete("/v2/deployments/{id}", _cancel_deployment)
    app.router.add_get("/v2/queue", _list_queue)
    app.router.add_delete("/v2/queue/{tail:.*}", _reset_delay)


# ---------------------------------------------------------------- groups


def _group_embeds(request: web.Request) -> set[str] | None:
    values = set(request.query.getall("embed", []))
    wanted = {v for v in values if v in ("group.apps", "group.groups", "group.pods")}
    return wanted or None


async def _groups(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "")
    segments = [s for s in tail.split("/") if s]
    method = "GET" if request.method == "HEAD" else request.method
    if method == "GET":
        # Only reads know the versions suffix: marathon-python's rollback_group PUTs to
        # /v2/groups/{id}/versions/{v}, which Marathon takes as a group path.
        if segments and segments[-1] == "versions":
            return _group_versions(request, path_id("/".join(segments[:-1])))
        if len(segments) >= 2 and segments[-2] == "versions":
            return _group_version(request, path_id("/".join(segments[:-2])), segments[-1])
        return _get_group(request, path_id(tail))
    if method == "POST":
        return await _create_group(request, path_id(tail))
    if method == "PUT":
        return await _put_group(request, path_id(tail))
    if method == "DELETE":
        plan = await service_of(request).delete_group(path_id(tail), force=flag(request, "force"))
        return deployment_result(plan)
    raise web.HTTPMethodNotAllowed(request.method, ["DELETE", "GET", "POST", "PUT"])


def _require_group(request: web.Request, group_id: str) -> appdef.GroupDefinition:
    group = service_of(request).get_group(group_id)
    if group is None:
        raise NotFound(f"Group '{group_id}' does not exist")
    return group  # type: ignore[no-any-return]


def _get_group(request: web.Request, group_id: str) -> web.StreamResponse:
    group = _require_group(request, group_id)
    return json_response(appdef.group_json(group, _group_embeds(request)))


def _group_versions(request: web.Request, group_id: str) -> web.StreamResponse:
    _require_group(request, group_id)
    return json_response(service_of(request).group_versions(group_id))


def _group_version(request: web.Request, group_id: str, version: str) -> web.StreamResponse:
    group = _require_group(request, group_id)
    # The service keeps app versions, not whole-group snapshots: only the current one.
    if group.version != version:
        raise NotFound(f"Group '{group_id}' does not exist in version {version}")
    return json_response(appdef.group_json(group, _group_embeds(request)))


async def _create_group(request: web.Request, url_id: str) -> web.StreamResponse:
    data = await body(request)
    group_id = appdef.resolve_group_id(data, url_id)
    group = appdef.parse_group(data, group_id=group_id)
    plan = await service_of(request).create_group(group, force=flag(request, "force"))
    return deployment_result(
        plan, status=201, headers={"Location": location(request, "/v2/groups" + group_id)}
    )


async def _put_group(request: web.Request, url_id: str) -> web.StreamResponse:
    service = service_of(request)
    data = await body(request)
    force = flag(request, "force")
    if isinstance(data, dict) and data.get("scaleBy") is not None:
        factor = data["scaleBy"]
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
            raise appdef.ValidationFailed.at("/scaleBy", "error.expected.jsnumber", "Invalid JSON")
        current = _require_group(request, url_id)
        plan = await service.put_group(appdef.scale_group(current, float(factor)), force=force)
        return deployment_result(plan)
    version = appdef.is_rollback(data)
    if version is not None:
        current = _require_group(request, url_id)
        if current.version != version:
            raise NotFound(f"Group '{url_id}' does not exist in version {version}")
        return deployment_result(await service.put_group(current, force=force))
    group_id = appdef.resolve_group_id(data, url_id)
    group = appdef.parse_group(data, group_id=group_id)
    existing = service.get_group(group_id)
    if flag(request, "dryRun"):
        return json_response(_dry_run(existing, group))
    plan = await service.put_group(group, force=force)
    if existing is None:
        return deployment_result(
            plan, status=201, headers={"Location": location(request, "/v2/groups" + group_id)}
        )
    return deployment_result(plan)


def _spec(app: appdef.AppDefinition) -> planner.Spec:
    config = {k: v for k, v in app.raw.items() if k not in ("instances", "version", "versionInfo")}
    return planner.Spec(
        app_id=app.id,
        instances=app.instances,
        config=json.dumps(config, sort_keys=True),
        dependencies=tuple(app.dependencies),
    )


def _dry_run(existing: appdef.GroupDefinition | None, group: appdef.GroupDefinition) -> Json:
    """The steps a PUT would deploy, without deploying."""
    before = appdef.flatten_apps(existing) if existing is not None else {}
    after = appdef.flatten_apps(group)
    plan = planner.plan(
        {k: _spec(a) for k, a in before.items()},
        {k: _spec(a) for k, a in after.items()},
        plan_id="dry-run",
        version=appdef.timestamp(now()),
    )
    return {
        "steps": [
            {"actions": [{"action": a.action, "app": a.app} for a in step]} for step in plan.steps
        ]
    }


# ---------------------------------------------------------------- deployments


async def _list_deployments(request: web.Request) -> web.StreamResponse:
    plans: list[DeploymentPlan] = service_of(request).deployments()
    return json_response([appdef.deployment_json(p) for p in plans])


async def _cancel_deployment(request: web.Request) -> web.StreamResponse:
    deployment_id = request.match_info["id"]
    force = flag(request, "force")
    plan = await service_of(request).cancel_deployment(deployment_id, force=force)
    if plan is None:
        # Marathon answers a forced cancel with 202 and no body; clients rely on it.
        return web.Response(status=202)
    return deployment_result(plan)


# ---------------------------------------------------------------- queue


async def _list_queue(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    offers = "lastUnusedOffers" in request.query.getall("embed", [])
    items = []
    for entry in service.queue():
        app = service.get_app(entry.app_id)
        if app is None:
            continue
        item = appdef.queue_item_json(
            app, entry.count, entry.delay_left, entry.overdue, entry.since
        )
        if offers:
            item["lastUnusedOffers"] = []
        items.append(item)
    return json_response({"queue": items})


async def _reset_delay(request: web.Request) -> web.StreamResponse:
    segments = [s for s in request.match_info["tail"].split("/") if s]
    if len(segments) < 2 or segments[-1] != "delay":
        raise web.HTTPNotFound()
    app_id = paths.normalize_id("/" + "/".join(segments[:-1]))
    await service_of(request).reset_delay(app_id)
    return web.Response(status=204)
