"""`POST /api/v1/executor`: the Mesos v1 executor API for custom executors.

SUBSCRIBE opens a RecordIO stream: SUBSCRIBED first, then every LAUNCH/LAUNCH_GROUP the
executor has not had yet, then KILL/MESSAGE/SHUTDOWN/ACKNOWLEDGED as they come. A new
SUBSCRIBE replaces the old stream. UPDATE is validated (400 on a bad uuid, source,
state or executor id), checkpointed and queued for the master, then ACKNOWLEDGED on the
stream with the executor's own uuid. MESSAGE goes to the master as EXECUTOR_MESSAGE.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lichen.api.server import open_stream, read_json, send_record
from lichen.errors import (
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    Unavailable,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    from lichen.agent.agent import Agent, ExecutorRecord

log = logging.getLogger(__name__)


class ExecutorStream:
    """Events waiting to be written to one subscribed executor."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self.queue.put_nowait(event)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


def check_json_post(request: web.Request) -> None:
    if request.method != "POST":
        raise MethodNotAllowed(f"Expecting 'POST', received '{request.method}'")
    ctype = request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(f"Expecting 'Content-Type' of application/json, got '{ctype}'")


def _id(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, dict) or not isinstance(value.get("value"), str) or not value["value"]:
        raise InvalidRequest(f"Expecting '{name}' to be present", field=name)
    return str(value["value"])


async def handle(agent: Agent, request: web.Request) -> web.StreamResponse:
    check_json_post(request)
    if not agent.recovered:
        raise Unavailable("Agent has not finished recovery")
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise InvalidRequest("Expecting 'type' to be present")
    fw_id = _id(body, "framework_id")
    ex_id = _id(body, "executor_id")
    fw = agent.frameworks.get(fw_id)
    ex = fw.executors.get(ex_id) if fw is not None else None
    if ex is None or ex.ended or ex.kind != "custom":
        raise Forbidden(f"Executor '{ex_id}' of framework '{fw_id}' is not known to this agent")
    kind = body["type"]
    if kind == "SUBSCRIBE":
        return await _subscribe(agent, ex, body.get("subscribe") or {}, request)
    if kind == "UPDATE":
        _update(agent, ex, body.get("update") or {})
        return web.Response(status=202)
    if kind == "MESSAGE":
        data = (body.get("message") or {}).get("data")
        if not isinstance(data, str):
            raise InvalidRequest("Expecting 'message.data' to be present")
        agent.executor_message(ex, data)
        return web.Response(status=202)
    raise InvalidRequest(f"Unknown executor call type '{kind}'")


async def _subscribe(agent: Agent, ex: ExecutorRecord, subscribe: dict[str, Any], request: web.Request) -> web.StreamResponse:
    fw = agent.frameworks[ex.framework_id]
    known = {
        str((t.get("task_id") or {}).get("value"))
        for t in subscribe.get("unacknowledged_tasks", []) or []
        if isinstance(t, dict)
    }
    for launch in ex.pending_launches:
        launch["tasks"] = [t for t in launch["tasks"] if t not in known]
    ex.pending_launches = [g for g in ex.pending_launches if g["tasks"]]

    stream = ExecutorStream()
    if ex.stream is not None:
        ex.stream.close()
    ex.stream = stream
    ex.subscribed_once = True
    agent.save_executor(ex)
    stream.send(
        {
            "type": "SUBSCRIBED",
            "subscribed": {
                "executor_info": ex.info,
                "framework_info": {**fw.info, "id": {"value": fw.framework_id}},
                "agent_info": agent.agent_info(),
                "container_id": {"value": ex.container_id},
            },
        }
    )
    agent.flush_launches(ex)
    resp = await open_stream(request)
    try:
        while True:
            event = await stream.queue.get()
            if event is None:
                break
            await send_record(resp, event)
    except (ConnectionResetError, ConnectionError):
        log.info("executor %s disconnected", ex.executor_id)
    finally:
        if ex.stream is stream:
            ex.stream = None
    return resp


def _update(agent: Agent, ex: ExecutorRecord, update: dict[str, Any]) -> None:
    status = update.get("status")
    if not isinstance(status, dict):
        raise InvalidRequest("Expecting 'update.status' to be present")
    raw_uuid = status.get("uuid")
    try:
        decoded = base64.b64decode(str(raw_uuid), validate=True) if raw_uuid is not None else b""
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 16:
        raise InvalidRequest(f"Invalid status update uuid '{raw_uuid}'", field="uuid")
    if status.get("source", "SOURCE_EXECUTOR") != "SOURCE_EXECUTOR":
        raise InvalidRequest(f"Received wrong 'source' {status.get('source')}", field="source")
    if status.get("state") == "TASK_STAGING":
        raise InvalidRequest("Received TASK_STAGING from executor", field="state")
    if not isinstance(status.get("state"), str):
        raise InvalidRequest("Expecting 'status.state' to be present", field="state")
    sent_ex = status.get("executor_id")
    if sent_ex is not None and (sent_ex or {}).get("value") != ex.executor_id:
        raise InvalidRequest(
            f"ExecutorID in Call: {ex.executor_id} does not match ExecutorID in TaskStatus: "
            f"{(sent_ex or {}).get('value')}",
            field="executor_id",
        )
    task_id = str((status.get("task_id") or {}).get("value", ""))
    if not task_id:
        raise InvalidRequest("Expecting 'status.task_id' to be present", field="task_id")
    task = ex.tasks.get(task_id)
    status = dict(status)
    status["source"] = "SOURCE_EXECUTOR"
    status["executor_id"] = {"value": ex.executor_id}
    status["agent_id"] = {"value": agent.agent_id}
    if task is None:
        log.warning("update %s for unknown task %s of executor %s", status["state"], task_id, ex.executor_id)
    else:
        agent.record_status(task, status)
    if ex.stream is not None:
        ex.stream.send(
            {"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": task_id}, "uuid": raw_uuid}}
        )
