"""The Marathon service: the shell around the pure cores.

Theory of operation. The service keeps the apps (with their version history), the
explicit groups, the running deployments and the instances, all persisted through the
store before any API call returns. A control loop (`_reconcile_loop`, woken by events
and every `TICK` seconds) asks the planner what each running deployment's current step
needs (`planner.decide`) and, for apps outside deployments, what keeps them at their
instance count (a ScaleApplication decision). A decision to launch creates *scheduled*
instances at once (no agent yet, state TASK_STAGING), so that the next decision counts
them; offers turn scheduled instances into tasks when the app's launch backoff allows.
Status updates from the master move instances through their Mesos states; terminal
ones remove them (and feed the backoff), unreachable ones are kept until
`unreachableStrategy` says to replace and then expunge them.

Health checks (see health.py): one check per task is handed to the agent in its
TaskInfo (the app's Mesos-run check if any, else its first); its results arrive as
`healthy` in status updates. The service probes the app's other HTTP/HTTPS/TCP checks
itself (`_probe`, one task per running instance and check). Each result moves the
instance's per-check `Health`; the instance is healthy when all its checks are. A task
killed for failing a check, by the agent or by the service after `maxConsecutiveFailures`,
is replaced with backoff and recorded as the app's lastTaskFailure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from lichen import __version__
from lichen.clock import Clock
from lichen.errors import Conflict, InvalidRequest, NotFound
from lichen.frameworks.daemon import FrameworkFlags, cancel_tasks, start_scheduler, wait_woken
from lichen.frameworks.marathon import appdef, events, health, paths, planner
from lichen.frameworks.marathon.appdef import AppDefinition, GroupDefinition, ValidationFailed
from lichen.frameworks.marathon.callbacks import CallbackSender
from lichen.frameworks.marathon.constraints import AgentView, satisfies
from lichen.frameworks.marathon.launch_queue import LaunchQueue
from lichen.frameworks.marathon.model import Action, DeploymentPlan, Instance
from lichen.frameworks.marathon.service_api import AppLocked, QueueEntry
from lichen.frameworks.offers import offer_attributes, offer_resources
from lichen.frameworks.scheduler_client import SchedulerClient
from lichen.resources import Resources
from lichen.state.store import Store

log = logging.getLogger(__name__)

TICK = 0.25
MAX_VERSIONS = 50
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_DROPPED",
            "TASK_GONE", "TASK_GONE_BY_OPERATOR"}
UNREACHABLE = {"TASK_UNREACHABLE", "TASK_LOST", "TASK_UNKNOWN"}
FAILED = {"TASK_FAILED", "TASK_FINISHED", "TASK_ERROR"}


@dataclass(frozen=True, slots=True)
class MarathonFlags(FrameworkFlags):
    port: int = 8080
    framework_name: str = "marathon"
    mesos_user: str = "root"
    decline_offer_duration: float = 120.0
    reconciliation_interval: float = 600.0
    local_port_min: int = 10000
    local_port_max: int = 20000


def _key(app_id: str) -> str:
    return quote(app_id, safe="")


def _config_fingerprint(app: AppDefinition) -> str:
    raw = {k: v for k, v in app.raw.items() if k not in ("instances", "version", "versionInfo")}
    # A restart stamps a new lastConfigChangeAt: it is part of the config.
    info = app.raw.get("versionInfo") or {}
    raw["_config_at"] = info.get("lastConfigChangeAt")
    return hashlib.sha1(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _instance_to_json(i: Instance) -> dict[str, Any]:
    d = dataclasses.asdict(i)
    del d["health"]   # health check results live in memory only, as in Marathon
    d["ports"] = list(i.ports)
    d["service_ports"] = list(i.service_ports)
    return d


def _instance_from_json(d: dict[str, Any]) -> Instance:
    d = dict(d)
    d["ports"] = tuple(d.get("ports") or ())
    d["service_ports"] = tuple(d.get("service_ports") or ())
    return Instance(**d)


def _plan_to_json(plan: DeploymentPlan) -> dict[str, Any]:
    return {
        "id": plan.id, "version": plan.version, "affected_apps": list(plan.affected_apps),
        "steps": [[{"action": a.action, "app": a.app} for a in step] for step in plan.steps],
        "original": plan.original, "target": plan.target, "current_step": plan.current_step,
    }


def _plan_from_json(d: dict[str, Any]) -> DeploymentPlan:
    return DeploymentPlan(
        id=d["id"], version=d["version"], affected_apps=tuple(d["affected_apps"]),
        steps=tuple(tuple(Action(a["action"], a["app"]) for a in step) for step in d["steps"]),
        original=d.get("original") or {}, target=d.get("target") or {},
        current_step=int(d.get("current_step", 0)),
    )


class MarathonService:
    def __init__(self, flags: MarathonFlags, store: Store, clock: Clock) -> None:
        self.flags = flags
        self.store = store
        self.clock = clock
        self.apps: dict[str, AppDefinition] = {}
        self.versions: dict[str, dict[str, AppDefinition]] = {}
        self.groups: dict[str, dict[str, Any]] = {}          # explicit groups: {dependencies, version}
        self.group_history: dict[str, list[str]] = {}
        self.insts: dict[str, Instance] = {}
        self.by_app: dict[str, dict[str, Instance]] = {}       # app id -> instance id -> instance
        self.by_task: dict[str, str] = {}                      # task id -> instance id
        self.running: dict[str, DeploymentPlan] = {}           # deployments, in start order
        self.launch_queue = LaunchQueue()
        self.failures: dict[str, dict[str, Any]] = {}
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._callbacks: list[str] = []
        self.sender = CallbackSender()
        self.client: SchedulerClient | None = None
        self.address = ""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._declined = False
        self._lock = asyncio.Lock()
        self._sync_lock = asyncio.Lock()
        self._writes: dict[str, bytes | None] = {}
        self._acks: list[dict[str, Any]] = []
        self._dirty = asyncio.Event()
        self._owned: set[asyncio.Task[None]] = set()
        self._checking: set[str] = set()
        self._probing: set[tuple[str, int]] = set()            # (instance id, check index) probed
        self._health_killed: dict[str, str] = {}               # instance id -> why the service killed it
        self._last_reconcile = 0.0
        self.agents_seen: dict[str, AgentView] = {}

    # ================================================================ lifecycle

    async def recover(self) -> None:
        s = self.store
        for raw in (await s.list("marathon/apps/")).values():
            app = AppDefinition(id=json.loads(raw)["id"], raw=json.loads(raw))
            self.apps[app.id] = app
        for raw in (await s.list("marathon/versions/")).values():
            data = json.loads(raw)
            self.versions.setdefault(data["id"], {})[data["version"]] = AppDefinition(id=data["id"], raw=data)
        for raw in (await s.list("marathon/groups/")).values():
            data = json.loads(raw)
            self.groups[data["id"]] = data
        for raw in (await s.list("marathon/deployments/")).values():
            plan = _plan_from_json(json.loads(raw))
            self.running[plan.id] = plan
        for raw in (await s.list("marathon/instances/")).values():
            self._remember(_instance_from_json(json.loads(raw)))
        cb = await s.get("marathon/callbacks")
        self._callbacks = json.loads(cb) if cb else []
        self.sender.set_urls(self._callbacks)
        log.info("recovered %d apps, %d instances, %d deployments",
                 len(self.apps), len(self.insts), len(self.running))

    async def start(self) -> None:
        self.client = await start_scheduler(
            self.flags, self.store, id_key="marathon/framework_id", user=self.flags.mesos_user,
            address=self.address, capabilities=["PARTITION_AWARE", "TASK_KILLING_STATE"], on_event=self._on_event)
        self.sender.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._control_loop(), name="marathon-control"),
                       loop.create_task(self._flush_loop(), name="marathon-flush")]

    async def stop(self) -> None:
        await cancel_tasks([*self._tasks, *self._owned])
        await self._sync()
        if self.client is not None:
            await self.client.stop()
        await self.sender.stop()

    # ================================================================ reads

    def list_apps(self) -> list[AppDefinition]:
        return [self.apps[k] for k in sorted(self.apps)]

    def get_app(self, app_id: str) -> AppDefinition | None:
        return self.apps.get(app_id)

    def app_versions(self, app_id: str) -> list[str]:
        if app_id not in self.apps:
            raise NotFound(f"App '{app_id}' does not exist")
        return sorted(self.versions.get(app_id, {}), reverse=True)

    def app_version(self, app_id: str, version: str) -> AppDefinition | None:
        return self.versions.get(app_id, {}).get(version)

    def instances(self, app_id: str | None = None) -> list[Instance]:
        out = self.insts.values() if app_id is None else self.by_app.get(app_id, {}).values()
        return sorted(out, key=lambda i: (i.app_id, i.staged_at, i.instance_id))

    def _remember(self, inst: Instance) -> None:
        self.insts[inst.instance_id] = inst
        self.by_app.setdefault(inst.app_id, {})[inst.instance_id] = inst
        self.by_task[inst.task_id] = inst.instance_id

    def _drop(self, inst: Instance) -> None:
        self.insts.pop(inst.instance_id, None)
        self.by_task.pop(inst.task_id, None)
        mine = self.by_app.get(inst.app_id)
        if mine is not None:
            mine.pop(inst.instance_id, None)
            if not mine:
                del self.by_app[inst.app_id]

    def last_task_failure(self, app_id: str) -> dict[str, Any] | None:
        return self.failures.get(app_id)

    def deployments(self) -> list[DeploymentPlan]:
        return list(self.running.values())

    def deployment_ids_for(self, app_id: str) -> list[str]:
        return [p.id for p in self.running.values() if app_id in p.affected_apps]

    def _group_ids(self) -> set[str]:
        ids = {"/"} | set(self.groups)
        for app_id in self.apps:
            parent = paths.parent(app_id)
            while parent != "/":
                ids.add(parent)
                parent = paths.parent(parent)
        for gid in list(ids):
            parent = gid
            while parent != "/":
                parent = paths.parent(parent)
                ids.add(parent)
        return ids

    def _build_group(self, gid: str, ids: set[str]) -> GroupDefinition:
        meta = self.groups.get(gid, {})
        apps = tuple(self.apps[a] for a in sorted(self.apps) if paths.parent(a) == gid)
        groups = tuple(self._build_group(g, ids) for g in sorted(ids) if g != "/" and paths.parent(g) == gid)
        version = meta.get("version") or max([a.version or "" for a in apps] + [g.version or "" for g in groups] + [""])
        return GroupDefinition(id=gid, apps=apps, groups=groups,
                               dependencies=tuple(meta.get("dependencies", ())), version=version or None)

    def root_group(self) -> GroupDefinition:
        return self._build_group("/", self._group_ids())

    def get_group(self, group_id: str) -> GroupDefinition | None:
        ids = self._group_ids()
        return self._build_group(group_id, ids) if group_id in ids else None

    def group_versions(self, group_id: str) -> list[str]:
        if self.get_group(group_id) is None:
            raise NotFound(f"Group '{group_id}' does not exist")
        return sorted(set(self.group_history.get(group_id, [])), reverse=True)

    def queue(self) -> list[QueueEntry]:
        now = self.clock.now()
        out: list[QueueEntry] = []
        waiting: dict[str, list[Instance]] = {}
        for i in self.insts.values():
            if not i.agent_id:
                waiting.setdefault(i.app_id, []).append(i)
        for app_id in sorted(set(waiting) | set(self.launch_queue.delayed_apps())):
            if app_id not in self.apps:
                continue
            insts = waiting.get(app_id, [])
            since = self.launch_queue.since(app_id) or min((i.staged_at for i in insts), default=now)
            out.append(QueueEntry(app_id, len(insts), self.launch_queue.delay_left(app_id, now),
                                  self.launch_queue.overdue(app_id, now), since))
        return out

    def info(self) -> dict[str, Any]:
        return {
            "framework_id": self.client.framework_id if self.client else None,
            "master": self.flags.master,
            "leader": self.address,
            "elected": True,
            "version": "1.10.0",
            "lichen_version": __version__,
            "http_port": int(self.address.rsplit(":", 1)[1]) if self.address else self.flags.port,
            "hostname": self.flags.hostname or self.flags.host,
            "mesos_user": self.flags.mesos_user,
        }

    # ================================================================ events

    def subscribe_events(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10000)
        self.subscribers.add(q)
        return q

    def unsubscribe_events(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for q in list(self.subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self.subscribers.discard(q)  # a stalled reader loses its stream
        self.sender.send(event)

    async def add_callback(self, url: str) -> None:
        if url not in self._callbacks:
            self._callbacks.append(url)
            await self.store.put("marathon/callbacks", json.dumps(self._callbacks).encode())
            self.sender.set_urls(self._callbacks)

    async def remove_callback(self, url: str) -> None:
        if url in self._callbacks:
            self._callbacks.remove(url)
            await self.store.put("marathon/callbacks", json.dumps(self._callbacks).encode())
            self.sender.set_urls(self._callbacks)

    def callbacks(self) -> list[str]:
        return list(self._callbacks)

    # ================================================================ changes

    def _check_locks(self, app_ids: Iterable[str], force: bool) -> list[DeploymentPlan]:
        locking = [p for p in self.running.values() if set(p.affected_apps) & set(app_ids)]
        if locking and not force:
            raise AppLocked([p.id for p in locking])
        return locking

    def _spec(self, app: AppDefinition, apps: dict[str, AppDefinition]) -> planner.Spec:
        deps: list[str] = []
        for dep in app.dependencies:
            if dep in apps:
                deps.append(dep)
            else:  # a dependency on a group: every app inside it
                deps += [a for a in apps if paths.is_ancestor(dep, a)]
        parent = paths.parent(app.id)
        while True:
            for dep in self.groups.get(parent, {}).get("dependencies", []):
                deps += [a for a in apps if a == dep or paths.is_ancestor(dep, a)]
            if parent == "/":
                break
            parent = paths.parent(parent)
        deps = [d for d in dict.fromkeys(deps) if d != app.id]
        return planner.Spec(app.id, app.instances, _config_fingerprint(app), tuple(deps))

    async def _deploy(
        self, target_apps: dict[str, AppDefinition | None], *, force: bool,
        restart: Iterable[str] = (), group_changes: dict[str, dict[str, Any] | None] | None = None,
    ) -> DeploymentPlan:
        """Change apps (None = remove) in one deployment; persist; start it."""
        async with self._lock:
            now = self.clock.now()
            version = appdef.now_version(now)
            restart = set(restart)
            locking = self._check_locks(target_apps, force)
            original = {a: self.apps[a] for a in target_apps if a in self.apps}
            new_apps = dict(self.apps)
            used_ports = {p for a in self.apps.values() if a.id not in target_apps for p in a.service_ports}
            stamped: dict[str, AppDefinition] = {}
            for app_id, app in target_apps.items():
                if app is None:
                    new_apps.pop(app_id, None)
                    continue
                before = self.apps.get(app_id)
                app = appdef.assign_service_ports(app, used_ports, before, port_min=self.flags.local_port_min,
                                                  port_max=self.flags.local_port_max)
                used_ports |= set(app.service_ports)
                if before is None:
                    config, scaling = True, True
                elif app_id in restart:
                    config, scaling = True, False
                else:
                    config = appdef.is_config_change(before, app)
                    scaling = before.instances != app.instances or not config
                    # The version history carries on from the current definition.
                    app = AppDefinition(id=app.id, raw={**app.raw, "versionInfo": before.raw.get("versionInfo")})
                app = appdef.with_version(app, version, config_change=config, scaling=scaling)
                stamped[app_id] = app
                new_apps[app_id] = app
            specs_before = {a: self._spec(app, self.apps) for a, app in original.items()}
            specs_after = {a: self._spec(app, new_apps) for a, app in stamped.items()}
            try:
                plan = planner.plan(specs_before, specs_after, restart=restart, plan_id=str(uuid.uuid4()),
                                    version=version)
            except ValueError as e:
                raise ValidationFailed.at("/dependencies", str(e)) from None
            plan = dataclasses.replace(
                plan,
                original={a: app.raw for a, app in original.items()},
                target={a: (stamped[a].raw if a in stamped else None) for a in target_apps},
            )
            # Persist everything first: what the API answers must survive a kill -9.
            writes: dict[str, bytes | None] = {}
            for p in locking:
                writes[f"marathon/deployments/{p.id}"] = None
            for app_id in target_apps:
                if app_id in stamped:
                    raw = json.dumps(stamped[app_id].raw).encode()
                    writes[f"marathon/apps/{_key(app_id)}"] = raw
                    writes[f"marathon/versions/{_key(app_id)}/{version}"] = raw
                else:
                    writes[f"marathon/apps/{_key(app_id)}"] = None
                    for v in self.versions.get(app_id, {}):
                        writes[f"marathon/versions/{_key(app_id)}/{v}"] = None
            for gid, meta in (group_changes or {}).items():
                writes[f"marathon/groups/{_key(gid)}"] = None if meta is None else json.dumps(meta).encode()
            if plan.steps:
                writes[f"marathon/deployments/{plan.id}"] = json.dumps(_plan_to_json(plan)).encode()
            await self.store.put_many(writes)
            for p in locking:
                self.running.pop(p.id, None)
                self.publish(events.deployment_failed(p, "canceled by a forced deployment", now=now))
            for app_id in target_apps:
                if app_id in stamped:
                    self.apps[app_id] = stamped[app_id]
                    hist = self.versions.setdefault(app_id, {})
                    hist[version] = stamped[app_id]
                    for old in sorted(hist)[:-MAX_VERSIONS]:
                        del hist[old]
                    if app_id not in original or appdef.is_config_change(original[app_id], stamped[app_id]) \
                            or app_id in restart:
                        self.launch_queue.reset(app_id)
                else:
                    self.apps.pop(app_id, None)
                    self.versions.pop(app_id, None)
                    self.launch_queue.reset(app_id)
                    self.failures.pop(app_id, None)
            for gid, meta in (group_changes or {}).items():
                if meta is None:
                    self.groups.pop(gid, None)
                else:
                    self.groups[gid] = meta
                    self.group_history.setdefault(gid, []).append(version)
            for gid in {paths.parent(a) for a in target_apps}:
                self.group_history.setdefault(gid, []).append(version)
            if plan.steps:
                self.running[plan.id] = plan
                self.publish(events.group_change_success("/", version, now=now))
                self.publish(events.deployment_info(plan, 0, now=now))
            self._wake.set()
            return plan

    async def put_apps(self, apps: list[Any], *, force: bool) -> DeploymentPlan:
        return await self._deploy({a.id: a for a in apps}, force=force)

    async def create_app(self, app: Any, *, force: bool) -> tuple[AppDefinition, DeploymentPlan]:
        if app.id in self.apps:
            raise Conflict(f"An app with id [{app.id}] already exists.")
        if app.id in self._group_ids():
            raise Conflict(f"A group with id [{app.id}] already exists.")
        plan = await self._deploy({app.id: app}, force=force)
        return self.apps[app.id], plan

    async def rollback_app(self, app_id: str, version: str, *, force: bool) -> DeploymentPlan:
        old = self.app_version(app_id, version)
        if old is None:
            raise NotFound(f"App '{app_id}' does not exist in version {version}")
        raw = {k: v for k, v in old.raw.items() if k not in ("version", "versionInfo")}
        raw["versionInfo"] = (self.apps[app_id].raw.get("versionInfo") if app_id in self.apps else None)
        return await self._deploy({app_id: AppDefinition(id=app_id, raw=raw)}, force=force)

    async def delete_app(self, app_id: str, *, force: bool) -> DeploymentPlan:
        if app_id not in self.apps:
            raise NotFound(f"App '{app_id}' does not exist")
        return await self._deploy({app_id: None}, force=force)

    async def restart_app(self, app_id: str, *, force: bool) -> DeploymentPlan:
        app = self.apps.get(app_id)
        if app is None:
            raise NotFound(f"App '{app_id}' does not exist")
        return await self._deploy({app_id: app}, force=force, restart={app_id})

    async def kill_instances(
        self, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
    ) -> tuple[list[Instance], DeploymentPlan | None]:
        if scale and wipe:
            raise InvalidRequest("You cannot use scale and wipe at the same time.")
        found = [self.insts[self.by_task[t]] for t in task_ids if t in self.by_task
                 and self.by_task[t] in self.insts]
        plan: DeploymentPlan | None = None
        if scale:
            per_app: dict[str, int] = {}
            for inst in found:
                per_app[inst.app_id] = per_app.get(inst.app_id, 0) + 1
            targets = {a: appdef.with_instances(self.apps[a], max(0, self.apps[a].instances - n))
                       for a, n in per_app.items() if a in self.apps}
            if targets:
                plan = await self._deploy(dict(targets), force=force)
        for inst in found:
            await self._kill(inst, wipe=wipe)
        await self._sync()
        return found, plan

    async def put_group(self, group: Any, *, force: bool) -> DeploymentPlan:
        target: dict[str, AppDefinition | None] = dict(appdef.flatten_apps(group))
        # Apps that were in the group and are not any more are removed.
        for app_id in self.apps:
            if paths.is_ancestor(group.id, app_id) and app_id not in target:
                target[app_id] = None
        metas = self._group_metas(group)
        return await self._deploy(target, force=force, group_changes=metas)

    def _group_metas(self, group: GroupDefinition) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {
            group.id: {"id": group.id, "dependencies": list(group.dependencies)}}
        for g in group.groups:
            out.update(self._group_metas(g))
        return out

    async def create_group(self, group: Any, *, force: bool) -> DeploymentPlan:
        if self.get_group(group.id) is not None and group.id != "/":
            raise Conflict(f"Group {group.id} is already created. Use PUT to change this group.")
        return await self.put_group(group, force=force)

    async def delete_group(self, group_id: str, *, force: bool) -> DeploymentPlan:
        if self.get_group(group_id) is None:
            raise NotFound(f"Group '{group_id}' does not exist")
        target: dict[str, AppDefinition | None] = {a: None for a in self.apps if paths.is_ancestor(group_id, a)}
        metas: dict[str, dict[str, Any] | None] = {
            g: None for g in self.groups if g == group_id or paths.is_ancestor(group_id, g)}
        return await self._deploy(target, force=force, group_changes=metas)

    async def cancel_deployment(self, deployment_id: str, *, force: bool) -> DeploymentPlan | None:
        plan = self.running.get(deployment_id)
        if plan is None:
            raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
        now = self.clock.now()
        if force:
            await self.store.delete(f"marathon/deployments/{plan.id}")
            self.running.pop(plan.id, None)
            self.publish(events.deployment_failed(plan, "canceled", now=now))
            return None
        back: dict[str, AppDefinition | None] = {}
        for app_id, raw in plan.original.items():
            back[app_id] = None if raw is None else AppDefinition(id=app_id, raw=dict(raw))
        for app_id in plan.target:
            back.setdefault(app_id, None)
        return await self._deploy(back, force=True)

    async def reset_delay(self, app_id: str) -> None:
        had_backoff = app_id in self.apps and self.launch_queue.reset(app_id)
        waiting = any(not i.agent_id for i in self.by_app.get(app_id, {}).values())
        if not had_backoff and not waiting:
            raise NotFound(f"Application {app_id} not found in tasks queue.")
        self._wake.set()

    # ================================================================ control loop

    async def _control_loop(self) -> None:
        while True:
            await wait_woken(self._wake, TICK)
            try:
                async with self._lock:
                    await self._step()
            except Exception:
                log.exception("marathon control step failed")

    def _live(self, app_id: str, now: float) -> list[Instance]:
        """Instances that count for planning: not UnreachableInactive."""
        app = self.apps.get(app_id)
        inactive_after = app.unreachable_inactive_after if app else None
        out = []
        for i in self.by_app.get(app_id, {}).values():
            if (i.unreachable_since is not None and inactive_after is not None
                    and now - i.unreachable_since >= inactive_after):
                continue
            out.append(i)
        return out

    async def _step(self) -> None:
        now = self.clock.now()
        busy: set[str] = set()
        for plan in list(self.running.values()):
            busy |= set(plan.affected_apps)
            await self._advance(plan, now)
        for app_id, app in self.apps.items():
            if app_id not in busy:
                spec = self._spec(app, self.apps)
                await self._apply(Action("ScaleApplication", app_id), spec, app, now, steady=True)
        await self._expunge_unreachable(now)
        self._start_readiness_checks()
        self._start_health_checks()
        if now - self._last_reconcile >= self.flags.reconciliation_interval:
            self._last_reconcile = now
            self._spawn(self._reconcile())
        wanted = any(not i.agent_id and self.launch_queue.ready(i.app_id, now) for i in self.insts.values())
        if self._declined and wanted and self.client is not None and await self.client.call("REVIVE"):
            log.debug("revived offers for scheduled instances")
            self._declined = False

    def _spawn(self, coro: Any) -> None:
        """Run `coro` as a task this service owns (cancelled on stop)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._owned.add(task)
        task.add_done_callback(self._owned.discard)

    def _start_readiness_checks(self) -> None:
        """Running instances of apps with readiness checks that are not ready yet get one
        checker each (Marathon's readiness checks, run from here over HTTP)."""
        for inst in self.insts.values():
            if inst.ready or inst.state != "TASK_RUNNING" or inst.instance_id in self._checking:
                continue
            app = self.apps.get(inst.app_id)
            if app is None or not app.readiness_checks:
                continue
            self._checking.add(inst.instance_id)
            self._spawn(self._readiness(app, inst))

    async def _readiness(self, app: AppDefinition, inst: Instance) -> None:
        check = app.readiness_checks[0]
        names = app.port_names
        name = check.get("portName")
        index = names.index(name) if name in names else 0
        port = inst.ports[index] if index < len(inst.ports) else None
        scheme = "https" if check.get("protocol") == "HTTPS" else "http"
        url = f"{scheme}://{inst.host}:{port}{check.get('path', '/')}"
        ok_codes = set(check.get("httpStatusCodesForReady") or [200])
        interval = float(check.get("intervalSeconds", 30))
        timeout = aiohttp.ClientTimeout(total=float(check.get("timeoutSeconds", 10)))
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while inst.instance_id in self.insts and port is not None:
                    try:
                        async with session.get(url, ssl=False) as r:
                            if r.status in ok_codes:
                                break
                    except (TimeoutError, aiohttp.ClientError, OSError):
                        pass
                    await asyncio.sleep(interval)
                else:
                    return
            current = self.insts.get(inst.instance_id)
            if current is not None:
                self._save(dataclasses.replace(current, ready=True))
                self._wake.set()
        finally:
            self._checking.discard(inst.instance_id)

    def _app_for(self, inst: Instance) -> AppDefinition | None:
        """The app definition `inst` was launched with (the current one if no longer kept)."""
        return self.versions.get(inst.app_id, {}).get(inst.version) or self.apps.get(inst.app_id)

    def _start_health_checks(self) -> None:
        """Running instances get one prober per health check the service runs itself."""
        for inst in self.insts.values():
            if inst.state != "TASK_RUNNING" or inst.killing or inst.instance_id in self._health_killed:
                continue
            app = self._app_for(inst)
            if app is None or len(app.health_checks) < 2:
                continue  # a single check is the agent's
            for index in health.marathon_checks(app.health_checks):
                key = (inst.instance_id, index)
                if key not in self._probing:
                    self._probing.add(key)
                    self._spawn(self._probe(app, inst, index))

    def _probed(self, inst: Instance) -> Instance | None:
        """The live instance behind `inst` while its checks should run, else None."""
        current = self.insts.get(inst.instance_id)
        if (current is None or current.task_id != inst.task_id or current.state != "TASK_RUNNING"
                or current.killing or inst.instance_id in self._health_killed):
            return None
        return current

    async def _probe(self, app: AppDefinition, inst: Instance, index: int) -> None:
        """Run health check `index` of `app` against `inst` every intervalSeconds until
        the instance stops running or the check has it killed."""
        policy = health.CheckPolicy.from_json(app.health_checks[index])
        port = policy.target_port(inst.ports)
        try:
            async with aiohttp.ClientSession() as session:
                while self._probed(inst) is not None:
                    ok, cause = await _probe_once(session, policy, inst.host, port)
                    current = self._probed(inst)
                    if current is None:
                        return
                    if ok is not None:
                        outcome = self._record_health(current, app, index, ok, cause, self.clock.now())
                        if outcome.kill:
                            await self._kill_unhealthy(current, index, outcome.health)
                            return
                    await self.clock.sleep(max(policy.interval, 0.1))   # intervalSeconds 0 is valid
        except Exception:
            log.exception("health check %d of %s failed to run", index, inst.instance_id)
        finally:
            self._probing.discard((inst.instance_id, index))

    def _record_health(self, inst: Instance, app: AppDefinition, index: int, ok: bool, cause: str,
                       now: float, *, by_agent: bool = False) -> health.Outcome:
        """Fold one result of check `index` into `inst`, publish what changed, and return
        the outcome (the caller kills on `kill`)."""
        checks = app.health_checks
        results = list(inst.health)[:len(checks)]
        results += [None] * (len(checks) - len(results))
        # The agent applies the grace period itself before it reports.
        started = 0.0 if by_agent else (inst.started_at if inst.started_at is not None else inst.staged_at)
        outcome = health.record(results[index] or health.Health(), ok, cause=cause, now=now,
                                started_at=started, policy=health.CheckPolicy.from_json(checks[index]))
        results[index] = outcome.health
        verdict = health.combine([results[i] for i in health.counted_checks(checks)])
        after = dataclasses.replace(inst, health=tuple(results), healthy=verdict)
        if verdict != inst.healthy:
            self._save(after)
            self._wake.set()
        else:
            self._remember(after)   # only the details moved: nothing to persist
        if outcome.failed:
            self.publish(events.failed_health_check_event(inst.app_id, inst.instance_id, checks[index], now=now))
        if verdict is not None and verdict != inst.healthy:
            self.publish(events.health_status_changed_event(inst.app_id, inst.instance_id, inst.version,
                                                            verdict, now=now))
            self.publish(events.instance_health_changed_event(inst.instance_id, inst.app_id, inst.version,
                                                              verdict, now=now))
        return outcome

    async def _kill_unhealthy(self, inst: Instance, index: int, result: health.Health) -> None:
        """Kill a task that failed check `index` maxConsecutiveFailures times; its
        TASK_KILLED is then recorded like an agent's health kill (see `_update`)."""
        reason = (f"health check {index} failed {result.consecutive_failures} times in a row: "
                  f"{result.last_failure_cause}")
        log.info("killing unhealthy task %s: %s", inst.task_id, reason)
        self._health_killed[inst.instance_id] = reason
        sent = self.client is not None and await self.client.call(
            "KILL", {"task_id": {"value": inst.task_id}, "agent_id": {"value": inst.agent_id}})
        if not sent:
            self._health_killed.pop(inst.instance_id, None)   # probe again; the next failure retries

    async def _advance(self, plan: DeploymentPlan, now: float) -> None:
        while plan.current_step < len(plan.steps):
            step = plan.steps[plan.current_step]
            done = True
            for action in step:
                app = self.apps.get(action.app)
                if action.action == "StopApplication" or app is None:
                    spec = planner.Spec(action.app, 0, "", ())
                    ok = await self._apply(Action("StopApplication", action.app), spec, None, now)
                else:
                    ok = await self._apply(action, self._spec(app, self.apps), app, now)
                done = done and ok
            if not done:
                return
            self.publish(events.deployment_step_success(plan, plan.current_step, now=now))
            for action in step:
                if action.action == "StopApplication":
                    self.publish(events.app_terminated_event(action.app, now=now))
            plan = dataclasses.replace(plan, current_step=plan.current_step + 1)
            self.running[plan.id] = plan
            if plan.current_step < len(plan.steps):
                self.publish(events.deployment_info(plan, plan.current_step, now=now))
                await self.store.put(f"marathon/deployments/{plan.id}", json.dumps(_plan_to_json(plan)).encode())
        await self.store.delete(f"marathon/deployments/{plan.id}")
        self.running.pop(plan.id, None)
        self.publish(events.deployment_success(plan, now=now))

    async def _apply(self, action: Action, spec: planner.Spec, app: AppDefinition | None, now: float,
                     steady: bool = False) -> bool:
        live = self._live(action.app, now)
        decision = planner.decide(
            action, spec, live,
            min_health_capacity=app.min_health_capacity if app else 1.0,
            max_over_capacity=app.max_over_capacity if app else 1.0,
            kill_selection=app.kill_selection if app else "YOUNGEST_FIRST",
            has_health_checks=bool(app and app.health_checks), now=now,
        )
        if steady and not decision.kill and decision.launch == 0:
            return decision.done
        for instance_id in decision.kill:
            inst = self.insts.get(instance_id)
            if inst is not None:
                await self._kill(inst)
        if decision.launch and app is not None:
            await self._schedule(app, spec, decision.launch, now)
        return decision.done

    async def _schedule(self, app: AppDefinition, spec: planner.Spec, count: int, now: float) -> None:
        for _ in range(count):
            iid = paths.new_instance_id(app.id)
            inst = Instance(instance_id=iid, task_id=paths.task_id_for(iid), app_id=app.id,
                            version=app.version or "", state="TASK_STAGING", staged_at=now,
                            config_version=spec.config, ready=not app.readiness_checks,
                            service_ports=tuple(app.service_ports))
            self._save(inst)

    async def _kill(self, inst: Instance, *, wipe: bool = False) -> None:
        if not inst.agent_id:
            self._forget(inst)  # never launched: just drop it
            return
        if not inst.killing:
            inst = dataclasses.replace(inst, killing=True)
            self._save(inst)
        if self.client is not None:
            await self.client.call("KILL", {"task_id": {"value": inst.task_id}, "agent_id": {"value": inst.agent_id}})
        if wipe:
            self._forget(inst)

    def _save(self, inst: Instance) -> None:
        """Keep `inst`; it is written to the store at the next `_sync`."""
        self._remember(inst)
        self._writes[f"marathon/instances/{inst.instance_id}"] = json.dumps(_instance_to_json(inst)).encode()
        self._dirty.set()

    def _forget(self, inst: Instance) -> None:
        self._drop(inst)
        self._health_killed.pop(inst.instance_id, None)
        self._writes[f"marathon/instances/{inst.instance_id}"] = None
        self._dirty.set()

    async def _sync(self) -> None:
        """Write the buffered instance changes, then send the acknowledgements that waited
        for them: an update is acknowledged only once what it changed is durable."""
        async with self._sync_lock:
            writes, self._writes = self._writes, {}
            acks, self._acks = self._acks, []
            if writes:
                await self.store.put_many(writes)
            if acks:
                await asyncio.gather(*(self._ack(a) for a in acks))

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.005)  # gather a burst of updates into one commit
            self._dirty.clear()
            try:
                await self._sync()
            except Exception:
                log.exception("writing instance state failed; retrying")
                await asyncio.sleep(0.5)
                self._dirty.set()

    async def _expunge_unreachable(self, now: float) -> None:
        for inst in list(self.insts.values()):
            if inst.unreachable_since is None:
                continue
            app = self.apps.get(inst.app_id)
            expunge = app.unreachable_expunge_after if app else 0.0
            if expunge is not None and now - inst.unreachable_since >= expunge:
                self._forget(inst)
                self.publish(events.instance_changed_event(inst, "Gone", now=now))

    # ================================================================ scheduler events

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            fid = event["subscribed"]["framework_id"]["value"]
            await self.store.put("marathon/framework_id", fid.encode())
            # Offers this framework declined before a restart may still be filtered: revive
            # as soon as there is work.
            self._declined = True
            self._wake.set()
            self.publish(events.scheduler_registered_event(fid, self.flags.master, now=self.clock.now()))
            self._last_reconcile = self.clock.now()
            self._spawn(self._reconcile())
        elif kind == "OFFERS":
            async with self._lock:
                await self._offers(event["offers"]["offers"])
        elif kind == "UPDATE":
            async with self._lock:
                await self._update(event["update"]["status"])
        elif kind == "RESCIND":
            pass

    async def _reconcile(self) -> None:
        if self.client is None:
            return
        tasks = [{"task_id": {"value": i.task_id}, "agent_id": {"value": i.agent_id}}
                 for i in self.insts.values() if i.agent_id]
        if tasks:
            await self.client.call("RECONCILE", {"tasks": tasks})
        await self.client.call("RECONCILE", {"tasks": []})

    def _placed(self, app_id: str) -> list[AgentView]:
        return [self.agents_seen[i.agent_id] for i in self.by_app.get(app_id, {}).values()
                if i.agent_id in self.agents_seen and i.state not in TERMINAL]

    async def _offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.client is not None
        now = self.clock.now()
        log.debug("%d offers", len(offers))
        pending: dict[str, deque[Instance]] = {}   # app -> scheduled instances, oldest first
        for app_id, mine in self.by_app.items():
            if app_id in self.apps and self.launch_queue.ready(app_id, now):
                waiting = [i for i in mine.values() if not i.agent_id]
                if waiting:
                    pending[app_id] = deque(sorted(waiting, key=lambda i: (i.staged_at, i.instance_id)))
        for offer in offers:
            agent_id = offer["agent_id"]["value"]
            attrs = offer_attributes(offer)
            view = AgentView(agent_id=agent_id, hostname=offer.get("hostname", ""), attributes=attrs)
            self.agents_seen[agent_id] = view
            available = offer_resources(offer)
            infos: list[dict[str, Any]] = []
            for app_id in sorted(pending, key=lambda a: pending[a][0].staged_at if pending[a] else now):
                app = self.apps[app_id]
                queue = pending[app_id]
                placed = self._placed(app_id) if app.constraints else []
                while queue:
                    inst = queue[0]
                    if app.constraints and not satisfies(app.constraints, view, placed):
                        break  # the next instance of this app would not fit here either
                    built = _task_info(app, inst, offer, available)
                    if built is None:
                        log.debug("app %s does not fit offer %s (%r)", app_id, offer["id"]["value"], available)
                        break
                    info, used, host_ports = built
                    available = available - used
                    launched = dataclasses.replace(inst, agent_id=agent_id, host=offer.get("hostname", ""),
                                                   ports=tuple(host_ports), staged_at=now, state="TASK_STAGING")
                    self._save(launched)
                    queue.popleft()
                    placed.append(view)
                    infos.append(info)
                    self.publish(events.instance_changed_event(launched, "Provisioned", now=now))
            if infos:
                await self._sync()
                await self.client.launch(offer["id"], infos)
            else:
                await self.client.decline(offer["id"], self.flags.decline_offer_duration)
                self._declined = True

    async def _update(self, status: dict[str, Any]) -> None:
        assert self.client is not None
        task_id = status["task_id"]["value"]
        state = status.get("state", "")
        now = self.clock.now()
        iid = self.by_task.get(task_id)
        inst = self.insts.get(iid) if iid else None
        if inst is None:
            if state not in TERMINAL and state not in UNREACHABLE and "agent_id" in status:
                # Not ours (any more): an orphan from before a crash, or an expunged instance.
                await self.client.call("KILL", {"task_id": {"value": task_id}, "agent_id": status["agent_id"]})
            self._acks.append(status)
            self._dirty.set()
            return
        before = inst
        changes: dict[str, Any] = {"state": state}
        if status.get("agent_id"):
            changes["agent_id"] = status["agent_id"]["value"]
        if state == "TASK_RUNNING" and inst.started_at is None:
            changes["started_at"] = now
        changes["unreachable_since"] = (inst.unreachable_since or now) if state in UNREACHABLE else None
        inst = dataclasses.replace(inst, **changes)
        app = self.apps.get(inst.app_id)
        launched_as = self._app_for(inst)
        agent_check = health.agent_check(launched_as.health_checks) if launched_as else None
        if state in TERMINAL:
            health_reason = self._health_killed.pop(inst.instance_id, None)
            self._forget(inst)
            by_agent = status.get("healthy") is False
            killed_unhealthy = state == "TASK_KILLED" and (by_agent or health_reason is not None) \
                and not before.killing
            if (state in FAILED or killed_unhealthy) and app is not None and not before.killing:
                self.launch_queue.record_failure(inst.app_id, now=now, backoff_seconds=app.backoff_seconds,
                                                 backoff_factor=app.backoff_factor,
                                                 max_launch_delay=app.max_launch_delay_seconds)
            if state != "TASK_FINISHED" and not (state == "TASK_KILLED" and before.killing):
                self.failures[inst.app_id] = {
                    "appId": inst.app_id, "host": inst.host, "message": status.get("message", ""),
                    "state": state, "taskId": task_id, "timestamp": appdef.timestamp(now),
                    "version": inst.version, "slaveId": inst.agent_id, "instanceId": inst.instance_id}
            if killed_unhealthy and app is not None:
                if by_agent and launched_as is not None and agent_check is not None:
                    # The agent kills on the failure it does not report as TASK_RUNNING.
                    self.publish(events.failed_health_check_event(
                        inst.app_id, inst.instance_id, launched_as.health_checks[agent_check], now=now))
                reason = health_reason if health_reason and not by_agent else status.get("message", "unhealthy")
                self.publish(events.unhealthy_instance_kill_event(
                    inst.app_id, task_id, inst.instance_id, inst.version, reason,
                    inst.host, inst.agent_id, now=now))
        else:
            self._save(inst)
        self.publish(events.status_update_event(inst, message=status.get("message", ""), now=now))
        if before.state != state:
            self.publish(events.instance_changed_event(inst, now=now))
        if state == "TASK_RUNNING" and "healthy" in status and launched_as is not None and agent_check is not None:
            self._agent_health(inst, launched_as, agent_check, status, now)
        self._acks.append(status)
        self._dirty.set()
        self._wake.set()

    def _agent_health(self, inst: Instance, app: AppDefinition, index: int, status: dict[str, Any],
                      now: float) -> None:
        """A TASK_RUNNING update's `healthy` is the agent-run check's current verdict; it
        is a new result when the agent sent it for that, or when it differs from ours
        (after a restart of the service, in a reconciliation)."""
        ok = bool(status["healthy"])
        known = inst.health[index] if index < len(inst.health) else None
        fresh = status.get("reason") == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        if fresh or known is None or known.alive != ok:
            self._record_health(inst, app, index, ok, "" if ok else status.get("message") or "unhealthy",
                                now, by_agent=True)

    async def _ack(self, status: dict[str, Any]) -> None:
        if "uuid" in status and "agent_id" in status and self.client is not None:
            await self.client.call("ACKNOWLEDGE", {"agent_id": status["agent_id"], "task_id": status["task_id"],
                                                   "uuid": status["uuid"]})


