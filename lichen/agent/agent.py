"""The agent shell: frameworks, executors and tasks on this machine.

Theory of operation. The master sends RUN_TASK / RUN_TASK_GROUP / KILL_TASK / ... on the
stream `master_link.py` keeps open; `handle_event` carries them out. Every task belongs
to an executor record, keyed (framework id, executor id):

    kind "command"  a command task; the agent is its executor (executor id = task id)
                    and runs the task itself in one container.
    kind "custom"   a framework's executor process (TaskInfo.executor with a command),
                    which talks to `/api/v1/executor` (`executor_api.py`).
    kind "default"  a task group whose executor has no command: the agent runs each task
                    like a command task, in `<executor sandbox>/tasks/<task id>`.

A task moves STAGING → (STARTING → RUNNING) → terminal; every change is a status update
appended to the task's FIFO (`status_updates.py`) and checkpointed (`checkpoint.py`)
before anything else happens. Once the master relays the acknowledgement of a terminal
update, the task moves to its executor's completed tasks; once an executor has ended and
all of its tasks are completed, it moves to the framework's completed executors and its
sandbox is handed to the garbage collector.

Nothing is killed when the agent stops: a restarted agent reloads the checkpoint,
re-attaches to its containers (`Containerizer.recover`) and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lichen import MESOS_VERSION
from lichen.agent.checkpoint import Checkpoint, component
from lichen.agent.containerizer.base import Containerizer, LaunchError, LaunchSpec, Termination
from lichen.agent.flags import AgentFlags
from lichen.agent.master_link import MasterLink
from lichen.agent.status_updates import StatusUpdateQueues, Update, new_uuid
from lichen.errors import LichenError
from lichen.resources import Resources
from lichen.task_states import TERMINAL_STATES

log = logging.getLogger(__name__)

DEFAULT_KILL_GRACE = 3.0              # Mesos's command executor
MAX_COMPLETED_EXECUTORS = 150
MAX_COMPLETED_FRAMEWORKS = 50


def id_value(x: Any) -> str:
    """`{"value": "x"}` or `"x"` → `"x"`."""
    if isinstance(x, dict):
        return str(x.get("value", ""))
    return "" if x is None else str(x)


def duration_text(seconds: float) -> str:
    """Mesos's Duration syntax: `5secs`, `500ms`."""
    if seconds == int(seconds):
        return f"{int(seconds)}secs"
    return f"{int(seconds * 1000)}ms"


def wait_status(t: Termination) -> int:
    if t.exit_code is not None:
        return (t.exit_code & 0xFF) << 8
    if t.signal is not None:
        return t.signal & 0x7F
    return 0


def termination_message(t: Termination) -> str:
    if t.message:
        return t.message
    if t.exit_code is not None:
        return f"Command exited with status {t.exit_code}"
    if t.signal is not None:
        return f"Command terminated with signal {signal.strsignal(t.signal) or t.signal}"
    return "Command terminated"


