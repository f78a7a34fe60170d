"""The master: the shell around the registry and the allocator.

It admits frameworks (scheduler SUBSCRIBE) and agents (agent REGISTER), turns the
allocator's decisions into offers, carries out ACCEPTs, relays status updates and
acknowledgements, watches agent health with pings, and keeps the registry (master id,
agents ever admitted, frameworks) in the store so that a restarted master recovers it.

Every decision method here is synchronous and only enqueues events on streams; the few
writes to the store are awaited by the HTTP handlers before they answer, so whatever a
client was told survives a kill -9.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import socket
import struct
import uuid
from collections import deque
from typing import Any

from lichen import MESOS_VERSION, __version__
from lichen.clock import Clock
from lichen.errors import InvalidRequest
from lichen.master.allocator import Allocator
from lichen.master.flags import MasterFlags
from lichen.master.registry import Agent, Framework, Offer, Task, is_terminal
from lichen.master.streams import EventStream
from lichen.resources import Resources
from lichen.state.store import Store

log = logging.getLogger(__name__)

MAX_REFUSE_SECONDS = 31536000.0
DEFAULT_REFUSE_SECONDS = 5.0


def ip_to_uint32(ip: str) -> int:
    """Mesos's MasterInfo.ip: the address bytes in network order read as little-endian."""
    try:
        return int(struct.unpack("<I", socket.inet_aton(ip))[0])
    except OSError:
        return 0


def decode_uuid(value: Any) -> str:
    """Validate a base64 16-byte uuid (pymesos may wrap it as {"value": ...})."""
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        raise InvalidRequest("Expecting 'uuid' to be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"Invalid uuid {value!r}: not base64") from None
    if len(raw) != 16:
        raise InvalidRequest(f"Invalid uuid {value!r}: expected 16 bytes, got {len(raw)}")
    return value


def _id(value: str) -> dict[str, str]:
    return {"value": value}


def _value(obj: Any, what: str) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("value"), str) and obj["value"]:
        return str(obj["value"])
    raise InvalidRequest(f"Expecting '{what}' to be present with a non-empty 'value'")


