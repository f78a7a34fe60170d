"""Value types shared by Marathon's cores and shells.

An *instance* is one launched copy of an app (Marathon >= 1.5 wording); it has exactly
one Mesos task here. Times are epoch seconds (floats); the API renders them as
`YYYY-MM-DDTHH:MM:SS.mmmZ`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lichen.frameworks.marathon.health import Health

ActionKind = Literal["StartApplication", "StopApplication", "ScaleApplication", "RestartApplication"]


@dataclass(frozen=True, slots=True)
class Action:
    action: ActionKind
    app: str                      # absolute app id, "/g/web"


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    id: str                       # uuid4
    version: str                  # the change's timestamp string, "2026-11-24T16:20:00.000Z"
    steps: tuple[tuple[Action, ...], ...]
    affected_apps: tuple[str, ...]
    # App definitions (normalized JSON dicts, as appdef.app_to_json emits them without
    # read-only fields) before and after the change; None = absent on that side.
    original: dict[str, dict[str, object] | None] = field(default_factory=dict)
    target: dict[str, dict[str, object] | None] = field(default_factory=dict)
    current_step: int = 0         # 0-based index of the running step; == len(steps) when done


@dataclass(frozen=True, slots=True)
class Instance:
    """What the planner and the API need to know of one instance."""

    instance_id: str              # "<safeId>.instance-<uuid>"
    task_id: str                  # "<safeId>.instance-<uuid>._app.1"
    app_id: str
    version: str                  # the app version it runs
    state: str                    # Mesos task state: TASK_STAGING ... ; "TASK_STAGING" until the first update
    agent_id: str = ""
    host: str = ""
    ports: tuple[int, ...] = ()
    service_ports: tuple[int, ...] = ()
    staged_at: float = 0.0
    started_at: float | None = None
    healthy: bool | None = None   # None: no result yet (or no health checks); see health.combine
    # One entry per health check of the app (None: no result yet); kept in memory only,
    # as Marathon keeps its health check results.
    health: tuple[Health | None, ...] = ()
    ready: bool = True            # readiness checks passed (True when the app has none)
    unreachable_since: float | None = None
    killing: bool = False         # a kill was sent
    config_version: str = ""      # the app's lastConfigChangeAt version it was launched with
