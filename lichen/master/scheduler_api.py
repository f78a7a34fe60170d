"""`POST /api/v1/scheduler`: the Mesos v1 scheduler HTTP API.

Parses and checks each call (content type, stream id, subscription) and hands it to
the master. Status codes are Mesos's: 202 for accepted calls, 400 for malformed ones,
403 when not subscribed, 405/406/415 for the wrong method/Accept/Content-Type.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from lichen.api.server import open_stream, read_json
from lichen.errors import (
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotAcceptable,
    UnsupportedMediaType,
)
from lichen.master.master import Master, _value
from lichen.master.registry import Framework
from lichen.master.streams import EventStream

log = logging.getLogger(__name__)


def check_json_request(request: web.Request) -> None:
    """Method, Content-Type and Accept as Mesos checks them for v1 calls."""
    if request.method != "POST":
        raise MethodNotAllowed(f"Expecting 'POST', received '{request.method}'")
    ctype = request.headers.get("Content-Type", "")
    if not ctype:
        raise UnsupportedMediaType("Expecting 'Content-Type' to be present")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"Expecting 'Content-Type' of application/json (lichen does not speak protobuf), got '{ctype}'"
        )
    accept = request.headers.get("Accept", "")
    if accept:
        kinds = {a.split(";")[0].strip().lower() for a in accept.split(",")}
        if not kinds & {"application/json", "*/*", "application/*", "application/recordio"}:
            raise NotAcceptable(f"Expecting 'Accept' to allow application/json, got '{accept}'")


async def read_call(request: web.Request) -> tuple[str, dict[str, Any]]:
    """A v1 call's type and body, after the checks every v1 endpoint makes."""
    check_json_request(request)
    call = await read_json(request)
    if not isinstance(call, dict) or not isinstance(call.get("type"), str):
        raise InvalidRequest("Expecting 'type' to be present")
    return call["type"], call


def setup(app: web.Application, master: Master) -> None:
    async def scheduler(request: web.Request) -> web.StreamResponse:
        kind, call = await read_call(request)
        if kind == "SUBSCRIBE":
            if "Mesos-Stream-Id" in request.headers:
                raise InvalidRequest("Subscribe calls should not include the 'Mesos-Stream-Id' header")
            return await _subscribe(request, master, call)
        fw = _framework_for(request, master, call)
        result = await _dispatch(master, fw, kind, call)
        if result is not None:
            return result
        return web.Response(status=202)

    for path in ("/api/v1/scheduler", "/master/api/v1/scheduler"):
        app.router.add_route("*", path, scheduler)


def _framework_for(request: web.Request, master: Master, call: dict[str, Any]) -> Framework:
    fid = _value(call.get("framework_id"), "framework_id")
    fw = master.frameworks.get(fid)
    if fw is None:
        raise InvalidRequest(f"Framework '{fid}' cannot be found")
    if not fw.connected or fid not in master.framework_streams:
        raise Forbidden("Framework is not subscribed")
    stream_id = request.headers.get("Mesos-Stream-Id")
    if stream_id is None:
        raise InvalidRequest("All non-subscribe calls should include the 'Mesos-Stream-Id' header")
    if stream_id != master.framework_streams[fid].stream_id:
        raise InvalidRequest(
            f"The stream ID '{stream_id}' included in this request didn't match the stream ID "
            f"currently associated with framework ID '{fid}'"
        )
    return fw


def _sub(call: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
    body = call.get(key)
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise InvalidRequest(f"Expecting '{key}' to be present")
    return body


async def _dispatch(master: Master, fw: Framework, kind: str, call: dict[str, Any]) -> web.Response | None:
    if kind == "TEARDOWN":
        await master.remove_framework(fw.framework_id)
    elif kind == "ACCEPT":
        master.accept(fw, _sub(call, "accept"))
    elif kind == "DECLINE":
        body = _sub(call, "decline")
        ids = body.get("offer_ids")
        if not isinstance(ids, list):
            raise InvalidRequest("Expecting 'decline.offer_ids' to be a list")
        master.decline(fw, ids, body.get("filters"))
    elif kind in ("REVIVE", "SUPPRESS"):
        roles = _sub(call, kind.lower(), required=False).get("roles")
        if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            raise InvalidRequest(f"Expecting '{kind.lower()}.roles' to be a list of strings")
        role_set = set(roles) if roles else None
        if role_set is not None and not role_set <= fw.roles:
            raise InvalidRequest(f"Roles {sorted(role_set - fw.roles)} are not subscribed by the framework")
        if kind == "REVIVE":
            master.allocator.revive(fw.framework_id, role_set)
            master.allocate_soon()
        else:
            master.allocator.suppress(fw.framework_id, role_set)
    elif kind == "KILL":
        master.kill(fw, _sub(call, "kill"))
    elif kind == "SHUTDOWN":
        master.shutdown_executor(fw, _sub(call, "shutdown"))
    elif kind == "ACKNOWLEDGE":
        master.acknowledge(fw, _sub(call, "acknowledge"))
    elif kind == "RECONCILE":
        master.reconcile(fw, _sub(call, "reconcile", required=False))
    elif kind == "MESSAGE":
        master.framework_message(fw, _sub(call, "message"))
    elif kind == "UPDATE_FRAMEWORK":
        master.update_framework(fw, call)
        return web.Response(status=200)
    elif kind in (
        "REQUEST",
        "ACCEPT_INVERSE_OFFERS",
        "DECLINE_INVERSE_OFFERS",
        "ACKNOWLEDGE_OPERATION_STATUS",
        "RECONCILE_OPERATIONS",
    ):
        # Accepted and ignored: no inverse offers or operation feedback yet. pymesos posts
        # whole OperationStatus objects here; Mesos would 400 them and kill the driver.
        pass
    else:
        raise InvalidRequest(f"Unknown call type '{kind}'")
    return None


async def _subscribe(request: web.Request, master: Master, call: dict[str, Any]) -> web.StreamResponse:
    stream = EventStream()
    fw, error = await master.subscribe(call, stream)
    resp = await open_stream(request, {"Mesos-Stream-Id": stream.stream_id})
    if fw is None:
        assert error is not None
        stream.send(error)
        stream.close()
        await stream.pump(resp)
        return resp
    try:
        await stream.pump(resp)
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        stream.close()
        if master.frameworks.get(fw.framework_id) is fw:
            master.framework_disconnected(fw, stream)
    return resp
