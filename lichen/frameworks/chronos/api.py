"""Chronos's REST API over a `ChronosServiceApi`.

Every route is served under both `/v1/scheduler` (Chronos 3.x, chronos-python's default)
and `/scheduler` (2.x, chronos-python with `scheduler_api_version=None`); `/ping`,
`/metrics` and `/leader` have no prefix. Handlers parse with `job.parse_job`, call the
service, render with `job.job_json`; they never build error bodies: they raise
`LichenError`s and `chronos_errors` renders them as Chronos does,
`{"status": "<reason phrase>", "message": "<text>"}`.

Two rules of the original every handler keeps: a success with nothing to say is a 204
with an empty body, and a 200 always has a body (chronos-python fails on an empty 200).
"""

from __future__ import annotations

import http
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lichen.errors import InvalidRequest, LichenError
from lichen.frameworks.chronos import graph, metrics
from lichen.frameworks.chronos import job as jobs
from lichen.frameworks.chronos.service_api import ChronosServiceApi, RunRecord

__all__ = ["PREFIXES", "chronos_errors", "setup"]

log = logging.getLogger(__name__)

PREFIXES = ("/v1/scheduler", "/scheduler")

SERVICE: web.AppKey[ChronosServiceApi] = web.AppKey("chronos_service", ChronosServiceApi)
DEFAULTS: web.AppKey[Any] = web.AppKey("chronos_defaults", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SEARCH_LIMIT = 10   # Chronos's default page size for /jobs/search


def setup(app: web.Application, service: ChronosServiceApi, *, defaults: Any) -> None:
    """Serve the Chronos API for `service` on `app` (before the app starts). `defaults`
    (a `job.JobDefaults`) fills the resources a posted job leaves out."""
    app[SERVICE] = service
    app[DEFAULTS] = defaults
    app.middlewares.append(chronos_errors)
    r = app.router
    for p in PREFIXES:
        r.add_get(f"{p}/jobs", _list_jobs)
        r.add_get(f"{p}/jobs/search", _search_jobs)
        r.add_get(f"{p}/jobs/summary", _summary)
        r.add_get(f"{p}/job/stat/{{name}}", _job_stat)
        r.add_put(f"{p}/job/success/{{name}}", _mark_success)
        r.add_post(f"{p}/job/{{name}}/task/{{task_id:.+}}/progress", _progress)
        r.add_get(f"{p}/job/{{name}}", _get_job)
        r.add_put(f"{p}/job/{{name}}", _run_job)
        r.add_delete(f"{p}/job/{{name}}", _delete_job)
        for kind, handler in (("iso8601", _put_scheduled), ("dependency", _put_dependent)):
            r.add_post(f"{p}/{kind}", handler)
            r.add_put(f"{p}/{kind}", handler)
        r.add_delete(f"{p}/task/kill/{{name}}", _kill_tasks)
        r.add_delete(f"{p}/task/all", _purge_tasks)
        r.add_put(f"{p}/task/{{task_id:.+}}", _task_callback)
        r.add_get(f"{p}/stats/{{pct}}", _stats)
        r.add_get(f"{p}/graph/dot", _graph_dot)
        r.add_get(f"{p}/graph/csv", _graph_csv)
        r.add_get(f"{p}/leader", _leader)
    r.add_get("/leader", _leader)
    r.add_get("/ping", _ping)
    r.add_get("/metrics", _metrics)


# ==================================================================== errors


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    phrase = http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else "Error"
    return _json({"status": phrase, "message": message}, status=status, headers=headers)


@web.middleware
async def chronos_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LichenError as e:
        return _error(e.status, e.message)
    except web.HTTPNotFound:
        return _error(404, f"No resource matches {request.method} {request.path}")
    except web.HTTPMethodNotAllowed as e:
        return _error(405, f"{request.method} is not allowed on {request.path}",
                      headers={"Allow": e.headers.get("Allow", "")})
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "Request body too large")
    except web.HTTPException:
        raise
    except ConnectionError:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return _error(500, "Internal error")


