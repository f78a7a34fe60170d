"""Helpers shared by the v2 API modules: the service handle, query flags, bodies, ids,
deployment results, app rendering with `embed`."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import orjson
from aiohttp import web

from lichen.errors import InvalidRequest, NotFound
from lichen.frameworks.marathon import appdef, paths
from lichen.frameworks.marathon.model import DeploymentPlan, Instance
from lichen.frameworks.marathon.service_api import MarathonServiceApi


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON reply, encoded with orjson: /v2/apps?embed=apps.tasks runs to megabytes."""
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")

SERVICE: web.AppKey[MarathonServiceApi] = web.AppKey("marathon_service", MarathonServiceApi)
HEARTBEAT: web.AppKey[float] = web.AppKey("marathon_heartbeat", float)

Json = dict[str, Any]


class InvalidJson(InvalidRequest):
    """A body that is not JSON: 400 `{"message": "Invalid JSON", "details": "<parser text>"}`."""

    def __init__(self, details: str) -> None:
        super().__init__("Invalid JSON")
        self.details = details


def service_of(request: web.Request) -> MarathonServiceApi:
    return request.app[SERVICE]


def now() -> float:
    return time.time()


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A query boolean. Clients send `True`/`False`: case-insensitive `true` is true."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() == "true"


async def body(request: web.Request) -> Any:
    """The request body as JSON (400 Invalid JSON otherwise)."""
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidJson(str(e)) from None
    except ValueError as e:
        raise InvalidJson(
            str(e) if raw.strip() else "No content to map due to end-of-input"
        ) from None


def path_id(raw: str) -> str:
    """An id from a URL: empty segments collapse, trailing `/` dropped, always absolute."""
    return paths.normalize_id("/" + raw)


def client_ip(request: web.Request) -> str:
    return request.remote or ""


def deployment_result(
    plan: DeploymentPlan, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """`{"deploymentId", "version"}` with the `Marathon-Deployment-Id` header."""
    return json_response(
        {"deploymentId": plan.id, "version": plan.version},
        status=status,
        headers={"Marathon-Deployment-Id": plan.id, **(headers or {})},
    )


def location(request: web.Request, path: str) -> str:
    return str(request.url.with_path(path).with_query(None))


# ---------------------------------------------------------------- embed


_EMBED_PREFIXES = ("group.apps.", "apps.", "app.")


def app_embeds(request: web.Request) -> set[str]:
    """The read-only parts an `embed` asks for: tasks, counts, deployments, readiness,
    lastTaskFailure, taskStats (unknown values ignored)."""
    wanted: set[str] = set()
    for value in request.query.getall("embed", []):
        for prefix in _EMBED_PREFIXES:
            if value.startswith(prefix):
                value = value[len(prefix) :]
                break
        if value == "tasks":
            wanted |= {"tasks", "deployments"}
        elif value == "failures":
            wanted |= {"tasks", "lastTaskFailure", "deployments"}
        elif value in ("counts", "deployments", "readiness", "lastTaskFailure", "taskStats"):
            wanted.add(value)
    return wanted


def _task_stats(instances: list[Instance], counts: dict[str, int], at: float) -> Json:
    if not instances:
        return {}
    lifetimes = [at - i.started_at for i in instances if i.started_at is not None]
    stats: Json = {
        "counts": {
            "staged": counts["tasksStaged"],
            "running": counts["tasksRunning"],
            "healthy": counts["tasksHealthy"],
            "unhealthy": counts["tasksUnhealthy"],
        }
    }
    if lifetimes:
        stats["lifeTime"] = {
            "averageSeconds": sum(lifetimes) / len(lifetimes),
            "medianSeconds": statistics.median(lifetimes),
        }
    return {"totalSummary": {"stats": stats}}


def _readiness(app: appdef.AppDefinition, instances: list[Instance]) -> list[Json]:
    if not app.readiness_checks:
        return []
    name = str(app.readiness_checks[0].get("name", "readinessCheck"))
    return [
        {"name": name, "taskId": i.task_id, "ready": i.ready}
        for i in instances
        if i.state == "TASK_RUNNING"
    ]


def render_app(service: MarathonServiceApi, app: appdef.AppDefinition, embeds: set[str]) -> Json:
    """The App object with counts and deployments always, the rest as `embeds` asks."""
    instances = service.instances(app.id)
    counts = appdef.counts(app, instances)
    return appdef.app_json(
        app,
        instances=instances if "tasks" in embeds else None,
        counts=counts,
        deployments=service.deployment_ids_for(app.id),
        last_task_failure=(
            service.last_task_failure(app.id) if "lastTaskFailure" in embeds else None
        ),
        task_stats=_task_stats(instances, counts, now()) if "taskStats" in embeds else None,
        readiness=_readiness(app, instances) if "readiness" in embeds else None,
    )


def require_app(service: MarathonServiceApi, app_id: str) -> appdef.AppDefinition:
    app = service.get_app(app_id)
    if app is None:
        raise NotFound(f"App '{app_id}' does not exist")
    return app  # type: ignore[no-any-return]


def reject_scale_and_wipe(scale: bool, wipe: bool) -> None:
    if scale and wipe:
        raise InvalidRequest("You cannot use scale and wipe at the same time.")
