"""An in-memory `MarathonServiceApi` for testing the v2 API without Mesos.

Apps, versions, instances and deployments live in dicts. A deployment finishes at once
(every instance of the target is RUNNING on host `h1`) unless `hold` is set: then it
stays running, its apps are locked (AppLocked without force), until `finish_all()`.
Events go to subscriber queues in the order real Marathon emits them for a change.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from lichen.api.server import make_app, serve
from lichen.errors import Conflict, NotFound
from lichen.frameworks.marathon import api, appdef, events, paths, planner
from lichen.frameworks.marathon.model import DeploymentPlan, Instance
from lichen.frameworks.marathon.service_api import AppLocked, QueueEntry

START = 1_700_000_000.0


class FakeMarathonService:
    def __init__(self) -> None:
        self.apps: dict[str, appdef.AppDefinition] = {}
        self.history: dict[str, list[appdef.AppDefinition]] = {}
        self.live: dict[str, list[Instance]] = {}
        self.running: list[DeploymentPlan] = []
        self.failures: dict[str, dict[str, Any]] = {}
        self.delays: dict[str, QueueEntry] = {}
        self.subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self.published: list[dict[str, Any]] = []
        self.callback_urls: list[str] = []
        self.group_version: dict[str, str] = {}
        self.hold = False
        self._ticks = itertools.count(1)
        self._ports = itertools.count(31000)

    # ------------------------------------------------------------ helpers
    def now(self) -> float:
        return START + next(self._ticks) / 1000

    def _instance(self, app: appdef.AppDefinition, at: float) -> Instance:
        instance_id = paths.new_instance_id(app.id)
        ports = tuple(next(self._ports) for _ in app.service_ports)
        return Instance(
            instance_id=instance_id,
            task_id=paths.task_id_for(instance_id),
            app_id=app.id,
            version=app.version or "",
            state="TASK_RUNNING",
            agent_id="agent-1",
            host="h1",
            ports=ports,
            service_ports=tuple(app.service_ports),
            staged_at=at,
            started_at=at,
            healthy=True if app.health_checks else None,
            config_version=str((app.version_info or {}).get("lastConfigChangeAt", "")),
        )

    def _locked(self, app_ids: set[str], force: bool) -> None:
        blocking = [p for p in self.running if app_ids & set(p.affected_apps)]
        if blocking and not force:
            raise AppLocked([p.id for p in blocking])
        for plan in blocking:
            self.running.remove(plan)

    def _spec(self, app: appdef.AppDefinition) -> planner.Spec:
        config = {
            k: v for k, v in app.raw.items() if k not in ("instances", "version", "versionInfo")
        }
        return planner.Spec(
            app.id, app.instances, repr(sorted(config.items())), tuple(app.dependencies)
        )

    async def _deploy(
        self,
        target: dict[str, appdef.AppDefinition | None],
        *,
        force: bool,
        restart: set[str] | None = None,
    ) -> DeploymentPlan:
        self._locked(set(target), force)
        at = self.now()
        version = appdef.now_version(at)
        before = {k: self.apps[k] for k in target if k in self.apps}
        after: dict[str, appdef.AppDefinition] = {}
        used = {p for a in self.apps.values() if a.id not in target for p in a.service_ports}
        for app_id, app in target.items():
            if app is None:
                continue
            old = self.apps.get(app_id)
            config = (
                old is None or appdef.is_config_change(old, app) or app_id in (restart or set())
            )
            scaling = (
                old is None or old.instances != app.instances or app_id not in (restart or set())
            )
            if (
                old is not None
                and not appdef.is_config_change(old, app)
                and app_id in (restart or set())
            ):
                scaling = False
            app = appdef.assign_service_ports(app, used, old)
            used |= set(app.service_ports)
            after[app_id] = appdef.with_version(app, version, config_change=config, scaling=scaling)
        plan = planner.plan(
            {k: self._spec(a) for k, a in before.items()},
            {k: self._spec(a) for k, a in after.items()},
            restart=restart or set(),
            plan_id=str(uuid.uuid4()),
            version=version,
        )
        plan = DeploymentPlan(
            id=plan.id,
            version=plan.version,
            steps=plan.steps,
            affected_apps=tuple(sorted(target)),
            original={k: appdef.app_json(v) for k, v in before.items()}
            | {k: None for k in target if k not in before},
            target={k: appdef.app_json(v) for k, v in after.items()}
            | {k: None for k in target if k not in after},
        )
        for app_id in target:
            if app_id in after:
                self.apps[app_id] = after[app_id]
                self.history.setdefault(app_id, []).insert(0, after[app_id])
            else:
                self.apps.pop(app_id, None)
                self.history.pop(app_id, None)
        self.publish(events.group_change_success("/", version, now=at))
        self.publish(events.deployment_info(plan, 0, now=at))
        if self.hold:
            self.running.append(plan)
        else:
            self._finish(plan, before, after, at)
        return plan

    def _finish(
        self,
        plan: DeploymentPlan,
        before: dict[str, appdef.AppDefinition],
        after: dict[str, appdef.AppDefinition],
        at: float,
    ) -> None:
        for app_id in plan.affected_apps:
            app = after.get(app_id)
            current = self.live.get(app_id, [])
            if app is None:
                self.live.pop(app_id, None)
                self.publish(events.app_terminated_event(app_id, now=at))
                continue
            old = before.get(app_id)
            if old is not None and (
                appdef.is_config_change(old, app)
                or any(
                    a.action == "RestartApplication" and a.app == app_id
                    for s in plan.steps
                    for a in s
                )
            ):
                current = []
            current = current[: app.instances]
            while len(current) < app.instances:
                instance = self._instance(app, at)
                current.append(instance)
                self.publish(events.status_update_event(instance, now=at))
            self.live[app_id] = current
        for index in range(len(plan.steps)):
            self.publish(events.deployment_step_success(plan, index, now=at))
        self.publish(events.deployment_success(plan, now=at))

    def finish_all(self) -> None:
        while self.running:
            plan = self.running.pop(0)
            after = {k: self.apps[k] for k in plan.affected_apps if k in self.apps}
            self._finish(plan, {}, after, self.now())

    # ------------------------------------------------------------ reads
    def list_apps(self) -> list[Any]:
        return [self.apps[k] for k in sorted(self.apps)]

    def get_app(self, app_id: str) -> Any | None:
        return self.apps.get(app_id)

    def app_versions(self, app_id: str) -> list[str]:
        if app_id not in self.apps:
            raise NotFound(f"App '{app_id}' does not exist")
        return [a.version or "" for a in self.history.get(app_id, [])]

    def app_version(self, app_id: str, version: str) -> Any | None:
        return next((a for a in self.history.get(app_id, []) if a.version == version), None)

    def instances(self, app_id: str | None = None) -> list[Instance]:
        if app_id is not None:
            return list(self.live.get(app_id, []))
        return [i for k in sorted(self.live) for i in self.live[k]]

    def last_task_failure(self, app_id: str) -> dict[str, Any] | None:
        return self.failures.get(app_id)

    def deployments(self) -> list[DeploymentPlan]:
        return list(self.running)

    def deployment_ids_for(self, app_id: str) -> list[str]:
        return [p.id for p in self.running if app_id in p.affected_apps]

    def _children(self, group_id: str) -> list[str]:
        depth = 0 if group_id == "/" else group_id.count("/")
        return sorted(
            {
                "/".join(a.split("/")[: depth + 2])
                for a in self.apps
                if paths.is_ancestor(group_id, a) and paths.parent(a) != group_id
            }
        )

    def _group(self, group_id: str) -> appdef.GroupDefinition:
        return appdef.GroupDefinition(
            id=group_id,
            apps=tuple(a for a in self.list_apps() if paths.parent(a.id) == group_id),
            groups=tuple(self._group(c) for c in self._children(group_id)),
            version=self.group_version.get(group_id, appdef.timestamp(START)),
        )

    def root_group(self) -> Any:
        return self._group("/")

    def get_group(self, group_id: str) -> Any | None:
        if group_id == "/" or any(paths.is_ancestor(group_id, a) for a in self.apps):
            return self._group(group_id)
        return None

    def group_versions(self, group_id: str) -> list[str]:
        return [self.group_version.get(group_id, appdef.timestamp(START))]

    def queue(self) -> list[QueueEntry]:
        return list(self.delays.values())

    def info(self) -> dict[str, Any]:
        return {
            "framework_id": "fw-1",
            "master": "127.0.0.1:5050",
            "leader": "127.0.0.1:8080",
            "elected": True,
            "version": "1.10.0",
            "http_port": 8080,
        }

    # ------------------------------------------------------------ changes
    async def put_apps(self, apps: list[Any], *, force: bool) -> DeploymentPlan:
        return await self._deploy({a.id: a for a in apps}, force=force)

    async def create_app(self, app: Any, *, force: bool) -> tuple[Any, DeploymentPlan]:
        if app.id in self.apps:
            raise Conflict(f"An app with id [{app.id}] already exists.")
        plan = await self._deploy({app.id: app}, force=force)
        return self.apps[app.id], plan

    async def rollback_app(self, app_id: str, version: str, *, force: bool) -> DeploymentPlan:
        old = self.app_version(app_id, version)
        if old is None:
            raise NotFound(f"App '{app_id}' does not exist in version {version}")
        return await self._deploy({app_id: old}, force=force)

    async def delete_app(self, app_id: str, *, force: bool) -> DeploymentPlan:
        if app_id not in self.apps:
            raise NotFound(f"App '{app_id}' does not exist")
        return await self._deploy({app_id: None}, force=force)

    async def restart_app(self, app_id: str, *, force: bool) -> DeploymentPlan:
        if app_id not in self.apps:
            raise NotFound(f"App '{app_id}' does not exist")
        return await self._deploy({app_id: self.apps[app_id]}, force=force, restart={app_id})

    async def kill_instances(
        self, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
    ) -> tuple[list[Instance], DeploymentPlan | None]:
        wanted = set(task_ids)
        killed = [i for i in self.instances() if i.task_id in wanted]
        for instance in killed:
            self.live[instance.app_id].remove(instance)
        if scale:
            lowered: dict[str, appdef.AppDefinition | None] = {}
            for instance in killed:
                app = lowered.get(instance.app_id) or self.apps[instance.app_id]
                assert app is not None
                lowered[instance.app_id] = appdef.with_instances(app, app.instances - 1)
            if lowered:
                return killed, await self._deploy(lowered, force=force)
            return killed, None
        at = self.now()
        for instance in killed:
            app = self.apps[instance.app_id]
            self.live[app.id].append(self._instance(app, at))
        return [i for i in killed], None

    async def put_group(self, group: Any, *, force: bool) -> DeploymentPlan:
        target: dict[str, appdef.AppDefinition | None] = {
            k: None for k in self.apps if paths.is_ancestor(group.id, k)
        }
        target.update(appdef.flatten_apps(group))
        plan = await self._deploy(target, force=force)
        self.group_version[group.id] = plan.version
        return plan

    async def create_group(self, group: Any, *, force: bool) -> DeploymentPlan:
        if self.get_group(group.id) is not None and group.id != "/":
            raise Conflict(f"Group {group.id} is already created. Use PUT to change this group.")
        return await self.put_group(group, force=force)

    async def delete_group(self, group_id: str, *, force: bool) -> DeploymentPlan:
        if self.get_group(group_id) is None:
            raise NotFound(f"Group '{group_id}' does not exist")
        doomed: dict[str, appdef.AppDefinition | None] = {
            k: None for k in self.apps if paths.is_ancestor(group_id, k)
        }
        return await self._deploy(doomed, force=force)

    async def cancel_deployment(self, deployment_id: str, *, force: bool) -> DeploymentPlan | None:
        plan = next((p for p in self.running if p.id == deployment_id), None)
        if plan is None:
            raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
        self.running.remove(plan)
        if force:
            return None
        hold, self.hold = self.hold, False
        try:
            originals = {
                k: (appdef.parse_app(v) if v is not None else None)
                for k, v in plan.original.items()
            }
            return await self._deploy(originals, force=True)
        finally:
            self.hold = hold

    async def reset_delay(self, app_id: str) -> None:
        if self.delays.pop(app_id, None) is None:
            raise NotFound(f"Application {app_id} not found in tasks queue.")

    # ------------------------------------------------------------ events
    def subscribe_events(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.subscribers.append(queue)
        return queue

    def unsubscribe_events(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self.subscribers:
            self.subscribers.remove(queue)

    def publish(self, event: dict[str, Any]) -> None:
        self.published.append(event)
        for queue in self.subscribers:
            queue.put_nowait(event)

    async def add_callback(self, url: str) -> None:
        if url not in self.callback_urls:
            self.callback_urls.append(url)

    async def remove_callback(self, url: str) -> None:
        if url in self.callback_urls:
            self.callback_urls.remove(url)

    def callbacks(self) -> list[str]:
        return list(self.callback_urls)


# ---------------------------------------------------------------- a served fake


class ServedFake:
    """The fake behind the real v2 API on 127.0.0.1:<port 0>, in a thread of its own
    (marathon-python and requests are synchronous)."""

    def __init__(self, heartbeat_seconds: float = 0.5) -> None:
        self.service = FakeMarathonService()
        self.loop = asyncio.new_event_loop()
        self._heartbeat = heartbeat_seconds
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServedFake:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        app = make_app()
        api.setup(app, self.service, heartbeat_seconds=self._heartbeat)
        self._runner, host, port = await serve(app, "127.0.0.1", 0, None, "marathon")
        self.url = f"http://{host}:{port}"

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def publish(self, event: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.service.publish, event)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[ServedFake]:
    fake = ServedFake().start()
    try:
        yield fake
    finally:
        fake.stop()