# ==================================================================== helpers


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def _text(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/plain")


def _no_content() -> web.Response:
    return web.Response(status=204)


def _service(request: web.Request) -> ChronosServiceApi:
    return request.app[SERVICE]


def _require(service: ChronosServiceApi, name: str) -> Any:
    job = service.get_job(name)
    if job is None:
        # Chronos checks names with require(): an unknown job is a 400, not a 404.
        raise InvalidRequest(f"Job '{name}' not found", field="name")
    return job


async def _body(request: web.Request) -> Any:
    """The body as JSON whatever the Content-Type (Chronos reads it regardless)."""
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequest("Request body is empty: expected a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"Request body is not UTF-8: {e}") from None
    except ValueError as e:
        raise InvalidRequest(f"Request body is not valid JSON: {e}") from None


async def _object(request: web.Request) -> dict[str, Any]:
    data = await _body(request)
    if not isinstance(data, dict):
        raise InvalidRequest(f"Expected a JSON object, got {type(data).__name__}")
    return data


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer, got '{raw}'", field=name) from None
    if value < 0:
        raise InvalidRequest(f"'{name}' must not be negative, got {value}", field=name)
    return value


def _stat_time(epoch: float | None) -> str:
    if not epoch:
        return "N/A"
    return time.strftime("%m/%d/%y %H:%M:%S", time.gmtime(epoch))


def _duration(seconds: float) -> str:
    """Like Chronos's Joda period format: days and hours only when non-zero, then
    minutes and seconds always (`0m5s`, `1h2m0s`)."""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{days}d" if days else ""
    out += f"{hours}h" if hours else ""
    return out + f"{minutes}m{secs}s"


_STAT_STATUS = {"success": "Success", "failure": "Fail", "running": "Running", "killed": "Killed"}


def _task_stat(run: RunRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "taskId": run.task_id,
        "jobName": run.job_name,
        "slaveId": run.agent_id,
        "startTime": _stat_time(run.start),
        "endTime": _stat_time(run.end),
    }
    if run.end is not None and run.start:
        out["duration"] = _duration(max(0.0, run.end - run.start))
    out["status"] = _STAT_STATUS.get(run.status, run.status)
    return out


# ==================================================================== jobs


async def _list_jobs(request: web.Request) -> web.StreamResponse:
    return _json([jobs.job_json(j) for j in _service(request).jobs()])


def _search_match(job: Any, name: str | None, command: str | None, anything: str | None) -> bool:
    job_name = job.name.lower()
    job_command = (job.command or "").lower()
    if (name is None or name.lower() in job_name) and (command is None or command.lower() in job_command):
        # As in Chronos, a search by `any` alone matches every job here.
        return True
    if anything is not None:
        needle = anything.lower()
        return needle in job_name or needle in job_command
    return False


async def _search_jobs(request: web.Request) -> web.StreamResponse:
    q = request.query
    limit = _int_query(request, "limit", SEARCH_LIMIT)
    offset = _int_query(request, "offset", 0)
    found = [j for j in _service(request).jobs()
             if _search_match(j, q.get("name"), q.get("command"), q.get("any"))]
    return _json([jobs.job_json(j) for j in found[offset:offset + limit]])


async def _summary(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    out = []
    for job in service.jobs():
        parents = list(job.parents or ())
        out.append({
            "name": job.name,
            "status": service.last_status(job.name),
            "state": service.job_state(job.name),
            "schedule": "" if parents else (job.schedule or ""),
            "parents": parents,
            "disabled": bool(job.disabled),
        })
    return _json({"jobs": out})


async def _get_job(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    return _json(jobs.job_json(_require(service, request.match_info["name"])))


async def _put_job(request: web.Request, kind: jobs.JobKind) -> web.StreamResponse:
    """POST/PUT P/iso8601 and P/dependency: create or replace by name (2.x used PUT,
    3.x only POST: both are served)."""
    data = await _object(request)
    job = jobs.parse_job(data, now=time.time(), defaults=request.app[DEFAULTS], kind=kind)
    await _service(request).put_job(job)
    return _no_content()


async def _put_scheduled(request: web.Request) -> web.StreamResponse:
    return await _put_job(request, "iso8601")


async def _put_dependent(request: web.Request) -> web.StreamResponse:
    return await _put_job(request, "dependency")


async def _run_job(request: web.Request) -> web.StreamResponse:
    """PUT P/job/{name}[?arguments=]: a manual run now."""
    await _service(request).run_job(request.match_info["name"], request.query.get("arguments"))
    return _no_content()


async def _delete_job(request: web.Request) -> web.StreamResponse:
    await _service(request).delete_job(request.match_info["name"])
    return _no_content()


async def _kill_tasks(request: web.Request) -> web.StreamResponse:
    await _service(request).kill_tasks(request.match_info["name"])
    return _no_content()


async def _purge_tasks(request: web.Request) -> web.StreamResponse:
    # 2.x purged its persisted task queue here. lichen keeps queued runs with the jobs
    # they belong to (P/task/kill/{name} drops them), so there is nothing to purge.
    return _no_content()


async def _mark_success(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # Chronos answers 200 for an unknown name too, with `false`.
    ok = await _service(request).mark_success(name)
    return _text(f"marked job {name} as successful: {'true' if ok else 'false'}")


async def _progress(request: web.Request) -> web.StreamResponse:
    name, task_id = request.match_info["name"], request.match_info["task_id"]
    data = await _object(request)
    elements = data.get("numAdditionalElementsProcessed")
    if isinstance(elements, bool) or not isinstance(elements, int):
        raise InvalidRequest("'numAdditionalElementsProcessed' must be an integer",
                             field="numAdditionalElementsProcessed")
    if elements < 0:
        raise InvalidRequest(f"'numAdditionalElementsProcessed' must not be negative, got {elements}",
                             field="numAdditionalElementsProcessed")
    await _service(request).progress(name, task_id, elements)
    return _no_content()


async def _task_callback(request: web.Request) -> web.StreamResponse:
    """PUT P/task/{taskId} {"statusCode": n}: 2.x's completion call of an async job."""
    task_id = request.match_info["task_id"]
    data = await _object(request)
    code = data.get("statusCode")
    if isinstance(code, bool) or not isinstance(code, int):
        raise InvalidRequest("'statusCode' must be an integer", field="statusCode")
    await _service(request).task_finished(task_id, code)
    return _no_content()


# ==================================================================== stats


async def _job_stat(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    name = request.match_info["name"]
    _require(service, name)
    history = service.history(name)
    return _json({
        "histogram": metrics.histogram(metrics.durations_ms(history)),
        "taskStatHistory": [_task_stat(r) for r in reversed(history)],
    })


async def _stats(request: web.Request) -> web.StreamResponse:
    pct = request.match_info["pct"]
    if pct not in metrics.PERCENTILES:
        return _json([])
    service = _service(request)
    times = [(metrics.stat(pct, metrics.durations_ms(service.history(j.name))) / 1000.0, j.name)
             for j in service.jobs()]
    times.sort(key=lambda t: (-t[0], t[1]))
    return _json([{"jobNameLabel": name, "time": secs} for secs, name in times])


async def _metrics(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    counts = [
        metrics.JobCounts(
            name=j.name,
            successes=int(j.success_count),
            errors=int(j.error_count),
            durations_ms=tuple(metrics.durations_ms(service.history(j.name))),
            state=service.job_state(j.name),
            disabled=bool(j.disabled),
        )
        for j in service.jobs()
    ]
    return _json(metrics.registry(counts))


# ==================================================================== graph, leader, ping


def _edges(all_jobs: list[Any]) -> list[tuple[str, str]]:
    return [(parent, j.name) for j in all_jobs for parent in sorted(j.parents or ())]


async def _graph_dot(request: web.Request) -> web.StreamResponse:
    all_jobs = _service(request).jobs()
    return _text(graph.render_dot([j.name for j in all_jobs], _edges(all_jobs)))


async def _graph_csv(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    all_jobs = service.jobs()
    nodes = [(j.name, service.last_status(j.name), service.job_state(j.name)) for j in all_jobs]
    # With no jobs this is an empty 200, as in Chronos.
    return _text(graph.render_csv(nodes, _edges(all_jobs)))


async def _leader(request: web.Request) -> web.StreamResponse:
    return _json({"leader": _service(request).leader()})


async def _ping(request: web.Request) -> web.StreamResponse:
    return _text("pong")