async def _probe_once(session: aiohttp.ClientSession, policy: health.CheckPolicy, host: str,
                      port: int | None) -> tuple[bool | None, str]:
    """One HTTP/HTTPS/TCP check from here: (healthy, cause); healthy None means no result
    (an ignored 1xx answer)."""
    if port is None or not host:
        return False, "the task has no host port for this check"
    try:
        async with asyncio.timeout(policy.timeout):
            if policy.protocol == "TCP":
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True, ""
            scheme = "https" if policy.protocol == "HTTPS" else "http"
            path = policy.path if policy.path.startswith("/") else "/" + policy.path
            # 3xx is healthy for Marathon: do not follow redirects.
            async with session.get(f"{scheme}://{host}:{port}{path}", ssl=False, allow_redirects=False) as r:
                return health.http_result(r.status, ignore_1xx=policy.ignore_http_1xx), f"{r.status} {r.reason}"
    except TimeoutError:
        return False, f"no answer within {policy.timeout:g} seconds"
    except (aiohttp.ClientError, OSError) as e:
        return False, str(e) or type(e).__name__


def _health_check(app: AppDefinition, host_ports: list[int]) -> dict[str, Any] | None:
    """The app's check the agent runs (health.agent_check) as a Mesos HealthCheck."""
    index = health.agent_check(app.health_checks)
    if index is None:
        return None
    hc = app.health_checks[index]
    proto = hc.get("protocol", "HTTP")
    port = health.CheckPolicy.from_json(hc).target_port(host_ports)
    failures = int(hc.get("maxConsecutiveFailures", 3))
    check: dict[str, Any] = {
        # Marathon-side checks start at once; only MESOS_* checks honour delaySeconds.
        "delay_seconds": float(hc.get("delaySeconds", 15)) if proto.startswith("MESOS_") else 0.0,
        "interval_seconds": float(hc.get("intervalSeconds", 60)),
        "timeout_seconds": float(hc.get("timeoutSeconds", 20)),
        "consecutive_failures": failures if failures > 0 else 2**31 - 1,
        "grace_period_seconds": float(hc.get("gracePeriodSeconds", 300)),
    }
    if proto in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"):
        if port is None:
            return None
        check["type"] = "HTTP"
        check["http"] = {"port": int(port), "path": hc.get("path", "/"),
                         "scheme": "https" if proto.endswith("HTTPS") else "http"}
    elif proto in ("TCP", "MESOS_TCP"):
        if port is None:
            return None
        check["type"] = "TCP"
        check["tcp"] = {"port": int(port)}
    else:
        check["type"] = "COMMAND"
        check["command"] = {"value": (hc.get("command") or {}).get("value", "true"), "shell": True}
    return check