@dataclass(slots=True)
class TaskRecord:
    framework_id: str
    executor_id: str
    info: dict[str, Any]
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)
    launched: bool = False            # handed to the executor / container started
    kill_requested: bool = False
    killed_by_health: bool = False
    healthy: bool | None = None
    container_id: str | None = None   # default-executor tasks run in their own container
    sandbox: str | None = None
    kill_grace: float | None = None
    health: Any = None                # a running HealthChecker (not persisted)

    @property
    def task_id(self) -> str:
        return id_value(self.info.get("task_id"))

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_json(self, pending: list[Update]) -> dict[str, Any]:
        return {
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "info": self.info,
            "state": self.state,
            "statuses": self.statuses[-10:],
            "launched": self.launched,
            "kill_requested": self.kill_requested,
            "killed_by_health": self.killed_by_health,
            "healthy": self.healthy,
            "container_id": self.container_id,
            "sandbox": self.sandbox,
            "kill_grace": self.kill_grace,
            "updates": [u.to_json() for u in pending],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> TaskRecord:
        return TaskRecord(
            framework_id=d["framework_id"],
            executor_id=d["executor_id"],
            info=d["info"],
            state=d.get("state", "TASK_STAGING"),
            statuses=list(d.get("statuses", [])),
            launched=bool(d.get("launched")),
            kill_requested=bool(d.get("kill_requested")),
            killed_by_health=bool(d.get("killed_by_health")),
            healthy=d.get("healthy"),
            container_id=d.get("container_id"),
            sandbox=d.get("sandbox"),
            kill_grace=d.get("kill_grace"),
        )


@dataclass(slots=True)
class ExecutorRecord:
    framework_id: str
    executor_id: str
    info: dict[str, Any]              # ExecutorInfo (generated for command tasks)
    kind: str                         # "command" | "custom" | "default"
    container_id: str
    sandbox: Path
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    completed_tasks: list[TaskRecord] = field(default_factory=list)
    # Launches not yet sent to the executor: {"group": bool, "tasks": [task ids]}.
    pending_launches: list[dict[str, Any]] = field(default_factory=list)
    pending_kills: set[str] = field(default_factory=set)
    ended: bool = False               # the container (or every task of "default") is gone
    shutting_down: bool = False
    registration_timed_out: bool = False
    stream: Any = None                # executor_api.ExecutorStream while subscribed
    subscribed_once: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "info": self.info,
            "kind": self.kind,
            "container_id": self.container_id,
            "sandbox": str(self.sandbox),
            "pending_launches": self.pending_launches,
            "pending_kills": sorted(self.pending_kills),
            "ended": self.ended,
            "shutting_down": self.shutting_down,
            "subscribed_once": self.subscribed_once,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> ExecutorRecord:
        return ExecutorRecord(
            framework_id=d["framework_id"],
            executor_id=d["executor_id"],
            info=d["info"],
            kind=d["kind"],
            container_id=d["container_id"],
            sandbox=Path(d["sandbox"]),
            pending_launches=[dict(g) for g in d.get("pending_launches", [])],
            pending_kills=set(d.get("pending_kills", [])),
            ended=bool(d.get("ended")),
            shutting_down=bool(d.get("shutting_down")),
            subscribed_once=bool(d.get("subscribed_once")),
        )


@dataclass(slots=True)
class FrameworkRecord:
    framework_id: str
    info: dict[str, Any]
    executors: dict[str, ExecutorRecord] = field(default_factory=dict)
    completed_executors: list[ExecutorRecord] = field(default_factory=list)

    def has_capability(self, name: str) -> bool:
        return any(c.get("type") == name for c in self.info.get("capabilities", []) or [])


class Agent:
    def __init__(self, flags: AgentFlags, containerizer: Containerizer) -> None:
        self.flags = flags
        self.containerizer = containerizer
        self.work_dir = Path(flags.work_dir).resolve()
        self.checkpoint = Checkpoint(self.work_dir / "meta")
        self.updates = StatusUpdateQueues(flags.status_update_retry_interval)
        self.agent_id: str | None = None
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed_frameworks: list[FrameworkRecord] = []
        self.resources: Resources = Resources.empty()
        self.attributes: list[dict[str, Any]] = []
        self.host = flags.host
        self.port = flags.port
        self.hostname = flags.hostname or flags.host
        self.master_hostname: str | None = None
        self.registered = False
        self.recovered = False            # until then the executor API answers 503
        self.start_time = time.time()
        self.counters: dict[str, int] = {
            s: 0 for s in ("finished", "failed", "killed", "lost", "error", "dropped", "gone")
        }
        self.sandboxes_to_gc: dict[str, float] = {}      # sandbox path -> time it was released
        self.link = MasterLink(flags.master, self._register_body, self.handle_event, self._disconnected)
        self._wake = asyncio.Event()
        self._jobs: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run `coro` as a job the agent owns (cancelled by `stop`); errors are logged."""
        job = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._jobs.add(job)
        job.add_done_callback(self._job_done)
        return job

    def _job_done(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("agent job %s failed", job.get_name(), exc_info=job.exception())

    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def pid(self) -> str:
        return f"slave(1)@{self.host}:{self.port}"

    async def start(self) -> None:
        """Recover from the checkpoint, then connect to the master and send updates."""
        await self.recover()
        self.recovered = True
        self.spawn(self.link.run(), "master-link")
        self.spawn(self._send_updates(), "status-updates")
        self.spawn(self._gc_loop(), "gc")

    async def stop(self) -> None:
        """Stop talking; leave every task running (as Mesos does)."""
        for fw in self.frameworks.values():
            for ex in fw.executors.values():
                for task in ex.tasks.values():
                    if task.health is not None:
                        try:
                            await task.health.stop()
                        except Exception:
                            log.exception("stopping a health checker")
                if ex.stream is not None:
                    ex.stream.close()
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        close = getattr(self.containerizer, "close", None)
        if close is not None:
            await close()

    # -- recovery --------------------------------------------------------------------------

    async def recover(self) -> None:
        recovered = self.checkpoint.load()
        self.agent_id = recovered.agent_id
        sandboxes: dict[str, Path] = {}
        for fw_id, rfw in recovered.frameworks.items():
            fw = FrameworkRecord(fw_id, rfw.info)
            self.frameworks[fw_id] = fw
            for ex_id, rex in rfw.executors.items():
                ex = ExecutorRecord.from_json(rex.record)
                fw.executors[ex_id] = ex
                if not ex.ended and ex.kind != "default":
                    sandboxes[ex.container_id] = ex.sandbox
                for task_id, rtask in rex.tasks.items():
                    task = TaskRecord.from_json(rtask)
                    ex.tasks[task_id] = task
                    for u in rtask.get("updates", []):
                        self.updates.add(Update.from_json(u), now=time.time())
                    if task.container_id and task.sandbox and task.launched and not task.terminal:
                        sandboxes[task.container_id] = Path(task.sandbox)
        found = await self.containerizer.recover(sandboxes) if sandboxes else set()
        for fw in list(self.frameworks.values()):
            for ex in list(fw.executors.values()):
                self._resume_executor(fw, ex, found)
        self._schedule_leftover_sandboxes()
        log.info(
            "recovered agent %s: %d frameworks, %d containers",
            self.agent_id,
            len(self.frameworks),
            len(found),
        )

    def _resume_executor(self, fw: FrameworkRecord, ex: ExecutorRecord, found: set[str]) -> None:
        if ex.kind == "default":
            for task in ex.tasks.values():
                if task.terminal:
                    continue
                if task.launched and task.container_id in found:
                    self.spawn(self._watch_task_container(fw, ex, task), f"watch-{task.task_id}")
                elif not task.launched:
                    self.spawn(self._run_default_task(fw, ex, task), f"task-{task.task_id}")
                else:
                    self._container_lost(fw, ex, task)
            self._maybe_end_default_executor(fw, ex)
            return
        if ex.ended:
            self._maybe_complete_executor(fw, ex)
            return
        if ex.container_id not in found:
            if ex.kind == "command":
                only = next(iter(ex.tasks.values()), None)
                if only is not None and not only.terminal:
                    if only.launched:
                        self._container_lost(fw, ex, only)
                    else:
                        # The agent died before launching it: launch it now.
                        self.spawn(self._run_command_task(fw, ex, only), f"task-{only.task_id}")
                        return
            self._executor_ended(fw, ex, None)
            return
        if ex.kind == "command":
            running = next(iter(ex.tasks.values()), None)
            if running is not None:
                self._start_health_check(fw, ex, running)
            self.spawn(self._watch_command_container(fw, ex), f"watch-{ex.executor_id}")
        else:
            self.spawn(self._watch_executor(fw, ex), f"executor-{ex.executor_id}")
            if not ex.subscribed_once:
                self.spawn(self._registration_timeout(fw, ex), f"reg-timeout-{ex.executor_id}")

    def _container_lost(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        self.update_task(
            task,
            "TASK_FAILED",
            message="Container was lost while the agent was down",
            reason="REASON_EXECUTOR_TERMINATED",
            source="SOURCE_AGENT",
        )

    # -- the master link -------------------------------------------------------------------

    def agent_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "hostname": self.hostname,
            "port": self.port,
            "resources": self.resources.to_json(),
            "attributes": self.attributes,
        }
        if self.agent_id:
            info["id"] = {"value": self.agent_id}
        return info

    def _register_body(self) -> dict[str, Any]:
        info = self.agent_info()
        tasks = []
        frameworks = []
        for fw in self.frameworks.values():
            fw_tasks = [self.task_json(t) for ex in fw.executors.values() for t in ex.tasks.values()]
            tasks += fw_tasks
            if fw.executors:
                frameworks.append(fw.info)
        return {
            "type": "REGISTER",
            "register": {
                "agent_info": info,
                "tasks": tasks,
                "frameworks": frameworks,
                "version": MESOS_VERSION,
            },
        }

    def _disconnected(self) -> None:
        if self.registered:
            log.info("disconnected from the master")
        self.registered = False

    async def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = event.get(str(kind).lower(), {}) or {}
        try:
            if kind == "REGISTERED":
                self._registered(body)
            elif kind == "PING":
                self.spawn(self.link.call({"type": "PONG", "pong": {"agent_id": {"value": self.agent_id}}}))
            elif kind == "RUN_TASK":
                self.run_task(body["framework_info"], body["task"])
            elif kind == "RUN_TASK_GROUP":
                self.run_task_group(body["framework_info"], body["executor"], body["task_group"]["tasks"])
            elif kind == "KILL_TASK":
                self.kill_task(id_value(body.get("framework_id")), id_value(body.get("task_id")), body.get("kill_policy"))
            elif kind == "SHUTDOWN_EXECUTOR":
                fw = self.frameworks.get(id_value(body.get("framework_id")))
                ex = fw.executors.get(id_value(body.get("executor_id"))) if fw else None
                if fw is not None and ex is not None:
                    self.shutdown_executor(fw, ex)
            elif kind == "SHUTDOWN_FRAMEWORK":
                self.shutdown_framework(id_value(body.get("framework_id")))
            elif kind == "ACKNOWLEDGE":
                self.acknowledge(id_value(body.get("framework_id")), id_value(body.get("task_id")), str(body.get("uuid", "")))
            elif kind == "FRAMEWORK_MESSAGE":
                self.framework_message(id_value(body.get("framework_id")), id_value(body.get("executor_id")), str(body.get("data", "")))
            elif kind == "UPDATE_FRAMEWORK":
                info = body.get("framework_info", {})
                fw = self.frameworks.get(id_value(info.get("id")))
                if fw is not None:
                    fw.info = info
                    self.checkpoint.save_framework(fw.framework_id, info)
            else:
                log.debug("ignoring master event %s", kind)
        except (KeyError, TypeError, AttributeError) as e:
            log.warning("malformed %s event from the master: %r", kind, e)

    def _registered(self, body: dict[str, Any]) -> None:
        agent_id = id_value(body.get("agent_id"))
        if agent_id and agent_id != self.agent_id:
            self.agent_id = agent_id
            self.checkpoint.save_agent_id(agent_id)
        master = body.get("master_info", {}) or {}
        self.master_hostname = master.get("hostname")
        self.registered = True
        log.info("registered with the master as %s", self.agent_id)
        self.updates.restart(now=time.time())
        self._wake.set()

    # -- tasks -----------------------------------------------------------------------------

    def _framework(self, info: dict[str, Any]) -> FrameworkRecord:
        fw_id = id_value(info.get("id"))
        fw = self.frameworks.get(fw_id)
        if fw is None:
            fw = FrameworkRecord(fw_id, info)
            self.frameworks[fw_id] = fw
            self.completed_frameworks = [f for f in self.completed_frameworks if f.framework_id != fw_id]
        elif fw.info == info:
            return fw                      # checkpointed already: spare the launch an fsync
        else:
            fw.info = info
        self.checkpoint.save_framework(fw_id, info)
        return fw

    def _known_task(self, fw_id: str, task_id: str) -> TaskRecord | None:
        fw = self.frameworks.get(fw_id)
        if fw is None:
            return None
        for ex in fw.executors.values():
            if task_id in ex.tasks:
                return ex.tasks[task_id]
        return None

    def sandbox_for(self, fw_id: str, ex_id: str, container_id: str) -> Path:
        return (
            self.work_dir / "slaves" / component(self.agent_id or "unregistered")
            / "frameworks" / component(fw_id)
            / "executors" / component(ex_id)
            / "runs" / container_id
        )

    def _new_executor(self, fw: FrameworkRecord, ex_id: str, info: dict[str, Any], kind: str) -> ExecutorRecord:
        old = fw.executors.pop(ex_id, None)
        if old is not None:
            # An ended run of the same executor id (a task id reused): keep it as history.
            fw.completed_executors.append(old)
            del fw.completed_executors[:-MAX_COMPLETED_EXECUTORS]
            self.sandboxes_to_gc[str(old.sandbox)] = time.time()
        container_id = str(uuid.uuid4())
        sandbox = self.sandbox_for(fw.framework_id, ex_id, container_id)
        sandbox.mkdir(parents=True, exist_ok=True)
        latest = sandbox.parent / "latest"
        tmp = sandbox.parent / f".latest.{container_id}"
        try:
            os.symlink(container_id, tmp)
            os.replace(tmp, latest)
        except OSError as e:
            log.warning("cannot link %s: %s", latest, e)
        ex = ExecutorRecord(fw.framework_id, ex_id, info, kind, container_id, sandbox)
        fw.executors[ex_id] = ex
        self.save_executor(ex)
        return ex

    def run_task(self, framework_info: dict[str, Any], task_info: dict[str, Any]) -> None:
        fw = self._framework(framework_info)
        task_id = id_value(task_info.get("task_id"))
        if self._known_task(fw.framework_id, task_id) is not None:
            log.warning("ignoring a second RUN_TASK for task %s", task_id)
            return
        executor = task_info.get("executor")
        if executor:
            self._run_with_executor(fw, executor, [task_info])
            return
        ex_info = self._command_executor_info(fw, task_info)
        ex = self._new_executor(fw, task_id, ex_info, "command")
        task = TaskRecord(fw.framework_id, task_id, task_info)
        ex.tasks[task_id] = task
        self.save_task(task)
        self.spawn(self._run_command_task(fw, ex, task), f"task-{task_id}")

    def run_task_group(self, framework_info: dict[str, Any], executor: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        fw = self._framework(framework_info)
        fresh = [t for t in tasks if self._known_task(fw.framework_id, id_value(t.get("task_id"))) is None]
        if fresh:
            self._run_with_executor(fw, executor, fresh, group=True)

    def _run_with_executor(self, fw: FrameworkRecord, executor: dict[str, Any], tasks: list[dict[str, Any]], *, group: bool = False) -> None:
        ex_id = id_value(executor.get("executor_id"))
        ex = fw.executors.get(ex_id)
        if ex is not None and ex.ended:
            ex = None                     # _new_executor moves the ended run to history
        kind = "custom" if executor.get("command") else "default"
        new = ex is None
        if ex is None:
            info = dict(executor)
            info.setdefault("framework_id", {"value": fw.framework_id})
            ex = self._new_executor(fw, ex_id, info, kind)
        records = []
        for t in tasks:
            task = TaskRecord(fw.framework_id, ex_id, t)
            ex.tasks[task.task_id] = task
            self.save_task(task)
            records.append(task)
        if ex.kind == "default":
            for task in records:
                self.spawn(self._run_default_task(fw, ex, task), f"task-{task.task_id}")
            return
        if group:
            ex.pending_launches.append({"group": True, "tasks": [t.task_id for t in records]})
        else:
            ex.pending_launches += [{"group": False, "tasks": [t.task_id]} for t in records]
        self.save_executor(ex)
        if new:
            self.spawn(self._launch_executor(fw, ex), f"executor-{ex_id}")
        elif ex.stream is not None:
            self.flush_launches(ex)

    def kill_task(self, fw_id: str, task_id: str, kill_policy: dict[str, Any] | None) -> None:
        task = self._known_task(fw_id, task_id)
        if task is None or task.terminal:
            if task is None:
                self._send_lost(fw_id, task_id)
            return
        fw = self.frameworks[fw_id]
        ex = fw.executors[task.executor_id]
        if kill_policy:
            task.kill_grace = _grace(kill_policy)
        if ex.kind == "custom":
            self._kill_executor_task(fw, ex, task)
            return
        if task.kill_requested:
            return
        task.kill_requested = True
        if task.launched and fw.has_capability("TASK_KILLING_STATE"):
            self.update_task(task, "TASK_KILLING")
        else:
            self.save_task(task)
        if task.launched:
            self.spawn(self._kill_container(task, self._task_container(ex, task)), f"kill-{task_id}")

    def _task_container(self, ex: ExecutorRecord, task: TaskRecord) -> str:
        return task.container_id if ex.kind == "default" and task.container_id else ex.container_id

    async def _kill_container(self, task: TaskRecord, container_id: str) -> None:
        grace = task.kill_grace
        if grace is None:
            grace = _grace(task.info.get("kill_policy")) if task.info.get("kill_policy") else DEFAULT_KILL_GRACE
        if task.health is not None:
            await task.health.stop()
            task.health = None
        await self.containerizer.kill(container_id, grace)

    def _kill_executor_task(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        queued = any(task.task_id in g["tasks"] for g in ex.pending_launches)
        if queued:
            for g in ex.pending_launches:
                g["tasks"] = [t for t in g["tasks"] if t != task.task_id]
            ex.pending_launches = [g for g in ex.pending_launches if g["tasks"]]
            self.save_executor(ex)
            self.update_task(task, "TASK_KILLED", message="Killed before delivery to the executor", source="SOURCE_AGENT")
            if not ex.pending_launches and all(t.terminal for t in ex.tasks.values()) and not ex.subscribed_once:
                self.shutdown_executor(fw, ex)
            return
        if ex.stream is not None:
            event: dict[str, Any] = {"task_id": {"value": task.task_id}}
            if task.kill_grace is not None:
                event["kill_policy"] = {"grace_period": {"nanoseconds": int(task.kill_grace * 1e9)}}
            ex.stream.send({"type": "KILL", "kill": event})
        else:
            ex.pending_kills.add(task.task_id)
            self.save_executor(ex)

    def _send_lost(self, fw_id: str, task_id: str) -> None:
        status = {
            "task_id": {"value": task_id},
            "state": "TASK_LOST",
            "message": "Attempted to kill an unknown task",
            "reason": "REASON_RECONCILIATION",
            "source": "SOURCE_AGENT",
            "agent_id": {"value": self.agent_id},
            "timestamp": time.time(),
        }
        self.spawn(self._call_status(fw_id, status))

    async def _call_status(self, fw_id: str, status: dict[str, Any]) -> None:
        await self.link.call(
            {
                "type": "STATUS_UPDATE",
                "status_update": {
                    "agent_id": {"value": self.agent_id},
                    "framework_id": {"value": fw_id},
                    "status": status,
                },
            }
        )

    # -- command tasks ---------------------------------------------------------------------

    def _command_executor_info(self, fw: FrameworkRecord, task_info: dict[str, Any]) -> dict[str, Any]:
        task_id = id_value(task_info.get("task_id"))
        command = task_info.get("command", {}) or {}
        shown = command.get("value", "")
        return {
            "executor_id": {"value": task_id},
            "framework_id": {"value": fw.framework_id},
            "name": f"Command Executor (Task: {task_id}) (Command: sh -c '{shown}')",
            "source": task_id,
            "type": "DEFAULT",
            "command": {"value": "lichen-command-executor", "shell": False},
            "resources": task_info.get("resources", []),
            "labels": task_info.get("labels", {"labels": []}) or {"labels": []},
        }

    async def _run_command_task(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        if not await self._prepare_and_launch(fw, ex, task, ex.container_id, ex.sandbox):
            self._executor_ended(fw, ex, None)
            return
        await self._watch_command_container(fw, ex)

    async def _prepare_and_launch(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord, container_id: str, sandbox: Path) -> bool:
        """Fetch, launch, STARTING + RUNNING. False (with a terminal update sent) on failure."""
        command = task.info.get("command", {}) or {}
        uris = command.get("uris", []) or []
        user = self._task_user(fw, command)
        if uris:
            try:
                from lichen.agent.fetcher import FetchError, fetch

                try:
                    await fetch(uris, sandbox, self.work_dir / "cache", user=user)
                except FetchError as e:
                    self._launch_failed(task, f"Failed to fetch URIs: {e}")
                    return False
            except ImportError:
                self._launch_failed(task, "Failed to fetch URIs: the fetcher is not available")
                return False
        if task.kill_requested:
            self.update_task(task, "TASK_KILLED", message="Task killed before it was launched", source="SOURCE_AGENT")
            return False
        if user is not None:
            try:
                pwd.getpwnam(user)
            except KeyError:
                self._launch_failed(task, f"Failed to get user information for '{user}'")
                return False
        spec = LaunchSpec(
            container_id=container_id,
            sandbox=sandbox,
            argv=_argv(command),
            env=self._task_env(fw, ex, task, sandbox, command),
            user=user,
            cpus=_scalar(task.info.get("resources"), "cpus") or None,
            mem_mb=_scalar(task.info.get("resources"), "mem") or None,
            labels={"task_id": task.task_id, "framework_id": fw.framework_id},
            container=task.info.get("container") if isinstance(task.info.get("container"), dict) else None,
            shell=bool(command.get("shell", True)),
        )
        # TASK_STARTING says the launch has begun (as Mesos's command executor sends it,
        # before it forks the command); its acknowledgement then travels while the
        # container starts, and TASK_RUNNING goes out the moment the container runs.
        self.update_task(task, "TASK_STARTING")
        try:
            await self.containerizer.launch(spec)
        except LaunchError as e:
            self._launch_failed(task, f"Failed to launch container: {e}")
            return False
        task.launched = True
        note = getattr(self.containerizer, "notes", {}).pop(container_id, "")
        if note:
            self.update_task(task, "TASK_RUNNING", message=note)
        else:
            self.update_task(task, "TASK_RUNNING")
        self._start_health_check(fw, ex, task, sandbox=sandbox, env=spec.env)
        return True

    def _launch_failed(self, task: TaskRecord, message: str) -> None:
        self.update_task(task, "TASK_FAILED", message=message, reason="REASON_CONTAINER_LAUNCH_FAILED", source="SOURCE_AGENT")

    def _task_user(self, fw: FrameworkRecord, command: dict[str, Any]) -> str | None:
        if os.geteuid() != 0:
            return None
        user = command.get("user") or fw.info.get("user") or None
        return str(user) if user else None

    def _task_env(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord, sandbox: Path, command: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._mesos_env(fw, ex, sandbox))
        env["MESOS_TASK_ID"] = task.task_id
        for var in (command.get("environment", {}) or {}).get("variables", []) or []:
            if var.get("type", "VALUE") == "VALUE" and "name" in var:
                env[str(var["name"])] = str(var.get("value", ""))
        return env

    def _mesos_env(self, fw: FrameworkRecord, ex: ExecutorRecord, sandbox: Path) -> dict[str, str]:
        grace = self.flags.executor_shutdown_grace_period
        sgp = ex.info.get("shutdown_grace_period")
        if isinstance(sgp, dict) and "nanoseconds" in sgp:
            grace = float(sgp["nanoseconds"]) / 1e9
        env = {
            "MESOS_AGENT_ENDPOINT": self.endpoint(),
            "MESOS_FRAMEWORK_ID": fw.framework_id,
            "MESOS_EXECUTOR_ID": ex.executor_id,
            "MESOS_CHECKPOINT": "1" if fw.info.get("checkpoint") else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": duration_text(grace),
            "MESOS_DIRECTORY": str(sandbox),
            "MESOS_SANDBOX": str(sandbox),
            "MESOS_SLAVE_ID": self.agent_id or "",
            "MESOS_SLAVE_PID": self.pid(),
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
            "LIBPROCESS_PORT": "0",
        }
        if fw.info.get("checkpoint"):
            env["MESOS_RECOVERY_TIMEOUT"] = "15mins"
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = "2secs"
        return env

    def _start_health_check(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord, *, sandbox: Path | None = None, env: dict[str, str] | None = None) -> None:
        check = task.info.get("health_check")
        if not check or task.terminal or task.health is not None:
            return
        try:
            from lichen.agent.health import HealthChecker
        except ImportError:
            log.warning("health checks are not available; task %s runs unchecked", task.task_id)
            return
        box = sandbox or (Path(task.sandbox) if task.sandbox else ex.sandbox)
        command = task.info.get("command", {}) or {}
        checker_env = env or self._task_env(fw, ex, task, box, command)

        def on_change(healthy: bool, kill: bool) -> None:
            if task.terminal:
                return
            task.healthy = healthy
            if kill:
                task.killed_by_health = True
                self.kill_task(fw.framework_id, task.task_id, None)
            else:
                self.update_task(task, "TASK_RUNNING", healthy=healthy, reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")

        try:
            task.health = HealthChecker(check, host=self.host, env=checker_env, sandbox=box, on_change=on_change)
        except LichenError as e:
            log.warning("task %s has an invalid health check: %s", task.task_id, e)
            return
        task.health.start()

    async def _watch_command_container(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        termination = await self.containerizer.wait(ex.container_id)
        task = next(iter(ex.tasks.values()), None)
        if task is not None and not task.terminal:
            await self._task_ended(task, termination)
        await self.containerizer.destroy(ex.container_id)
        self._executor_ended(fw, ex, termination, send_exited=False)

    async def _task_ended(self, task: TaskRecord, termination: Termination) -> None:
        if task.health is not None:
            await task.health.stop()
            task.health = None
        message = termination_message(termination)
        if task.kill_requested:
            healthy = False if task.killed_by_health else None
            self.update_task(task, "TASK_KILLED", message=message, healthy=healthy)
        elif termination.oom_killed:
            self.update_task(task, "TASK_FAILED", message=message, reason="REASON_CONTAINER_LIMITATION_MEMORY")
        elif termination.exit_code == 0:
            self.update_task(task, "TASK_FINISHED", message=message)
        else:
            self.update_task(task, "TASK_FAILED", message=message, reason="REASON_COMMAND_EXECUTOR_FAILED")

    # -- default-executor tasks (task groups without an executor command) -------------------

    async def _run_default_task(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        task.container_id = str(uuid.uuid4())
        sandbox = ex.sandbox / "tasks" / component(task.task_id)
        sandbox.mkdir(parents=True, exist_ok=True)
        task.sandbox = str(sandbox)
        self.save_task(task)
        if await self._prepare_and_launch(fw, ex, task, task.container_id, sandbox):
            await self._watch_task_container(fw, ex, task)
        self._maybe_end_default_executor(fw, ex)

    async def _watch_task_container(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        assert task.container_id is not None
        termination = await self.containerizer.wait(task.container_id)
        if not task.terminal:
            await self._task_ended(task, termination)
        await self.containerizer.destroy(task.container_id)
        self._maybe_end_default_executor(fw, ex)

    def _maybe_end_default_executor(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        if ex.kind == "default" and not ex.ended and all(t.terminal for t in ex.tasks.values()):
            self._executor_ended(fw, ex, None, send_exited=False)

    # -- custom executors ------------------------------------------------------------------

    async def _launch_executor(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        command = ex.info.get("command", {}) or {}
        uris = command.get("uris", []) or []
        user = self._task_user(fw, command)
        error: str | None = None
        if uris:
            try:
                from lichen.agent.fetcher import FetchError, fetch

                try:
                    await fetch(uris, ex.sandbox, self.work_dir / "cache", user=user)
                except FetchError as e:
                    error = f"Failed to fetch URIs: {e}"
            except ImportError:
                error = "Failed to fetch URIs: the fetcher is not available"
        env = dict(os.environ)
        env.update(self._mesos_env(fw, ex, ex.sandbox))
        for var in (command.get("environment", {}) or {}).get("variables", []) or []:
            if "name" in var:
                env[str(var["name"])] = str(var.get("value", ""))
        if error is None:
            spec = LaunchSpec(
                container_id=ex.container_id,
                sandbox=ex.sandbox,
                argv=_argv(command),
                env=env,
                user=user,
                cpus=_scalar(ex.info.get("resources"), "cpus") or None,
                mem_mb=_scalar(ex.info.get("resources"), "mem") or None,
                labels={"executor_id": ex.executor_id, "framework_id": fw.framework_id},
                container=ex.info.get("container") if isinstance(ex.info.get("container"), dict) else None,
                shell=bool(command.get("shell", True)),
            )
            try:
                await self.containerizer.launch(spec)
            except LaunchError as e:
                error = f"Failed to launch container: {e}"
        if error is not None:
            for task in ex.tasks.values():
                if not task.terminal:
                    self._launch_failed(task, error)
            ex.pending_launches = []
            self._executor_ended(fw, ex, None, send_exited=False)
            return
        self.spawn(self._registration_timeout(fw, ex), f"reg-timeout-{ex.executor_id}")
        await self._watch_executor(fw, ex)

    async def _registration_timeout(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        await asyncio.sleep(self.flags.executor_registration_timeout)
        if not ex.subscribed_once and not ex.ended:
            log.warning("executor %s did not register in time; killing it", ex.executor_id)
            ex.registration_timed_out = True
            await self.containerizer.kill(ex.container_id, 0.0)

    async def _watch_executor(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        termination = await self.containerizer.wait(ex.container_id)
        await self.containerizer.destroy(ex.container_id)
        if ex.stream is not None:
            ex.stream.close()
            ex.stream = None
        for task in ex.tasks.values():
            if task.terminal:
                continue
            if ex.registration_timed_out:
                reason, message = "REASON_EXECUTOR_REGISTRATION_TIMEOUT", "Executor did not register within " + duration_text(self.flags.executor_registration_timeout)
            else:
                reason, message = "REASON_EXECUTOR_TERMINATED", "Executor terminated: " + termination_message(termination)
            state = "TASK_KILLED" if ex.shutting_down or task.kill_requested else "TASK_FAILED"
            self.update_task(task, state, message=message, reason=reason, source="SOURCE_AGENT")
        ex.pending_launches = []
        self._executor_ended(fw, ex, termination, send_exited=True)

    def flush_launches(self, ex: ExecutorRecord) -> None:
        """Send the executor every task it has not been given yet (it is subscribed)."""
        if ex.stream is None:
            return
        for launch in ex.pending_launches:
            tasks = [ex.tasks[t] for t in launch["tasks"] if t in ex.tasks and not ex.tasks[t].terminal]
            if not tasks:
                continue
            if launch["group"]:
                ex.stream.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": [t.info for t in tasks]}}})
            else:
                ex.stream.send({"type": "LAUNCH", "launch": {"task": tasks[0].info}})
            for t in tasks:
                t.launched = True
                self.save_task(t)
        ex.pending_launches = []
        for task_id in sorted(ex.pending_kills):
            if task_id in ex.tasks and not ex.tasks[task_id].terminal:
                ex.stream.send({"type": "KILL", "kill": {"task_id": {"value": task_id}}})
        ex.pending_kills = set()
        self.save_executor(ex)

    def shutdown_executor(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        if ex.ended:
            return
        ex.shutting_down = True
        self.save_executor(ex)
        if ex.kind in ("command", "default"):
            for task in ex.tasks.values():
                if not task.terminal:
                    self.kill_task(fw.framework_id, task.task_id, None)
            return
        if ex.stream is not None:
            ex.stream.send({"type": "SHUTDOWN"})
        self.spawn(self._kill_after_grace(ex), f"shutdown-{ex.executor_id}")

    async def _kill_after_grace(self, ex: ExecutorRecord) -> None:
        grace = self.flags.executor_shutdown_grace_period
        sgp = ex.info.get("shutdown_grace_period")
        if isinstance(sgp, dict) and "nanoseconds" in sgp:
            grace = float(sgp["nanoseconds"]) / 1e9
        await self.containerizer.kill(ex.container_id, grace)

    def shutdown_framework(self, fw_id: str) -> None:
        fw = self.frameworks.get(fw_id)
        if fw is None:
            return
        for ex in list(fw.executors.values()):
            self.shutdown_executor(fw, ex)
        self._maybe_complete_framework(fw)

    def framework_message(self, fw_id: str, ex_id: str, data: str) -> None:
        fw = self.frameworks.get(fw_id)
        ex = fw.executors.get(ex_id) if fw else None
        if ex is None or ex.stream is None:
            log.info("dropping a framework message for executor %s of %s", ex_id, fw_id)
            return
        ex.stream.send({"type": "MESSAGE", "message": {"data": data}})

    def executor_message(self, ex: ExecutorRecord, data: str) -> None:
        self.spawn(
            self.link.call(
                {
                    "type": "EXECUTOR_MESSAGE",
                    "executor_message": {
                        "agent_id": {"value": self.agent_id},
                        "framework_id": {"value": ex.framework_id},
                        "executor_id": {"value": ex.executor_id},
                        "data": data,
                    },
                }
            )
        )

    # -- ends of executors and frameworks --------------------------------------------------

    def _executor_ended(self, fw: FrameworkRecord, ex: ExecutorRecord, termination: Termination | None, *, send_exited: bool = False) -> None:
        if ex.ended:
            return
        ex.ended = True
        self.save_executor(ex)
        if send_exited:
            status = wait_status(termination) if termination is not None else 0
            self.spawn(
                self.link.call(
                    {
                        "type": "EXITED_EXECUTOR",
                        "exited_executor": {
                            "agent_id": {"value": self.agent_id},
                            "framework_id": {"value": fw.framework_id},
                            "executor_id": {"value": ex.executor_id},
                            "status": status,
                        },
                    }
                )
            )
        self._maybe_complete_executor(fw, ex)

    def _maybe_complete_executor(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        """Move an ended executor whose tasks are all acknowledged to completed."""
        if not ex.ended or any(True for _ in ex.tasks):
            return
        if fw.executors.get(ex.executor_id) is ex:
            del fw.executors[ex.executor_id]
        fw.completed_executors.append(ex)
        del fw.completed_executors[:-MAX_COMPLETED_EXECUTORS]
        self.checkpoint.remove_executor(fw.framework_id, ex.executor_id)
        self.sandboxes_to_gc[str(ex.sandbox)] = time.time()
        self._maybe_complete_framework(fw)

    def _maybe_complete_framework(self, fw: FrameworkRecord) -> None:
        if fw.executors:
            return
        if self.frameworks.get(fw.framework_id) is fw:
            del self.frameworks[fw.framework_id]
        self.completed_frameworks.append(fw)
        del self.completed_frameworks[:-MAX_COMPLETED_FRAMEWORKS]
        self.checkpoint.remove_framework(fw.framework_id)

    # -- status updates --------------------------------------------------------------------

    def update_task(
        self,
        task: TaskRecord,
        state: str,
        *,
        message: str | None = None,
        reason: str | None = None,
        source: str = "SOURCE_EXECUTOR",
        healthy: bool | None = None,
    ) -> None:
        status: dict[str, Any] = {
            "task_id": {"value": task.task_id},
            "state": state,
            "source": source,
            "timestamp": time.time(),
            "uuid": new_uuid(),
        }
        if message is not None:
            status["message"] = message
        if reason is not None:
            status["reason"] = reason
        if healthy is None and task.healthy is not None and state == "TASK_RUNNING":
            healthy = task.healthy
        if healthy is not None:
            status["healthy"] = healthy
        self.record_status(task, status)

    def record_status(self, task: TaskRecord, status: dict[str, Any]) -> None:
        """Apply a status (from us or an executor), queue it for the master, checkpoint."""
        status.setdefault("agent_id", {"value": self.agent_id})
        status.setdefault("executor_id", {"value": task.executor_id})
        was_terminal = task.terminal
        task.state = str(status["state"])
        task.statuses.append({"state": task.state, "timestamp": status.get("timestamp", time.time())})
        if task.terminal and not was_terminal:
            key = task.state.removeprefix("TASK_").lower()
            if key in self.counters:
                self.counters[key] += 1
        self.updates.add(Update(task.framework_id, task.task_id, status), now=time.time())
        self.save_task(task)
        self._wake.set()

    def acknowledge(self, fw_id: str, task_id: str, uuid_: str) -> None:
        acked = self.updates.acknowledge(fw_id, task_id, uuid_, now=time.time())
        if acked is None:
            return
        self._wake.set()
        fw = self.frameworks.get(fw_id)
        task = self._known_task(fw_id, task_id)
        if task is None or fw is None:
            return
        if acked.status.get("state") in TERMINAL_STATES and not self.updates.pending(fw_id, task_id):
            ex = fw.executors[task.executor_id]
            del ex.tasks[task_id]
            ex.completed_tasks.append(task)
            self.checkpoint.remove_task(fw_id, task.executor_id, task_id)
            self._maybe_complete_executor(fw, ex)
        else:
            self.save_task(task)

    async def _send_updates(self) -> None:
        while True:
            self._wake.clear()
            timeout: float | None = 1.0
            if self.registered and self.agent_id:
                for update in self.updates.due(time.time()):
                    self.spawn(self._call_status(update.framework_id, update.status), "status-update")
                deadline = self.updates.next_deadline()
                timeout = None if deadline is None else max(0.01, deadline - time.time())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # -- checkpointing ---------------------------------------------------------------------

    def save_task(self, task: TaskRecord) -> None:
        self.checkpoint.save_task(
            task.framework_id,
            task.executor_id,
            task.task_id,
            task.to_json(self.updates.pending(task.framework_id, task.task_id)),
        )

    def save_executor(self, ex: ExecutorRecord) -> None:
        self.checkpoint.save_executor(ex.framework_id, ex.executor_id, ex.to_json())

    # -- garbage collection ----------------------------------------------------------------

    async def _gc_loop(self) -> None:
        interval = min(60.0, max(0.1, self.flags.gc_delay / 2))
        while True:
            await asyncio.sleep(interval)
            await self.collect_garbage()

    async def collect_garbage(self) -> None:
        """Remove released sandboxes that gc.py says are due."""
        from lichen.agent import gc

        if not self.sandboxes_to_gc:
            return
        infos = [gc.SandboxInfo(Path(p), t) for p, t in self.sandboxes_to_gc.items()]
        removed = await gc.collect(
            infos,
            work_dir=self.work_dir,
            now=time.time(),
            gc_delay=self.flags.gc_delay,
            headroom=self.flags.gc_disk_headroom,
        )
        for path in removed:
            self.sandboxes_to_gc.pop(str(path), None)

    def _schedule_leftover_sandboxes(self) -> None:
        """After a restart: every run directory no live executor uses is garbage (by mtime)."""
        live = {str(ex.sandbox) for fw in self.frameworks.values() for ex in fw.executors.values()}
        for run in self.work_dir.glob("slaves/*/frameworks/*/executors/*/runs/*"):
            if run.name == "latest" or run.is_symlink() or str(run) in live:
                continue
            try:
                self.sandboxes_to_gc[str(run)] = run.stat().st_mtime
            except OSError:
                continue

    # -- views -----------------------------------------------------------------------------

    def task_json(self, task: TaskRecord) -> dict[str, Any]:
        """The master's Task shape (used for re-registration and the operator API)."""
        fw = self.frameworks.get(task.framework_id)
        ex = fw.executors.get(task.executor_id) if fw else None
        out: dict[str, Any] = {
            "task_id": {"value": task.task_id},
            "framework_id": {"value": task.framework_id},
            "agent_id": {"value": self.agent_id},
            "name": task.info.get("name", ""),
            "state": task.state,
            "resources": task.info.get("resources", []),
            "statuses": [
                {"task_id": {"value": task.task_id}, "state": s["state"], "timestamp": s["timestamp"]}
                for s in task.statuses
            ],
            "task_info": task.info,
        }
        if ex is None or ex.kind != "command":
            out["executor_id"] = {"value": task.executor_id}
        return out

    def used_resources(self) -> Resources:
        total = Resources.empty()
        for fw in self.frameworks.values():
            for ex in fw.executors.values():
                if ex.ended:
                    continue
                if ex.kind == "custom":
                    total = total + _resources(ex.info.get("resources"))
                for task in ex.tasks.values():
                    if not task.terminal:
                        total = total + _resources(task.info.get("resources"))
        return total


def _grace(kill_policy: dict[str, Any] | None) -> float:
    gp = (kill_policy or {}).get("grace_period") or {}
    if "nanoseconds" in gp:
        return max(0.0, float(gp["nanoseconds"]) / 1e9)
    return DEFAULT_KILL_GRACE


def _argv(command: dict[str, Any]) -> list[str]:
    value = str(command.get("value", ""))
    if command.get("shell", True):
        return ["/bin/sh", "-c", value]
    args = [str(a) for a in command.get("arguments", []) or []]
    if not value:
        # No value: an image's entrypoint runs with `arguments` (Docker's CMD), as Mesos does
        # for containers; image containerizers read ["", *arguments].
        return ["", *args]
    # Mesos execs `value` with `arguments` as the whole argv (arguments[0] is argv[0]).
    return [value, *args[1:]] if args else [value]


def _scalar(resources: Any, name: str) -> float:
    total = 0.0
    for r in resources or []:
        if isinstance(r, dict) and r.get("name") == name:
            total += float((r.get("scalar") or {}).get("value", 0.0))
    return total


def _resources(items: Any) -> Resources:
    try:
        return Resources.from_json(list(items or []))
    except LichenError:
        return Resources.empty()       # malformed task resources count as nothing
