"""`/v2/events` (SSE), `/v2/eventSubscriptions`, `/v2/info`, `/v2/leader`, `/ping`,
`/metrics` and a minimal `/v2/pods`."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from lichen.errors import NotFound
from lichen.frameworks.marathon import appdef, events
from lichen.frameworks.marathon.api_common import (
    HEARTBEAT,
    client_ip,
    json_response,
    now,
    service_of,
)

Json = dict[str, Any]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/events", _event_stream)
    app.router.add_get("/v2/eventSubscriptions", _list_subscriptions)
    app.router.add_post("/v2/eventSubscriptions", _subscribe)
    app.router.add_delete("/v2/eventSubscriptions", _unsubscribe)
    app.router.add_get("/v2/info", _info)
    app.router.add_get("/v2/leader", _leader)
    app.router.add_delete("/v2/leader", _abdicate)
    app.router.add_get("/ping", _ping)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/v2/pods", _no_pods)
    app.router.add_get("/v2/pods/::status", _no_pods)


# ---------------------------------------------------------------- SSE


async def _event_stream(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    types = frozenset(request.query.getall("event_type", []))
    light = request.query.get("plan-format", "").lower() == "light"
    remote = client_ip(request)
    queue = service.subscribe_events()
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    # One chunk per event: marathon-python's iter_lines waits for 512 bytes otherwise.
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        service.publish(events.event_stream_attached(remote, now=now()))
        await _pump(response, queue, types, light, request.app[HEARTBEAT])
    except ConnectionError:
        pass  # the client went away
    finally:
        service.unsubscribe_events(queue)
        service.publish(events.event_stream_detached(remote, now=now()))
    return response


async def _pump(
    response: web.StreamResponse,
    queue: asyncio.Queue[dict[str, Any]],
    types: frozenset[str],
    light: bool,
    heartbeat: float,
) -> None:
    while True:
        try:
            async with asyncio.timeout(heartbeat):
                event = await queue.get()
        except TimeoutError:
            await response.write(events.heartbeat_frame())
            continue
        if events.wanted(event, types):
            await response.write(events.sse_frame(events.light(event) if light else event))


# ---------------------------------------------------------------- callbacks


def _callback_url(request: web.Request) -> str:
    url = request.query.get("callbackUrl", "")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise appdef.ValidationFailed.at("/callbackUrl", f"Invalid URL '{url}'")
    return url


async def _list_subscriptions(request: web.Request) -> web.StreamResponse:
    return json_response({"callbackUrls": service_of(request).callbacks()})


async def _subscribe(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    url = _callback_url(request)
    await service.add_callback(url)
    event = events.subscribe_event(client_ip(request), url, now=now())
    service.publish(event)
    return json_response(event)


async def _unsubscribe(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    url = _callback_url(request)
    await service.remove_callback(url)
    event = events.unsubscribe_event(client_ip(request), url, now=now())
    service.publish(event)
    return json_response(event)


# ---------------------------------------------------------------- info, leader, ping, metrics


def _marathon_config(info: Json) -> Json:
    # Only keys marathon-python's MarathonConfig accepts; anything else fails get_info().
    return {
        "checkpoint": True,
        "executor": "//cmd",
        "failover_timeout": 604800,
        "features": [],
        "framework_name": "marathon",
        "ha": False,
        "hostname": str(info.get("hostname", "")),
        "leader_proxy_connection_timeout_ms": 5000,
        "leader_proxy_read_timeout_ms": 10000,
        "local_port_min": 10000,
        "local_port_max": 20000,
        "master": str(info.get("master", "")),
        "mesos_leader_ui_url": str(info.get("master_ui", "")),
        "mesos_role": None,
        "mesos_user": str(info.get("mesos_user", "root")),
        "webui_url": None,
        "reconciliation_initial_delay": 15000,
        "reconciliation_interval": 600000,
        "task_launch_timeout": 300000,
        "task_reservation_timeout": 20000,
        "marathon_store_timeout": 2000,
    }


def _zookeeper_config() -> Json:
    # lichen keeps its state without ZooKeeper; clients still require the object.
    return {
        "zk": None,
        "zk_hosts": None,
        "zk_path": None,
        "zk_state": None,
        "zk_max_versions": 50,
        "zk_timeout": 10000,
        "zk_connection_timeout": 10000,
        "zk_future_timeout": {"duration": 10000},
        "zk_session_timeout": 10000,
        "zk_compression": True,
        "zk_compression_threshold": 65536,
        "zk_max_node_size": 1024000,
    }


async def _info(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    info = service.info()
    callbacks = service.callbacks()
    out: Json = {
        "name": "marathon",
        "version": str(info.get("version", "1.10.0")),
        "buildref": "lichen",
        "elected": bool(info.get("elected", True)),
        "leader": info.get("leader"),
        "frameworkId": info.get("framework_id"),
        "http_config": {
            "assets_path": None,
            "http_port": info.get("http_port"),
            "https_port": 8443,
        },
        "zookeeper_config": _zookeeper_config(),
        "marathon_config": _marathon_config(info),
    }
    if callbacks:
        out["event_subscriber"] = {"type": "http_callback", "http_endpoints": callbacks}
    return json_response(out)


async def _leader(request: web.Request) -> web.StreamResponse:
    info = service_of(request).info()
    if not info.get("leader") or not info.get("elected", True):
        raise NotFound("There is no leader")
    return json_response({"leader": info["leader"]})


async def _abdicate(request: web.Request) -> web.StreamResponse:
    info = service_of(request).info()
    if not info.get("leader"):
        raise NotFound("There is no leader")
    # A single lichen marathon stays leader: there is nobody to hand over to.
    return json_response({"message": "Leadership abdicated"})


async def _ping(request: web.Request) -> web.StreamResponse:
    return web.Response(text="pong", content_type="text/plain")


async def _metrics(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    instances = service.instances()
    gauges = {
        "service.mesosphere.marathon.app.count": {"value": len(service.list_apps())},
        "service.mesosphere.marathon.task.running.count": {
            "value": sum(1 for i in instances if i.state == "TASK_RUNNING")
        },
        "service.mesosphere.marathon.task.staged.count": {
            "value": sum(1 for i in instances if i.state in ("TASK_STAGING", "TASK_STARTING"))
        },
        "service.mesosphere.marathon.deployments.active": {"value": len(service.deployments())},
    }
    return json_response(
        {
            "version": "4.0.0",
            "gauges": gauges,
            "counters": {},
            "histograms": {},
            "meters": {},
            "timers": {},
        }
    )


async def _no_pods(request: web.Request) -> web.StreamResponse:
    # Pods are not supported: both listings are always empty.
    return json_response([])