class Master:
    def __init__(self, flags: MasterFlags, store: Store, clock: Clock) -> None:
        self.flags = flags
        self.store = store
        self.clock = clock
        self.master_id = str(uuid.uuid4())
        self.start_time = clock.now()
        self.elected_time = self.start_time
        self.allocator = Allocator(weights=dict(flags.weights))
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=max(flags.max_completed_frameworks, 0))
        self.agents: dict[str, Agent] = {}
        self.recovered_agents: dict[str, dict[str, Any]] = {}   # in the registry, not re-registered yet
        self.removed_framework_ids: set[str] = set()
        self.framework_streams: dict[str, EventStream] = {}
        self.agent_streams: dict[str, EventStream] = {}
        self.operator_streams: set[EventStream] = set()
        self.offers: dict[str, Offer] = {}
        self._framework_seq = 0
        self._agent_seq = 0
        self._offer_seq = 0
        self._failover_timers: dict[str, asyncio.TimerHandle] = {}
        self._allocate_pending = False
        self._tasks: list[asyncio.Task[None]] = []
        self.counters: dict[str, int] = {}
        self.ip = "127.0.0.1"
        self.port = 0
        self.hostname = "localhost"

    # ------------------------------------------------------------------ lifecycle

    def bind(self, ip: str, port: int) -> None:
        self.ip = ip
        self.port = port
        self.hostname = self.flags.hostname or ip

    async def recover(self) -> None:
        """Load the registry: agents ever admitted and frameworks, from the store."""
        for key, raw in (await self.store.list("master/agents/")).items():
            info = json.loads(raw)
            self.recovered_agents[key.rsplit("/", 1)[1]] = info
        for key, raw in (await self.store.list("master/frameworks/")).items():
            info = json.loads(raw)
            fid = key.rsplit("/", 1)[1]
            fw = Framework(fid, info, registered_time=self.clock.now(), recovered=True)
            fw.completed_tasks = deque(maxlen=max(self.flags.max_completed_tasks_per_framework, 0))
            self.frameworks[fid] = fw
            self.allocator.add_framework(fid, fw.roles, active=False)
        for key in await self.store.list("master/removed_frameworks/"):
            self.removed_framework_ids.add(key.rsplit("/", 1)[1])
        log.info(
            "recovered registry: %d agents, %d frameworks", len(self.recovered_agents), len(self.frameworks)
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._allocation_loop(), name="allocation"),
            loop.create_task(self._ping_loop(), name="agent-pings"),
            loop.create_task(self._heartbeat_loop(), name="heartbeats"),
        ]
        if self.flags.offer_timeout:
            self._tasks.append(loop.create_task(self._offer_timeout_loop(), name="offer-timeout"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        for h in self._failover_timers.values():
            h.cancel()
        for s in [*self.framework_streams.values(), *self.agent_streams.values(), *self.operator_streams]:
            s.close()

    # ------------------------------------------------------------------ info

    def master_info(self) -> dict[str, Any]:
        return {
            "id": self.master_id,
            "ip": ip_to_uint32(self.ip),
            "port": self.port,
            "pid": f"master@{self.ip}:{self.port}",
            "hostname": self.hostname,
            "version": MESOS_VERSION,
            "address": {"hostname": self.hostname, "ip": self.ip, "port": self.port},
            "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"}],
        }

    def version_json(self) -> dict[str, Any]:
        return {
            "version": MESOS_VERSION,
            "lichen_version": __version__,
            "build_date": "",
            "build_time": 0.0,
            "build_user": "",
        }

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------------------ ids

    def _next_framework_id(self) -> str:
        self._framework_seq += 1
        return f"{self.master_id}-{self._framework_seq:04d}"

    def _next_agent_id(self) -> str:
        self._agent_seq += 1
        return f"{self.master_id}-S{self._agent_seq}"

    def _next_offer_id(self) -> str:
        self._offer_seq += 1
        return f"{self.master_id}-O{self._offer_seq}"

    # ------------------------------------------------------------------ events out

    def send_framework(self, framework_id: str, event: dict[str, Any]) -> None:
        stream = self.framework_streams.get(framework_id)
        if stream is not None:
            stream.send(event)

    def send_agent(self, agent_id: str, event: dict[str, Any]) -> None:
        stream = self.agent_streams.get(agent_id)
        if stream is not None:
            stream.send(event)

    def publish(self, event: dict[str, Any]) -> None:
        """An operator API event to every operator subscriber."""
        for s in list(self.operator_streams):
            s.send(event)

    def _status_update(self, fw: Framework, status: dict[str, Any]) -> None:
        self.send_framework(fw.framework_id, {"type": "UPDATE", "update": {"status": status}})

    def master_status(
        self,
        task_id: str,
        state: str,
        *,
        reason: str,
        message: str,
        agent_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A status made by the master: no uuid, never retried."""
        status: dict[str, Any] = {
            "task_id": _id(task_id),
            "state": state,
            "source": "SOURCE_MASTER",
            "reason": reason,
            "message": message,
            "timestamp": self.clock.now(),
        }
        if agent_id:
            status["agent_id"] = _id(agent_id)
        if extra:
            status.update(extra)
        return status

    # ------------------------------------------------------------------ frameworks

    async def subscribe(
        self, call: dict[str, Any], stream: EventStream
    ) -> tuple[Framework | None, dict[str, Any] | None]:
        """Admit or re-admit a framework. Returns (framework, None) or (None, ERROR event)."""
        sub = call.get("subscribe")
        if not isinstance(sub, dict) or not isinstance(sub.get("framework_info"), dict):
            raise InvalidRequest("Expecting 'subscribe.framework_info' to be present")
        info = dict(sub["framework_info"])
        validate_framework_info(info)
        caps = {c.get("type") for c in info.get("capabilities", [])}
        if "MULTI_ROLE" in caps and not info.get("roles"):
            info["roles"] = ["*"]
        call_id = call.get("framework_id")
        info_id = info.get("id")
        if (call_id is not None or info_id is not None) and (not isinstance(call_id, dict) or call_id != info_id):
            raise InvalidRequest("'framework_id' differs from 'subscribe.framework_info.id'")
        suppressed = _suppressed_roles(sub)
        now = self.clock.now()

        if info_id is not None:
            fid = _value(info_id, "framework_info.id")
            if fid in self.removed_framework_ids:
                return None, {"type": "ERROR", "error": {"message": "Framework has been removed"}}
            fw = self.frameworks.get(fid)
            if fw is not None:
                self._resubscribe(fw, info, suppressed, stream, now)
                await self._persist_framework(fw)
                return fw, None
        else:
            fid = self._next_framework_id()
            info["id"] = _id(fid)

        fw = Framework(fid, info, registered_time=now, connected=True, active=True)
        fw.completed_tasks = deque(maxlen=max(self.flags.max_completed_tasks_per_framework, 0))
        await self._persist_framework(fw)
        self.frameworks[fid] = fw
        self.framework_streams[fid] = stream
        self._subscribed(fw, stream)
        self.allocator.add_framework(fid, fw.roles, active=True, suppressed_roles=suppressed)
        self.publish({"type": "FRAMEWORK_ADDED", "framework_added": {"framework": self._framework_op_json(fw)}})
        log.info("framework %s (%s) subscribed", fid, info.get("name"))
        self.allocate_soon()
        return fw, None

    def _subscribed(self, fw: Framework, stream: EventStream) -> None:
        stream.send({
            "type": "SUBSCRIBED",
            "subscribed": {
                "framework_id": _id(fw.framework_id),
                "heartbeat_interval_seconds": float(self.flags.heartbeat_interval),
                "master_info": self.master_info(),
            },
        })

    def _resubscribe(
        self, fw: Framework, info: dict[str, Any], suppressed: set[str], stream: EventStream, now: float
    ) -> None:
        old = self.framework_streams.pop(fw.framework_id, None)
        if old is not None:
            old.close()
        timer = self._failover_timers.pop(fw.framework_id, None)
        if timer is not None:
            timer.cancel()
        self._rescind_framework_offers(fw)
        # A resubscribe may change name, roles, capabilities and timeout, not user or checkpoint.
        info = dict(info)
        info["user"] = fw.info.get("user", info["user"]) if not fw.recovered else info["user"]
        fw.info = info
        fw.connected = True
        fw.active = True
        fw.recovered = False
        fw.reregistered_time = now
        fw.unregistered_time = None
        self.framework_streams[fw.framework_id] = stream
        self._subscribed(fw, stream)
        self.allocator.update_framework(fw.framework_id, fw.roles, suppressed)
        self.allocator.activate_framework(fw.framework_id)
        self.publish({"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": self._framework_op_json(fw)}})
        log.info("framework %s resubscribed", fw.framework_id)
        self.allocate_soon()

    async def _persist_framework(self, fw: Framework) -> None:
        await self.store.put(f"master/frameworks/{fw.framework_id}", json.dumps(fw.info).encode())

    def framework_disconnected(self, fw: Framework, stream: EventStream) -> None:
        """The framework's stream closed; start its failover timeout."""
        if self.framework_streams.get(fw.framework_id) is not stream:
            return  # replaced by a newer subscription
        del self.framework_streams[fw.framework_id]
        fw.connected = False
        fw.active = False
        fw.unregistered_time = self.clock.now()
        self.allocator.deactivate_framework(fw.framework_id)
        self._rescind_framework_offers(fw)
        timeout = float(fw.info.get("failover_timeout") or 0.0)
        log.info("framework %s disconnected; failover timeout %.1fs", fw.framework_id, timeout)
        loop = asyncio.get_running_loop()
        self._failover_timers[fw.framework_id] = loop.call_later(
            max(timeout, 0.0), lambda: loop.create_task(self.remove_framework(fw.framework_id))
        )

    async def remove_framework(self, framework_id: str) -> None:
        """Teardown or failover timeout: kill its tasks, move it to completed."""
        fw = self.frameworks.pop(framework_id, None)
        if fw is None:
            return
        timer = self._failover_timers.pop(framework_id, None)
        if timer is not None:
            timer.cancel()
        self.removed_framework_ids.add(framework_id)
        await self.store.put_many(
            {f"master/frameworks/{framework_id}": None, f"master/removed_frameworks/{framework_id}": b"1"}
        )
        stream = self.framework_streams.pop(framework_id, None)
        if stream is not None:
            stream.close()
        self._rescind_framework_offers(fw, send=False)
        agents = {t.agent_id for t in [*fw.tasks.values(), *fw.unreachable_tasks.values()]}
        agents |= {a for a, _ in fw.executors}
        for agent_id in agents:
            self.send_agent(agent_id, {"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": {"framework_id": _id(framework_id)}})
        now = self.clock.now()
        for task in [*fw.tasks.values(), *fw.unreachable_tasks.values()]:
            if not is_terminal(task.state):
                task.record(
                    self.master_status(task.task_id, "TASK_KILLED", reason="REASON_FRAMEWORK_REMOVED",
                                       message="Framework removed", agent_id=task.agent_id),
                    now,
                )
                self.count("master/tasks_killed")
            self._release_task(task)
            fw.completed_tasks.append(task)
            agent = self.agents.get(task.agent_id)
            if agent is not None:
                agent.tasks.pop((framework_id, task.task_id), None)
        fw.tasks.clear()
        fw.unreachable_tasks.clear()
        fw.connected = False
        fw.active = False
        fw.unregistered_time = now
        self.allocator.remove_framework(framework_id)
        self.completed_frameworks.append(fw)
        self.publish({"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": fw.info}})
        log.info("framework %s removed", framework_id)
        self.allocate_soon()

    def update_framework(self, fw: Framework, call: dict[str, Any]) -> None:
        upd = call.get("update_framework")
        if not isinstance(upd, dict) or not isinstance(upd.get("framework_info"), dict):
            raise InvalidRequest("Expecting 'update_framework.framework_info' to be present")
        info = dict(upd["framework_info"])
        validate_framework_info(info)
        if info.get("id") != _id(fw.framework_id):
            raise InvalidRequest("'update_framework.framework_info.id' differs from 'framework_id'")
        if info.get("user") != fw.info.get("user"):
            raise InvalidRequest("Updating 'framework_info.user' is unsupported")
        fw.info = info
        self._rescind_framework_offers(fw)
        self.allocator.update_framework(fw.framework_id, fw.roles, _suppressed_roles(upd))
        for agent_id in {t.agent_id for t in fw.tasks.values()}:
            self.send_agent(agent_id, {"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": info}})
        self.publish({"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": self._framework_op_json(fw)}})
        self.allocate_soon()

    # ------------------------------------------------------------------ allocation and offers

    def allocate_soon(self) -> None:
        """Event-driven allocation: one extra cycle at the next turn of the loop."""
        if self._allocate_pending:
            return
        self._allocate_pending = True
        asyncio.get_running_loop().call_soon(self._allocate_now)

    def _allocate_now(self) -> None:
        self._allocate_pending = False
        self.run_allocation()

    def run_allocation(self) -> None:
        now = self.clock.now()
        by_framework: dict[str, list[Offer]] = {}
        for a in self.allocator.allocate(now):
            fw = self.frameworks.get(a.framework_id)
            agent = self.agents.get(a.agent_id)
            if fw is None or agent is None or not fw.connected:
                self.allocator.recover(a.framework_id, a.role, a.agent_id, a.resources)
                continue
            offer = Offer(self._next_offer_id(), a.framework_id, a.agent_id, a.role, a.resources, now)
            self.offers[offer.offer_id] = offer
            fw.offers[offer.offer_id] = offer
            by_framework.setdefault(a.framework_id, []).append(offer)
        for fid, offers in by_framework.items():
            fw = self.frameworks[fid]
            self.send_framework(fid, {"type": "OFFERS", "offers": {"offers": [self.offer_json(fw, o) for o in offers]}})

    def offer_json(self, fw: Framework, offer: Offer) -> dict[str, Any]:
        agent = self.agents[offer.agent_id]
        multi_role = "MULTI_ROLE" in fw.capabilities
        refinement = "RESERVATION_REFINEMENT" in fw.capabilities
        body: dict[str, Any] = {
            "id": _id(offer.offer_id),
            "framework_id": _id(offer.framework_id),
            "agent_id": _id(offer.agent_id),
            "hostname": agent.hostname,
            "url": {
                "scheme": "http",
                "address": {"hostname": agent.hostname, "ip": agent.ip, "port": agent.port},
                "path": "/slave(1)",
            },
            "resources": offer.resources.to_json(
                refinement=refinement, allocation_role=offer.role if multi_role else None
            ),
            "attributes": agent.attributes,
            "executor_ids": [
                _id(eid) for (aid, eid) in fw.executors if aid == offer.agent_id
            ],
        }
        if multi_role:
            body["allocation_info"] = {"role": offer.role}
        return body

    def _remove_offer(self, offer: Offer) -> None:
        self.offers.pop(offer.offer_id, None)
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.pop(offer.offer_id, None)

    def rescind_offer(self, offer: Offer, *, send: bool = True) -> None:
        self._remove_offer(offer)
        self.allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources)
        if send:
            self.send_framework(offer.framework_id, {"type": "RESCIND", "rescind": {"offer_id": _id(offer.offer_id)}})

    def _rescind_framework_offers(self, fw: Framework, *, send: bool = True) -> None:
        for offer in list(fw.offers.values()):
            self.rescind_offer(offer, send=send)

    def _rescind_agent_offers(self, agent_id: str) -> None:
        for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
            self.rescind_offer(offer)

    def decline(self, fw: Framework, offer_ids: list[Any], filters: Any) -> None:
        refuse = refuse_seconds(filters)
        now = self.clock.now()
        for oid in offer_ids:
            offer = fw.offers.get(_value(oid, "offer_ids[]"))
            if offer is None:
                continue  # Mesos ignores declines of unknown offers
            self._remove_offer(offer)
            self.allocator.recover(fw.framework_id, offer.role, offer.agent_id, offer.resources,
                                   refuse_seconds=refuse, now=now)

    def accept(self, fw: Framework, accept: dict[str, Any]) -> None:
        offer_ids = accept.get("offer_ids")
        operations = accept.get("operations") or []
        if not isinstance(offer_ids, list) or not isinstance(operations, list):
            raise InvalidRequest("Expecting 'accept.offer_ids' and 'accept.operations' to be lists")
        ids = [_value(o, "accept.offer_ids[]") for o in offer_ids]
        refuse = refuse_seconds(accept.get("filters"))
        now = self.clock.now()

        offers: list[Offer] = []
        error: str | None = None
        if not ids:
            error = "No offers specified"
        for oid in ids:
            offer = fw.offers.get(oid)
            if offer is None:
                error = f"Offer {oid} is no longer valid"
            else:
                offers.append(offer)
        if len(set(ids)) != len(ids):
            error = "Duplicate offers in ACCEPT"
        if offers and len({o.agent_id for o in offers}) > 1:
            error = "Aggregated offers must belong to one single agent"
        if offers and len({o.role for o in offers}) > 1:
            error = "Aggregated offers must be allocated to the same role"
        for offer in offers:
            self._remove_offer(offer)

        if error is not None:
            for offer in offers:
                self.allocator.recover(fw.framework_id, offer.role, offer.agent_id, offer.resources)
            state = "TASK_DROPPED" if fw.partition_aware else "TASK_LOST"
            for task_info in _launched_tasks(operations):
                tid = task_info.get("task_id", {}).get("value", "") if isinstance(task_info.get("task_id"), dict) else ""
                if tid:
                    self.count("master/tasks_dropped" if fw.partition_aware else "master/tasks_lost")
                    self._status_update(fw, self.master_status(
                        tid, state, reason="REASON_INVALID_OFFERS", message=error))
            self.count("master/invalid_operations")
            return

        agent_id = offers[0].agent_id
        role = offers[0].role
        available = Resources.empty()
        for offer in offers:
            available = available + offer.resources
        agent = self.agents.get(agent_id)
        for op in operations:
            if not isinstance(op, dict):
                continue
            kind = op.get("type")
            if kind == "LAUNCH":
                infos = (op.get("launch") or {}).get("task_infos") or []
                for info in infos:
                    available, _ = self._launch(fw, agent, role, available, info, None, now)
            elif kind == "LAUNCH_GROUP":
                available = self._launch_group(fw, agent, role, available, op.get("launch_group") or {}, now)
            else:
                self._operation_unsupported(fw, op, agent_id)
        if available:
            self.allocator.recover(fw.framework_id, role, agent_id, available, refuse_seconds=refuse, now=now)

    def _operation_unsupported(self, fw: Framework, op: dict[str, Any], agent_id: str) -> None:
        log.warning("framework %s: operation %s is not supported; ignored", fw.framework_id, op.get("type"))
        op_id = op.get("id")
        if isinstance(op_id, dict):
            self.send_framework(fw.framework_id, {
                "type": "UPDATE_OPERATION_STATUS",
                "update_operation_status": {"status": {
                    "operation_id": op_id, "state": "OPERATION_ERROR", "agent_id": _id(agent_id),
                    "message": f"Operation {op.get('type')} is not supported by lichen",
                }},
            })

    def _task_error(self, fw: Framework, task_id: str, message: str, agent_id: str | None) -> None:
        self.count("master/tasks_error")
        self._status_update(fw, self.master_status(
            task_id, "TASK_ERROR", reason="REASON_TASK_INVALID", message=message, agent_id=agent_id))

    def _validate_task(
        self, fw: Framework, agent: Agent | None, info: Any, available: Resources, executor: dict[str, Any] | None
    ) -> tuple[str, Resources, str | None]:
        """Return (task_id, resources the launch consumes, error message or None)."""
        if not isinstance(info, dict):
            return "", Resources.empty(), "TaskInfo must be an object"
        tid_obj = info.get("task_id")
        tid = tid_obj.get("value") if isinstance(tid_obj, dict) else None
        if not isinstance(tid, str) or not tid:
            return "", Resources.empty(), "Task has no task_id"
        if agent is None:
            return tid, Resources.empty(), "Agent is gone"
        if not isinstance(info.get("name"), str):
            return tid, Resources.empty(), "Task has no name"
        if tid in fw.tasks or tid in fw.unreachable_tasks:
            return tid, Resources.empty(), f"Task has duplicate ID: {tid}"
        if any(ch in tid for ch in "/\x00") or tid in (".", ".."):
            return tid, Resources.empty(), f"Task ID '{tid}' contains invalid characters"
        aid = info.get("agent_id")
        if aid is not None and aid != _id(agent.agent_id):
            return tid, Resources.empty(), f"Task uses agent {aid.get('value') if isinstance(aid, dict) else aid} but the offer is for {agent.agent_id}"
        if executor is None and (("command" in info) == ("executor" in info)):
            return tid, Resources.empty(), "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        try:
            needed = Resources.from_json(info.get("resources") or [])
            ex = executor if executor is not None else info.get("executor")
            if isinstance(ex, dict):
                eid = _value(ex.get("executor_id"), "executor.executor_id")
                if (agent.agent_id, eid) not in fw.executors:
                    needed = needed + Resources.from_json(ex.get("resources") or [])
        except InvalidRequest as e:
            return tid, Resources.empty(), e.message
        if needed.is_empty() and executor is None and not isinstance(info.get("executor"), dict):
            return tid, needed, "Task uses no resources"
        if not needed <= available:
            return tid, needed, f"Task uses more resources {needed!r} than available {available!r}"
        return tid, needed, None

    def _launch(
        self, fw: Framework, agent: Agent | None, role: str, available: Resources,
        info: Any, group_executor: dict[str, Any] | None, now: float,
    ) -> tuple[Resources, Task | None]:
        """Launch one task out of `available`; return what is left and the task (None if refused)."""
        tid, needed, error = self._validate_task(fw, agent, info, available, group_executor)
        if error is not None or agent is None:
            if tid:
                self._task_error(fw, tid, error or "Agent is gone", agent.agent_id if agent else None)
            return available, None
        info = dict(info)
        info["agent_id"] = _id(agent.agent_id)
        executor = group_executor if group_executor is not None else info.get("executor")
        executor_id = ""
        if isinstance(executor, dict):
            executor = dict(executor)
            executor.setdefault("framework_id", _id(fw.framework_id))
            executor_id = executor["executor_id"]["value"]
            fw.executors[(agent.agent_id, executor_id)] = executor
            if group_executor is None:
                info["executor"] = executor
        task = Task(
            task_id=tid, framework_id=fw.framework_id, agent_id=agent.agent_id, name=info["name"],
            role=role, resources=needed, info=info, executor_id=executor_id,
        )
        fw.tasks[tid] = task
        agent.tasks[(fw.framework_id, tid)] = task
        self.count("master/tasks_staging_total")
        self.publish({"type": "TASK_ADDED", "task_added": {"task": self._task_op_json(task)}})
        if group_executor is None:
            self.send_agent(agent.agent_id, {"type": "RUN_TASK", "run_task": {"framework_info": fw.info, "task": info}})
        return available - needed, task

    def _launch_group(
        self, fw: Framework, agent: Agent | None, role: str, available: Resources, group: dict[str, Any], now: float
    ) -> Resources:
        executor = group.get("executor")
        tasks = (group.get("task_group") or {}).get("tasks") or []
        if not isinstance(executor, dict) or not isinstance(executor.get("executor_id"), dict):
            for info in tasks:
                tid = (info.get("task_id") or {}).get("value") if isinstance(info, dict) else None
                if tid:
                    self._task_error(fw, tid, "LAUNCH_GROUP needs an executor with an executor_id", None)
            return available
        launched: list[dict[str, Any]] = []
        for info in tasks:
            available, task = self._launch(fw, agent, role, available, info, executor, now)
            if task is not None:
                launched.append(task.info)
        if launched and agent is not None:
            ex = fw.executors[(agent.agent_id, executor["executor_id"]["value"])]
            self.send_agent(agent.agent_id, {"type": "RUN_TASK_GROUP", "run_task_group": {
                "framework_info": fw.info, "executor": ex, "task_group": {"tasks": launched}}})
        return available

    # ------------------------------------------------------------------ task calls

    def kill(self, fw: Framework, kill: dict[str, Any]) -> None:
        tid = _value(kill.get("task_id"), "kill.task_id")
        task = fw.tasks.get(tid) or fw.unreachable_tasks.get(tid)
        if task is None:
            # Mesos answers a kill of an unknown task with TASK_LOST.
            aid = kill.get("agent_id")
            self._status_update(fw, self.master_status(
                tid, "TASK_LOST", reason="REASON_RECONCILIATION", message="Attempted to kill an unknown task",
                agent_id=aid.get("value") if isinstance(aid, dict) else None))
            return
        body: dict[str, Any] = {"framework_id": _id(fw.framework_id), "task_id": _id(tid)}
        if isinstance(kill.get("kill_policy"), dict):
            body["kill_policy"] = kill["kill_policy"]
        self.send_agent(task.agent_id, {"type": "KILL_TASK", "kill_task": body})

    def shutdown_executor(self, fw: Framework, body: dict[str, Any]) -> None:
        eid = _value(body.get("executor_id"), "shutdown.executor_id")
        aid = _value(body.get("agent_id"), "shutdown.agent_id")
        self.send_agent(aid, {"type": "SHUTDOWN_EXECUTOR", "shutdown_executor": {
            "framework_id": _id(fw.framework_id), "executor_id": _id(eid)}})

    def framework_message(self, fw: Framework, body: dict[str, Any]) -> None:
        aid = _value(body.get("agent_id"), "message.agent_id")
        eid = _value(body.get("executor_id"), "message.executor_id")
        data = body.get("data", "")
        if not isinstance(data, str):
            raise InvalidRequest("Expecting 'message.data' to be a base64 string")
        self.send_agent(aid, {"type": "FRAMEWORK_MESSAGE", "framework_message": {
            "framework_id": _id(fw.framework_id), "executor_id": _id(eid), "data": data}})

    def acknowledge(self, fw: Framework, ack: dict[str, Any]) -> None:
        aid = _value(ack.get("agent_id"), "acknowledge.agent_id")
        tid = _value(ack.get("task_id"), "acknowledge.task_id")
        uid = decode_uuid(ack.get("uuid"))
        task = fw.tasks.get(tid) or fw.unreachable_tasks.get(tid)
        if task is not None and task.pending_uuid == uid:
            task.pending_uuid = None
            if is_terminal(task.state):
                self._complete_task(fw, task)
        self.send_agent(aid, {"type": "ACKNOWLEDGE", "acknowledge": {
            "framework_id": _id(fw.framework_id), "task_id": _id(tid), "uuid": uid}})

    def _complete_task(self, fw: Framework, task: Task) -> None:
        fw.tasks.pop(task.task_id, None)
        fw.unreachable_tasks.pop(task.task_id, None)
        fw.completed_tasks.append(task)
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((fw.framework_id, task.task_id), None)

    def _release_task(self, task: Task) -> None:
        if not task.resources_recovered:
            task.resources_recovered = True
            if task.agent_id in self.agents:
                self.allocator.recover(task.framework_id, task.role, task.agent_id, task.resources)

    def reconcile(self, fw: Framework, body: dict[str, Any]) -> None:
        tasks = body.get("tasks") or []
        if not isinstance(tasks, list):
            raise InvalidRequest("Expecting 'reconcile.tasks' to be a list")
        pa = fw.partition_aware
        if not tasks:
            for known in [*fw.tasks.values(), *fw.unreachable_tasks.values()]:
                self._status_update(fw, self._reconcile_status(known))
            return
        for entry in tasks:
            if not isinstance(entry, dict):
                raise InvalidRequest("Expecting 'reconcile.tasks[]' to be objects")
            tid = _value(entry.get("task_id"), "reconcile.tasks[].task_id")
            aid_obj = entry.get("agent_id")
            aid = aid_obj.get("value") if isinstance(aid_obj, dict) else None
            task = (fw.tasks.get(tid) or fw.unreachable_tasks.get(tid)
                    or next((t for t in fw.completed_tasks if t.task_id == tid), None))
            if task is not None:
                self._status_update(fw, self._reconcile_status(task))
                continue
            if aid is not None and aid in self.recovered_agents:
                continue  # agent still re-registering: no answer yet, as Mesos
            if aid is not None and aid in self.agents:
                state = "TASK_UNREACHABLE" if not self.agents[aid].reachable else "TASK_GONE"
            elif aid is not None:
                state = "TASK_UNKNOWN"
            else:
                state = "TASK_UNKNOWN"
            if not pa:
                state = "TASK_LOST"
            self._status_update(fw, self.master_status(
                tid, state, reason="REASON_RECONCILIATION", message="Reconciliation: Task is unknown", agent_id=aid))

    def _reconcile_status(self, task: Task) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if task.latest is not None:
            for k in ("healthy", "container_status", "labels", "data", "executor_id", "unreachable_time"):
                if k in task.latest:
                    extra[k] = task.latest[k]
        state = task.state
        if state == "TASK_UNREACHABLE":
            fw = self.frameworks.get(task.framework_id)
            if fw is not None and not fw.partition_aware:
                state = "TASK_LOST"
        return self.master_status(
            task.task_id, state, reason="REASON_RECONCILIATION", message="Reconciliation: Latest task state",
            agent_id=task.agent_id, extra=extra)

    # ------------------------------------------------------------------ agents

    async def register_agent(self, body: dict[str, Any], stream: EventStream, peer_ip: str) -> Agent:
        reg = body.get("register")
        if not isinstance(reg, dict) or not isinstance(reg.get("agent_info"), dict):
            raise InvalidRequest("Expecting 'register.agent_info' to be present")
        info = reg["agent_info"]
        hostname = info.get("hostname")
        port = info.get("port")
        if not isinstance(hostname, str) or not isinstance(port, int):
            raise InvalidRequest("Expecting 'agent_info.hostname' and 'agent_info.port'")
        resources = Resources.from_json(info.get("resources") or [])
        attributes = info.get("attributes") or []
        now = self.clock.now()
        aid_obj = info.get("id")
        agent_id = aid_obj.get("value") if isinstance(aid_obj, dict) else None
        ip = info.get("ip") if isinstance(info.get("ip"), str) else peer_ip
        rereg = agent_id is not None
        if agent_id is None:
            agent_id = self._next_agent_id()
        old = self.agents.get(agent_id)
        record = {"id": _id(agent_id), "hostname": hostname, "port": port, "ip": ip,
                  "resources": resources.to_json(), "attributes": attributes}
        await self.store.put(f"master/agents/{agent_id}", json.dumps(record).encode())
        self.recovered_agents.pop(agent_id, None)

        prev_stream = self.agent_streams.pop(agent_id, None)
        if prev_stream is not None:
            prev_stream.close()
        was_unreachable = old is not None and not old.reachable
        if old is not None:
            self._rescind_agent_offers(agent_id)
            self.allocator.remove_agent(agent_id)
        agent = Agent(
            agent_id=agent_id, hostname=hostname, port=port, ip=ip, resources=resources,
            attributes=attributes, registered_time=old.registered_time if old else now,
            reregistered_time=now if rereg else None, version=str(reg.get("version", "")),
        )
        self.agents[agent_id] = agent
        self.agent_streams[agent_id] = stream

        for finfo in reg.get("frameworks") or []:
            if isinstance(finfo, dict) and isinstance(finfo.get("id"), dict):
                fid = finfo["id"].get("value")
                if isinstance(fid, str) and fid not in self.frameworks and fid not in self.removed_framework_ids:
                    fw = Framework(fid, finfo, registered_time=now, recovered=True)
                    fw.completed_tasks = deque(maxlen=max(self.flags.max_completed_tasks_per_framework, 0))
                    self.frameworks[fid] = fw
                    self.allocator.add_framework(fid, fw.roles, active=False)

        used: dict[tuple[str, str], Resources] = {}
        reported: set[tuple[str, str]] = set()
        kills: list[tuple[str, str]] = []
        for t in reg.get("tasks") or []:
            task = self._adopt_task(agent, t, was_unreachable, kills)
            if task is not None:
                reported.add((task.framework_id, task.task_id))
                if not is_terminal(task.state):
                    key = (task.framework_id, task.role)
                    used[key] = used.get(key, Resources.empty()) + task.resources
        if old is not None:
            self._forget_unreported(old, reported)
        self.allocator.add_agent(agent_id, resources, used)
        for fid, tid in kills:
            self.send_agent(agent_id, {"type": "KILL_TASK", "kill_task": {"framework_id": _id(fid), "task_id": _id(tid)}})
        stream.send({"type": "REGISTERED", "registered": {"agent_id": _id(agent_id), "master_info": self.master_info()}})
        self.publish({"type": "AGENT_ADDED", "agent_added": {"agent": self._agent_op_json(agent)}})
        log.info("agent %s at %s:%d %s", agent_id, hostname, port, "re-registered" if rereg else "registered")
        self.allocate_soon()
        return agent

    def _adopt_task(self, agent: Agent, t: Any, was_unreachable: bool, kills: list[tuple[str, str]]) -> Task | None:
        """Take in a task an agent reports on (re-)registration."""
        if not isinstance(t, dict):
            return None
        try:
            tid = _value(t.get("task_id"), "task_id")
            fid = _value(t.get("framework_id"), "framework_id")
        except InvalidRequest:
            return None
        fw = self.frameworks.get(fid)
        state = t.get("state", "TASK_RUNNING")
        if fw is None:
            if not is_terminal(state):
                kills.append((fid, tid))
            return None
        task = fw.tasks.get(tid) or fw.unreachable_tasks.get(tid)
        if task is None:
            done = next((x for x in fw.completed_tasks if x.task_id == tid), None)
            if done is not None:
                # Marked LOST while the agent was away (not partition-aware): kill it now.
                if not is_terminal(state):
                    kills.append((fid, tid))
                return None
            given = t.get("task_info")
            info: dict[str, Any] = given if isinstance(given, dict) else {"task_id": _id(tid), "name": t.get("name", tid)}
            try:
                res = Resources.from_json(t.get("resources") or info.get("resources") or [])
            except InvalidRequest:
                res = Resources.empty()
            roles = fw.roles or {"*"}
            role = str(t.get("role") or min(roles))
            ex = info.get("executor")
            task = Task(task_id=tid, framework_id=fid, agent_id=agent.agent_id, name=str(info.get("name", tid)),
                        role=role, resources=res, info=info,
                        executor_id=(t.get("executor_id") or {}).get("value", "") if isinstance(t.get("executor_id"), dict) else "")
            if isinstance(ex, dict) and isinstance(ex.get("executor_id"), dict):
                fw.executors[(agent.agent_id, ex["executor_id"]["value"])] = ex
            fw.tasks[tid] = task
            self.publish({"type": "TASK_ADDED", "task_added": {"task": self._task_op_json(task)}})
        task.agent_id = agent.agent_id
        if task.state == "TASK_UNREACHABLE":
            fw.unreachable_tasks.pop(tid, None)
            fw.tasks[tid] = task
        if state != task.state:
            status = t.get("status") if isinstance(t.get("status"), dict) else None
            task.record(status or {"state": state, "timestamp": self.clock.now()}, self.clock.now())
        agent.tasks[(fid, tid)] = task
        return task

    def _forget_unreported(self, old: Agent, reported: set[tuple[str, str]]) -> None:
        """Tasks the master had on an agent that no longer reports them are gone."""
        for key, task in old.tasks.items():
            if key in reported or is_terminal(task.state):
                continue
            fw = self.frameworks.get(task.framework_id)
            if fw is None:
                continue
            state = "TASK_GONE" if fw.partition_aware else "TASK_LOST"
            status = self.master_status(task.task_id, state, reason="REASON_RECONCILIATION",
                                        message="Task not reported by the re-registered agent", agent_id=old.agent_id)
            task.record(status, self.clock.now())
            self._complete_task(fw, task)
            self._status_update(fw, status)

    def agent_disconnected(self, agent_id: str, stream: EventStream) -> None:
        if self.agent_streams.get(agent_id) is not stream:
            return
        del self.agent_streams[agent_id]
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        agent.connected = False
        self.allocator.deactivate_agent(agent_id)
        self._rescind_agent_offers(agent_id)
        log.info("agent %s disconnected", agent_id)

    def pong(self, agent_id: str) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None:
            agent.awaiting_pong = False
            agent.missed_pings = 0

    def mark_unreachable(self, agent: Agent) -> None:
        now = self.clock.now()
        agent.reachable = False
        agent.connected = False
        agent.unreachable_time = now
        stream = self.agent_streams.pop(agent.agent_id, None)
        if stream is not None:
            stream.close()
        self._rescind_agent_offers(agent.agent_id)
        self.allocator.remove_agent(agent.agent_id)
        log.warning("agent %s is unreachable", agent.agent_id)
        frameworks: set[str] = set()
        for (fid, tid), task in list(agent.tasks.items()):
            fw = self.frameworks.get(fid)
            if fw is None or is_terminal(task.state):
                continue
            frameworks.add(fid)
            task.resources_recovered = True  # the agent left the allocator with them
            if fw.partition_aware:
                status = self.master_status(tid, "TASK_UNREACHABLE", reason="REASON_AGENT_REMOVED",
                                            message="Agent is unreachable", agent_id=agent.agent_id,
                                            extra={"unreachable_time": {"nanoseconds": int(now * 1e9)}})
                task.record(status, now)
                fw.tasks.pop(tid, None)
                fw.unreachable_tasks[tid] = task
                self.count("master/tasks_unreachable")
            else:
                status = self.master_status(tid, "TASK_LOST", reason="REASON_AGENT_REMOVED",
                                            message="Agent is unreachable", agent_id=agent.agent_id)
                task.record(status, now)
                self._complete_task(fw, task)
                self.count("master/tasks_lost")
            self._status_update(fw, status)
            self.publish({"type": "TASK_UPDATED", "task_updated": {
                "framework_id": _id(fid), "status": status, "state": status["state"]}})
        for fid in frameworks | {f for f, fw in self.frameworks.items() if fw.connected}:
            self.send_framework(fid, {"type": "FAILURE", "failure": {"agent_id": _id(agent.agent_id)}})
        self.publish({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": _id(agent.agent_id)}})

    def status_update(self, agent_id: str, body: dict[str, Any]) -> None:
        """A status update from an agent (retried by it until acknowledged)."""
        fid = _value(body.get("framework_id"), "framework_id")
        status = body.get("status")
        if not isinstance(status, dict):
            raise InvalidRequest("Expecting 'status' to be present")
        tid = _value(status.get("task_id"), "status.task_id")
        state = status.get("state")
        if not isinstance(state, str):
            raise InvalidRequest("Expecting 'status.state' to be present")
        uid = status.get("uuid")
        status = dict(status)
        status.setdefault("agent_id", _id(agent_id))
        fw = self.frameworks.get(fid)
        if fw is None:
            # No such framework any more: acknowledge on its behalf so the agent stops retrying.
            if isinstance(uid, str):
                self.send_agent(agent_id, {"type": "ACKNOWLEDGE", "acknowledge": {
                    "framework_id": _id(fid), "task_id": _id(tid), "uuid": uid}})
            return
        task = fw.tasks.get(tid) or fw.unreachable_tasks.get(tid)
        now = self.clock.now()
        if task is not None:
            if task.state != state or task.latest is None or task.latest.get("uuid") != uid:
                changed = task.state != state
                if task.state == "TASK_UNREACHABLE":
                    fw.unreachable_tasks.pop(tid, None)
                    fw.tasks[tid] = task
                task.record(status, now)
                if changed:
                    self.count(f"master/tasks_{state[5:].lower()}")
                    self.publish({"type": "TASK_UPDATED", "task_updated": {
                        "framework_id": _id(fid), "status": status, "state": state}})
            if isinstance(uid, str):
                task.pending_uuid = uid
            if is_terminal(state):
                self._release_task(task)
                self.allocate_soon()
                if not isinstance(uid, str):
                    self._complete_task(fw, task)
        if fw.connected:
            self._status_update(fw, status)

    def exited_executor(self, agent_id: str, body: dict[str, Any]) -> None:
        fid = _value(body.get("framework_id"), "framework_id")
        eid = _value(body.get("executor_id"), "executor_id")
        fw = self.frameworks.get(fid)
        if fw is None:
            return
        ex = fw.executors.pop((agent_id, eid), None)
        if ex is not None and ex.get("resources"):
            try:
                res = Resources.from_json(ex["resources"])
            except InvalidRequest:
                res = Resources.empty()
            if res and agent_id in self.agents:
                role = min(fw.roles) if fw.roles else "*"
                self.allocator.recover(fid, role, agent_id, res)
        status = body.get("status")
        failure: dict[str, Any] = {"agent_id": _id(agent_id), "executor_id": _id(eid)}
        failure["status"] = status if isinstance(status, int) else 0
        self.send_framework(fid, {"type": "FAILURE", "failure": failure})

    def executor_message(self, agent_id: str, body: dict[str, Any]) -> None:
        fid = _value(body.get("framework_id"), "framework_id")
        eid = _value(body.get("executor_id"), "executor_id")
        self.send_framework(fid, {"type": "MESSAGE", "message": {
            "agent_id": _id(agent_id), "executor_id": _id(eid), "data": body.get("data", "")}})

    # ------------------------------------------------------------------ loops

    async def _allocation_loop(self) -> None:
        while True:
            await self.clock.sleep(self.flags.allocation_interval)
            try:
                self.run_allocation()
            except Exception:
                log.exception("allocation cycle failed")

    async def _ping_loop(self) -> None:
        while True:
            await self.clock.sleep(self.flags.agent_ping_timeout)
            for agent in list(self.agents.values()):
                if not agent.reachable:
                    continue
                if agent.awaiting_pong or agent.agent_id not in self.agent_streams:
                    agent.missed_pings += 1
                    if agent.missed_pings >= self.flags.max_agent_ping_timeouts:
                        self.mark_unreachable(agent)
                        continue
                agent.awaiting_pong = True
                self.send_agent(agent.agent_id, {"type": "PING"})

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.flags.heartbeat_interval)
            for stream in [*self.framework_streams.values(), *self.operator_streams]:
                stream.send({"type": "HEARTBEAT"})

    async def _offer_timeout_loop(self) -> None:
        assert self.flags.offer_timeout
        while True:
            await self.clock.sleep(min(self.flags.offer_timeout / 2, 1.0))
            now = self.clock.now()
            for offer in [o for o in self.offers.values() if now - o.created >= self.flags.offer_timeout]:
                self.rescind_offer(offer)

    # ------------------------------------------------------------------ operator JSON pieces

    def _task_op_json(self, task: Task) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": task.name,
            "task_id": _id(task.task_id),
            "framework_id": _id(task.framework_id),
            "agent_id": _id(task.agent_id),
            "state": task.state,
            "resources": task.resources.to_json(),
            "statuses": [s for s in task.statuses],
        }
        if task.executor_id:
            body["executor_id"] = _id(task.executor_id)
        return body

    def _framework_op_json(self, fw: Framework) -> dict[str, Any]:
        return {"framework_info": fw.info, "active": fw.active, "connected": fw.connected,
                "recovered": fw.recovered}

    def _agent_op_json(self, agent: Agent) -> dict[str, Any]:
        return {"agent_info": agent.info_json(), "active": agent.reachable and agent.connected,
                "version": agent.version or MESOS_VERSION, "pid": agent.pid,
                "registered_time": {"nanoseconds": int(agent.registered_time * 1e9)},
                "total_resources": agent.resources.to_json()}


