"""Deployment plans and the step executor (pure).

`plan` turns a change (the apps before and after) into a `DeploymentPlan`: steps run one
after the other, the actions of a step in parallel.

1. StopApplication for every removed app;
2. StartApplication for every new app (it starts at 0 instances);
3. one step per dependency level of the target apps (an app's level is its longest
   dependency path, so dependencies come first), holding only apps that are new or
   changed: new apps and instances-only changes scale (ScaleApplication), config changes
   and restarts roll (RestartApplication).

`decide` is the executor of one action: given the app's target and its current live
instances, it says what to do *now* (how many to launch, which to kill) and whether the
action is done. It keeps no state, so the shell calls it again after every change to the
app's instances (launch, status update, health or readiness change) and carries out the
answer; a restarted scheduler resumes a deployment by just calling it again.

The shell counts an instance it asked for as soon as it is asked for (an instance in
TASK_STAGING with `config_version` set), so that `decide` does not launch it twice.

Rolling restart (n = target instances, H = healthy instances not being killed):

    minHealthy  = ceil(n * minimumHealthCapacity)
    maxCapacity = floor(n * (1 + maximumOverCapacity)), plus 1 when minHealthy == maxCapacity <= H

Each call kills old instances while at least minHealthy healthy ones remain (so Marathon's
`killNow = H - minHealthy` at the start, then one per new instance that turns healthy),
always kills old instances beyond n, and launches new ones while all instances, those
being killed included, stay under maxCapacity. Instances that are not healthy (staging,
failing checks, not ready) are killed first and do not use up the healthy budget;
Marathon would keep them until their turn (and gives up on the deployment when
nothing can start), we replace them at once. Hence, when the app starts with at least
minHealthy healthy instances, H never drops below minHealthy, and launches never take the
instance count above max(maxCapacity, n + 1) (n + 1 only through the bump, which needs
minHealthy == maxCapacity == n).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lichen.frameworks.marathon.model import Action, ActionKind, DeploymentPlan, Instance

YOUNGEST_FIRST = "YOUNGEST_FIRST"
OLDEST_FIRST = "OLDEST_FIRST"

_STAGED = ("TASK_STAGING", "TASK_STARTING")
_UNREACHABLE = ("TASK_UNREACHABLE", "TASK_LOST", "TASK_UNKNOWN")


@dataclass(frozen=True, slots=True)
class Spec:
    """What planning needs to know of one app."""

    app_id: str
    instances: int
    config: str                      # opaque fingerprint of everything but `instances`
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    launch: int                      # new instances (of the target config) to launch now
    kill: tuple[str, ...]            # instance ids to kill now
    done: bool                       # the action is complete


# --- plans ------------------------------------------------------------------------------


def plan(original: Mapping[str, Spec], target: Mapping[str, Spec], *,
         restart: Iterable[str] = frozenset(), plan_id: str, version: str) -> DeploymentPlan:
    """The plan taking `original` to `target`; apps in `restart` roll even if unchanged.

    Raises ValueError naming the cycle when the target's dependencies have one. The plan's
    `original`/`target` definitions are left empty for the caller to fill.
    """
    restarting = set(restart)
    removed = sorted(set(original) - set(target))
    new = sorted(set(target) - set(original))
    steps: list[tuple[Action, ...]] = [
        tuple(Action("StopApplication", app) for app in removed),
        tuple(Action("StartApplication", app) for app in new),
    ]
    changed: set[str] = set(new)
    for level in dependency_order(target):
        actions = []
        for app in level:
            action = _change(original.get(app), target[app], app in restarting)
            if action is not None:
                actions.append(Action(action, app))
                changed.add(app)
        steps.append(tuple(actions))
    return DeploymentPlan(
        id=plan_id,
        version=version,
        steps=tuple(step for step in steps if step),
        affected_apps=tuple(sorted(changed | set(removed))),
    )


def _change(before: Spec | None, after: Spec, restart: bool) -> ActionKind | None:
    if before is None:
        return "ScaleApplication"
    if before.config != after.config or restart:
        return "RestartApplication"
    if before.instances != after.instances:
        return "ScaleApplication"
    return None


def dependency_order(specs: Mapping[str, Spec]) -> list[list[str]]:
    """Apps in levels by longest dependency path, dependencies first; each level sorted.

    Dependencies naming apps outside `specs` are ignored. Raises
    `ValueError("dependency cycle: /a -> /b -> /a")` on a cycle.
    """
    level: dict[str, int] = {}
    for app in sorted(specs):
        _level_of(app, specs, level, [])
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for app in sorted(level):
        levels[level[app]].append(app)
    return levels


def _level_of(app: str, specs: Mapping[str, Spec], level: dict[str, int], path: list[str]) -> int:
    if app in level:
        return level[app]
    if app in path:
        cycle = path[path.index(app):] + [app]
        raise ValueError("dependency cycle: " + " -> ".join(cycle))
    path.append(app)
    deps = sorted(d for d in set(specs[app].dependencies) if d in specs)
    result = 1 + max((_level_of(d, specs, level, path) for d in deps), default=-1)
    path.pop()
    level[app] = result
    return result


# --- the step executor ------------------------------------------------------------------


def is_healthy(instance: Instance, has_health_checks: bool) -> bool:
    """Running, passing its health checks (if any) and ready."""
    return (instance.state == "TASK_RUNNING"
            and (instance.healthy is True or not has_health_checks)
            and instance.ready)


def restart_bounds(n: int, min_health_capacity: float, max_over_capacity: float,
                   healthy: int) -> tuple[int, int]:
    """(minHealthy, maxCapacity) of a rolling restart to `n` with `healthy` healthy now."""
    # round() first: 10 * 0.7 is 7.000000000000001 in floating point, not 7.
    min_healthy = math.ceil(round(n * min_health_capacity, 9))
    max_capacity = math.floor(round(n * (1 + max_over_capacity), 9))
    if min_healthy == max_capacity <= healthy:
        max_capacity += 1                # room for one new instance when nothing may go first
    return min_healthy, max_capacity


def kill_order(instances: Iterable[Instance], *, kill_selection: str,
               has_health_checks: bool) -> list[Instance]:
    """Instances in the order to kill them: unreachable, staging, starting, then not
    healthy or not ready, then the rest; within each, by `kill_selection`."""
    def rank(i: Instance) -> int:
        if i.unreachable_since is not None or i.state in _UNREACHABLE:
            return 0
        if i.state in _STAGED:
            return 1 + _STAGED.index(i.state)
        if not is_healthy(i, has_health_checks):
            return 3
        return 4

    youngest_first = kill_selection != OLDEST_FIRST
    return sorted(instances, key=lambda i: (
        rank(i), -i.staged_at if youngest_first else i.staged_at, i.instance_id))


def decide(action: Action, target: Spec, instances: list[Instance], *,
           min_health_capacity: float, max_over_capacity: float, kill_selection: str,
           has_health_checks: bool, now: float) -> Decision:
    """What to do now for `action` on an app at `target`, given its current live
    (non-terminal) instances of any version. `now` is accepted for future time-based
    rules; no decision depends on it today."""
    del now
    if action.action == "StartApplication":
        return Decision(launch=0, kill=(), done=True)
    if action.action == "StopApplication":
        return Decision(launch=0, kill=tuple(i.instance_id for i in instances if not i.killing),
                        done=not instances)
    if action.action == "ScaleApplication":
        return _scale(target, instances, kill_selection=kill_selection,
                      has_health_checks=has_health_checks)
    if action.action == "RestartApplication":
        return _restart(target, instances, min_health_capacity=min_health_capacity,
                        max_over_capacity=max_over_capacity, kill_selection=kill_selection,
                        has_health_checks=has_health_checks)
    raise ValueError(f"unknown action {action.action!r}")


def _scale(target: Spec, instances: list[Instance], *, kill_selection: str,
           has_health_checks: bool) -> Decision:
    active = [i for i in instances if not i.killing]     # those being killed count as gone
    n = target.instances
    if len(active) < n:
        return Decision(launch=n - len(active), kill=(), done=False)
    if len(active) > n:
        victims = kill_order(active, kill_selection=kill_selection,
                             has_health_checks=has_health_checks)[:len(active) - n]
        return Decision(launch=0, kill=tuple(i.instance_id for i in victims), done=False)
    done = (len(active) == len(instances)                  # the kills have landed
            and all(is_healthy(i, has_health_checks) for i in active))
    return Decision(launch=0, kill=(), done=done)


def _restart(target: Spec, instances: list[Instance], *, min_health_capacity: float,
             max_over_capacity: float, kill_selection: str, has_health_checks: bool) -> Decision:
    n = target.instances
    new = [i for i in instances if i.config_version == target.config and not i.killing]
    # New instances beyond n (left by an earlier deployment) go like old ones; keep the
    # best n, i.e. the last n in kill order.
    surplus = max(0, len(new) - n)
    by_kill = kill_order(new, kill_selection=kill_selection, has_health_checks=has_health_checks)
    kept, extra = by_kill[surplus:], by_kill[:surplus]
    old = [i for i in instances if i.config_version != target.config and not i.killing] + extra

    healthy = sum(1 for i in instances if not i.killing and is_healthy(i, has_health_checks))
    min_healthy, max_capacity = restart_bounds(n, min_health_capacity, max_over_capacity, healthy)

    kill: list[str] = []
    budget = healthy - min_healthy      # healthy instances we may take away now
    left = len(old)                     # old instances not killed by this decision
    for victim in kill_order(old, kill_selection=kill_selection,
                             has_health_checks=has_health_checks):
        if not is_healthy(victim, has_health_checks):
            pass                        # not serving: replacing it costs nothing
        elif budget > 0:
            budget -= 1
        elif left > n:
            budget -= 1                 # more old than n: kill at least the excess
        else:
            continue
        kill.append(victim.instance_id)
        left -= 1

    launch = max(0, min(n - len(kept), max_capacity - len(instances)))
    done = (len(instances) == len(kept) == n
            and all(is_healthy(i, has_health_checks) for i in kept))
    return Decision(launch=launch, kill=tuple(kill), done=done)