def _take_ports(available: Resources, wanted: list[int]) -> list[int] | None:
    """Host ports for the task: the literal ones asked for (requirePorts), any free for 0."""
    free: list[int] = []
    for begin, end in available.ranges("ports"):
        free.extend(range(begin, min(end, begin + 4096) + 1))
    out: list[int] = []
    taken: set[int] = set()
    for w in wanted:
        if w:
            if w not in free or w in taken:
                return None
            out.append(w)
            taken.add(w)
    pool = iter(p for p in free if p not in taken)
    result: list[int] = []
    for w in wanted:
        if w:
            result.append(w)
        else:
            p = next(pool, None)
            if p is None:
                return None
            result.append(p)
    return result


def _task_info(app: AppDefinition, inst: Instance, offer: dict[str, Any],
               available: Resources) -> tuple[dict[str, Any], Resources, list[int]] | None:
    """The TaskInfo launching `inst` from `offer`, what it uses and its host ports; None if it does not fit."""
    roles = app.accepted_resource_roles
    host_mode = app.network_mode == "host"
    specs = app.port_definitions if host_mode else [m for m in app.port_mappings if m.get("hostPort") is not None]
    if host_mode:
        wanted = [int(p.get("port", 0)) if app.require_ports else 0 for p in specs]
    else:
        wanted = [int(m.get("hostPort") or 0) for m in specs]
    usable = available
    if roles is not None and "*" not in roles:
        usable = Resources.empty()
        for role in roles:
            usable = usable + available.reserved(role)
    if usable.scalar("cpus") + 1e-9 < app.cpus or usable.scalar("mem") + 1e-9 < app.mem \
            or usable.scalar("disk") + 1e-9 < app.disk or usable.scalar("gpus") + 1e-9 < app.gpus:
        return None
    host_ports = _take_ports(usable, wanted) if wanted else []
    if host_ports is None:
        return None
    needed: dict[str, float] = {"cpus": app.cpus, "mem": app.mem}
    if app.disk:
        needed["disk"] = app.disk
    if app.gpus:
        needed["gpus"] = float(app.gpus)
    role = next((r for r in usable.roles() if r != "*" and usable.reserved(r).scalar("cpus") >= app.cpus), "*")
    used = Resources.scalars(needed, role=role) if role != "*" else Resources.scalars(needed)
    if host_ports:
        used = used + Resources.parse("ports:[" + ",".join(f"{p}-{p}" for p in host_ports) + "]")
    if not used <= available:
        used = Resources.scalars(needed)
        if host_ports:
            used = used + Resources.parse("ports:[" + ",".join(f"{p}-{p}" for p in host_ports) + "]")
        if not used <= available:
            return None
    env = appdef.task_env(app, task_id=inst.task_id, host=offer.get("hostname", ""), host_ports=host_ports)
    command: dict[str, Any] = {"environment": {"variables": [{"name": k, "value": v} for k, v in env.items()]}}
    if app.cmd is not None:
        command.update(value=app.cmd, shell=True)
    elif app.args and app.docker_image:
        command.update(arguments=list(app.args), shell=False)   # the image's entrypoint gets the args
    elif app.args:
        command.update(value=app.args[0], arguments=list(app.args), shell=False)
    else:
        command.update(shell=False)
    if app.fetch:
        command["uris"] = [{"value": f["uri"], "extract": bool(f.get("extract", True)),
                            "executable": bool(f.get("executable", False)), "cache": bool(f.get("cache", False)),
                            **({"output_file": f["destPath"]} if f.get("destPath") else {})} for f in app.fetch]
    if app.user:
        command["user"] = app.user
    info: dict[str, Any] = {
        "name": paths.safe_id(app.id).replace("_", "."),
        "task_id": {"value": inst.task_id},
        "agent_id": offer["agent_id"],
        "resources": used.to_json(),
        "command": command,
        "labels": {"labels": [{"key": k, "value": v} for k, v in app.labels.items()]},
    }
    if app.container is not None:
        info["container"] = _container_info(app, host_ports)
    check = _health_check(app, host_ports)
    if check is not None:
        info["health_check"] = check
    if app.task_kill_grace_period is not None:
        info["kill_policy"] = {"grace_period": {"nanoseconds": int(app.task_kill_grace_period * 1e9)}}
    ports_disc = [{"number": p, "protocol": (s.get("protocol") or "tcp").split(",")[0],
                   **({"name": s["name"]} if s.get("name") else {})} for p, s in zip(host_ports, specs)]
    info["discovery"] = {"visibility": "FRAMEWORK", "name": paths.safe_id(app.id).replace("_", "."),
                         "ports": {"ports": ports_disc}}
    return info, used, host_ports