def validate_role(role: Any) -> None:
    """Mesos's role name rules."""
    if not isinstance(role, str):
        raise InvalidRequest(f"Invalid role {role!r}: not a string")
    if role == "*":
        return
    if role in ("", ".", "..") or role.startswith(("-", "/")) or role.endswith("/") or "//" in role:
        raise InvalidRequest(f"Invalid role {role!r}")
    if any(ch.isspace() or ord(ch) < 32 or ch in "\x7f" for ch in role):
        raise InvalidRequest(f"Invalid role {role!r}: no whitespace or control characters allowed")
    if any(part in (".", "..") or part.startswith("-") for part in role.split("/")):
        raise InvalidRequest(f"Invalid role {role!r}")


def validate_framework_info(info: dict[str, Any]) -> None:
    """The FrameworkInfo checks Mesos makes on SUBSCRIBE, with messages naming the field."""
    for required in ("user", "name"):
        if not isinstance(info.get(required), str):
            raise InvalidRequest(f"Expecting 'framework_info.{required}' to be present")
    caps = info.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, dict) for c in caps):
        raise InvalidRequest("Expecting 'framework_info.capabilities' to be a list of objects")
    multi_role = any(c.get("type") == "MULTI_ROLE" for c in caps)
    if "failover_timeout" in info and (
        not isinstance(info["failover_timeout"], (int, float)) or info["failover_timeout"] < 0
    ):
        raise InvalidRequest("Expecting 'framework_info.failover_timeout' to be a non-negative number")
    if "checkpoint" in info and not isinstance(info["checkpoint"], bool):
        raise InvalidRequest("Expecting 'framework_info.checkpoint' to be a boolean")
    if multi_role:
        if "role" in info:
            raise InvalidRequest("'framework_info.role' must not be set with the MULTI_ROLE capability")
        roles = info.get("roles", [])
        if not isinstance(roles, list):
            raise InvalidRequest("Expecting 'framework_info.roles' to be a list")
        if len(set(roles)) != len(roles):
            raise InvalidRequest("'framework_info.roles' contains duplicate roles")
        for role in roles:
            validate_role(role)
    else:
        if info.get("roles"):
            raise InvalidRequest("'framework_info.roles' needs the MULTI_ROLE capability")
        validate_role(info.get("role", "*"))
    if "id" in info:
        _value(info["id"], "framework_info.id")


def _suppressed_roles(body: dict[str, Any]) -> set[str]:
    roles = body.get("suppressed_roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidRequest("Expecting 'suppressed_roles' to be a list of strings")
    return set(roles)


def refuse_seconds(filters: Any) -> float:
    if not isinstance(filters, dict) or "refuse_seconds" not in filters:
        return DEFAULT_REFUSE_SECONDS
    value = filters["refuse_seconds"]
    if not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidRequest("Expecting 'filters.refuse_seconds' to be a number")
    return max(0.0, min(float(value), MAX_REFUSE_SECONDS))


def _launched_tasks(operations: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for op in operations:
        if not isinstance(op, dict):
            continue
        if op.get("type") == "LAUNCH":
            out += [t for t in (op.get("launch") or {}).get("task_infos") or [] if isinstance(t, dict)]
        elif op.get("type") == "LAUNCH_GROUP":
            out += [t for t in ((op.get("launch_group") or {}).get("task_group") or {}).get("tasks") or []
                    if isinstance(t, dict)]
    return out
