"""`POST /internal/agent`: the agents' side of docs/agent-protocol.md."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lichen.api.server import open_stream
from lichen.errors import Forbidden, InvalidRequest
from lichen.master.master import Master, _value
from lichen.master.scheduler_api import read_call
from lichen.master.streams import EventStream


def setup(app: web.Application, master: Master) -> None:
    async def agent_call(request: web.Request) -> web.StreamResponse:
        kind, call = await read_call(request)
        if kind == "REGISTER":
            return await _register(request, master, call)
        body = call.get(kind.lower())
        if not isinstance(body, dict):
            raise InvalidRequest(f"Expecting '{kind.lower()}' to be present")
        agent_id = _value(body.get("agent_id"), "agent_id")
        agent = master.agents.get(agent_id)
        if agent is None or not agent.reachable or agent_id not in master.agent_streams:
            raise Forbidden(f"Agent {agent_id} is not registered")
        _dispatch(master, agent_id, kind, body)
        return web.Response(status=202)

    app.router.add_route("*", "/internal/agent", agent_call)


def _dispatch(master: Master, agent_id: str, kind: str, body: dict[str, Any]) -> None:
    if kind == "PONG":
        master.pong(agent_id)
    elif kind == "STATUS_UPDATE":
        master.status_update(agent_id, body)
    elif kind == "EXECUTOR_MESSAGE":
        master.executor_message(agent_id, body)
    elif kind == "EXITED_EXECUTOR":
        master.exited_executor(agent_id, body)
    else:
        raise InvalidRequest(f"Unknown agent call type '{kind}'")


async def _register(request: web.Request, master: Master, call: dict[str, Any]) -> web.StreamResponse:
    stream = EventStream()
    peer = request.remote or "127.0.0.1"
    agent = await master.register_agent(call, stream, peer)
    resp = await open_stream(request)
    try:
        await stream.pump(resp)
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        stream.close()
        master.agent_disconnected(agent.agent_id, stream)
    return resp
