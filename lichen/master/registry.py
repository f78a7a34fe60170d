"""The master's bookkeeping: frameworks, agents, tasks and offers, in memory.

Theory of operation. Frameworks and agents are admitted by the shell (`master.py`)
and live here as records; tasks hang off both their framework and their agent (the
same `Task` object). A task is *active* (in `Framework.tasks`) from launch until its
terminal update is acknowledged, then *completed* (a bounded history). Tasks on an
unreachable agent of a PARTITION_AWARE framework sit in `Framework.unreachable_tasks`
until the agent comes back. Offers are outstanding allocations: the allocator counts
them as allocated until they are accepted, declined or rescinded.

Nothing here does I/O or reads a clock: times come in as arguments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lichen.resources import Resources
from lichen.task_states import TERMINAL_STATES

ALL_STATES = TERMINAL_STATES | {
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
    "TASK_UNKNOWN",
}


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


@dataclass(slots=True)
class Task:
    task_id: str
    framework_id: str
    agent_id: str
    name: str
    role: str
    resources: Resources
    info: dict[str, Any]                 # the TaskInfo as launched
    executor_id: str = ""                # "" for command tasks
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, Any] | None = None # the latest TaskStatus
    pending_uuid: str | None = None      # uuid of the update the framework has not acked yet
    resources_recovered: bool = False    # terminal: resources already given back

    def record(self, status: dict[str, Any], now: float) -> None:
        self.state = status["state"]
        self.latest = status
        entry: dict[str, Any] = {"state": status["state"], "timestamp": status.get("timestamp", now)}
        if "container_status" in status:
            entry["container_status"] = status["container_status"]
        if "healthy" in status:
            entry["healthy"] = status["healthy"]
        self.statuses.append(entry)
        if len(self.statuses) > 50:
            del self.statuses[:-50]


@dataclass(slots=True)
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    created: float


@dataclass(slots=True)
class Framework:
    framework_id: str
    info: dict[str, Any]
    registered_time: float
    connected: bool = False
    active: bool = False
    recovered: bool = False              # known from the registry or an agent, not subscribed yet
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    unreachable_tasks: dict[str, Task] = field(default_factory=dict)
    completed_tasks: deque[Task] = field(default_factory=lambda: deque(maxlen=1000))
    offers: dict[str, Offer] = field(default_factory=dict)
    executors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (agent, executor) -> ExecutorInfo

    @property
    def capabilities(self) -> set[str]:
        return {c.get("type", "") for c in self.info.get("capabilities", []) if isinstance(c, dict)}

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    @property
    def roles(self) -> set[str]:
        return framework_roles(self.info)


def framework_roles(info: dict[str, Any]) -> set[str]:
    caps = {c.get("type", "") for c in info.get("capabilities", []) if isinstance(c, dict)}
    if "MULTI_ROLE" in caps:
        return set(info.get("roles") or [])
    return {info.get("role") or "*"}


@dataclass(slots=True)
class Agent:
    agent_id: str
    hostname: str
    port: int
    ip: str
    resources: Resources
    attributes: list[dict[str, Any]]
    registered_time: float
    version: str = ""
    reregistered_time: float | None = None
    connected: bool = True
    reachable: bool = True
    unreachable_time: float | None = None
    missed_pings: int = 0
    awaiting_pong: bool = False
    tasks: dict[tuple[str, str], Task] = field(default_factory=dict)   # (framework, task) -> Task

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.ip}:{self.port}"

    def info_json(self) -> dict[str, Any]:
        return {
            "id": {"value": self.agent_id},
            "hostname": self.hostname,
            "port": self.port,
            "resources": self.resources.to_json(),
            "attributes": self.attributes,
        }

    def used(self) -> Resources:
        total = Resources.empty()
        for t in self.tasks.values():
            if not is_terminal(t.state):
                total = total + t.resources
        return total


class CompletedTasks:
    """Per-framework bounded history of finished tasks (Mesos's max_completed_tasks_per_framework)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def new(self) -> deque[Task]:
        return deque(maxlen=max(self.limit, 0))