def _container_info(app: AppDefinition, host_ports: list[int]) -> dict[str, Any]:
    """Marathon's container, passed through to the agent as a Mesos ContainerInfo. Port
    mappings carry the host ports taken from the offer (a mapping's hostPort 0 means any)."""
    c = app.container or {}
    assigned = iter(host_ports)
    out: dict[str, Any] = {"type": c.get("type", "DOCKER")}
    docker = c.get("docker") or {}
    if docker.get("image"):
        if out["type"] == "DOCKER":
            out["docker"] = {"image": docker["image"], "force_pull_image": bool(docker.get("forcePullImage")),
                             "privileged": bool(docker.get("privileged")),
                             "parameters": docker.get("parameters") or [],
                             "network": {"host": "HOST", "container/bridge": "BRIDGE"}.get(app.network_mode, "USER"),
                             "port_mappings": [{"host_port": next(assigned, 0),
                                                "container_port": m.get("containerPort", 0),
                                                "protocol": m.get("protocol") or "tcp"}
                                               for m in app.port_mappings if m.get("hostPort") is not None]}
        else:
            out["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": docker["image"]}}}
    out["volumes"] = [{"container_path": v.get("containerPath"), "host_path": v.get("hostPath"),
                       "mode": v.get("mode", "RW")} for v in c.get("volumes") or [] if v.get("hostPath")]
    return out
