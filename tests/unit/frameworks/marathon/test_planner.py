"""Deployment plans, dependency order, and the step executor (with a small simulator)."""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lichen.frameworks.marathon.model import Action, ActionKind, DeploymentPlan, Instance
from lichen.frameworks.marathon.planner import (
    OLDEST_FIRST,
    YOUNGEST_FIRST,
    Decision,
    Spec,
    decide,
    dependency_order,
    plan,
    restart_bounds,
)

OLD, NEW = "cfg-old", "cfg-new"


def spec(app: str, instances: int = 1, config: str = "c1", deps: tuple[str, ...] = ()) -> Spec:
    return Spec(app_id=app, instances=instances, config=config, dependencies=deps)


def steps_of(p: DeploymentPlan) -> list[list[tuple[str, str]]]:
    return [[(a.action, a.app) for a in step] for step in p.steps]


def make_plan(original: dict[str, Spec], target: dict[str, Spec],
              restart: set[str] | None = None) -> list[list[tuple[str, str]]]:
    return steps_of(plan(original, target, restart=restart or set(), plan_id="p1",
                         version="2026-01-01T00:00:00.000Z"))


# --- plans ------------------------------------------------------------------------------


def test_new_app_starts_then_scales() -> None:
    p = plan({}, {"/a": spec("/a", 3)}, plan_id="p1", version="v1")
    assert steps_of(p) == [[("StartApplication", "/a")], [("ScaleApplication", "/a")]]
    assert p.affected_apps == ("/a",)
    assert (p.id, p.version, p.current_step) == ("p1", "v1", 0)
    assert p.original == {} and p.target == {}


def test_removed_app_stops() -> None:
    assert make_plan({"/a": spec("/a")}, {}) == [[("StopApplication", "/a")]]


def test_instances_only_change_scales_and_config_change_restarts() -> None:
    original = {"/a": spec("/a", 1), "/b": spec("/b", 1)}
    target = {"/a": spec("/a", 5), "/b": spec("/b", 1, config="c2")}
    assert make_plan(original, target) == [
        [("ScaleApplication", "/a"), ("RestartApplication", "/b")]]


def test_config_and_instances_change_together_restarts() -> None:
    assert make_plan({"/a": spec("/a", 1)}, {"/a": spec("/a", 4, config="c2")}) == [
        [("RestartApplication", "/a")]]


def test_unchanged_apps_are_left_out() -> None:
    p = plan({"/a": spec("/a"), "/b": spec("/b")}, {"/a": spec("/a"), "/b": spec("/b", 2)},
             plan_id="p", version="v")
    assert steps_of(p) == [[("ScaleApplication", "/b")]]
    assert p.affected_apps == ("/b",)


def test_nothing_changed_gives_an_empty_plan() -> None:
    p = plan({"/a": spec("/a")}, {"/a": spec("/a")}, plan_id="p", version="v")
    assert p.steps == () and p.affected_apps == ()


def test_restart_rolls_an_unchanged_app() -> None:
    assert make_plan({"/a": spec("/a")}, {"/a": spec("/a")}, restart={"/a"}) == [
        [("RestartApplication", "/a")]]


def test_dependencies_come_first_in_their_own_steps() -> None:
    target = {"/g/db": spec("/g/db"), "/g/web": spec("/g/web", deps=("/g/db",)),
              "/g/lb": spec("/g/lb", deps=("/g/web",)), "/g/cache": spec("/g/cache")}
    assert make_plan({}, target) == [
        [("StartApplication", "/g/cache"), ("StartApplication", "/g/db"),
         ("StartApplication", "/g/lb"), ("StartApplication", "/g/web")],
        [("ScaleApplication", "/g/cache"), ("ScaleApplication", "/g/db")],
        [("ScaleApplication", "/g/web")],
        [("ScaleApplication", "/g/lb")],
    ]


def test_full_plan_order_stop_start_then_levels() -> None:
    original = {"/old": spec("/old"), "/db": spec("/db")}
    target = {"/db": spec("/db", config="c2"), "/web": spec("/web", deps=("/db",))}
    p = plan(original, target, plan_id="p", version="v")
    assert steps_of(p) == [
        [("StopApplication", "/old")],
        [("StartApplication", "/web")],
        [("RestartApplication", "/db")],
        [("ScaleApplication", "/web")],
    ]
    assert p.affected_apps == ("/db", "/old", "/web")


def test_dependency_levels_use_the_longest_path() -> None:
    specs = {"/a": spec("/a"), "/b": spec("/b", deps=("/a",)),
             "/c": spec("/c", deps=("/a", "/b"))}
    assert dependency_order(specs) == [["/a"], ["/b"], ["/c"]]


def test_dependencies_outside_the_target_are_ignored() -> None:
    assert dependency_order({"/a": spec("/a", deps=("/gone",))}) == [["/a"]]
    assert dependency_order({}) == []


def test_dependency_cycle_is_named() -> None:
    with pytest.raises(ValueError, match=r"^dependency cycle: /a -> /b -> /a$"):
        dependency_order({"/a": spec("/a", deps=("/b",)), "/b": spec("/b", deps=("/a",))})
    with pytest.raises(ValueError, match=r"^dependency cycle: /a -> /a$"):
        plan({}, {"/a": spec("/a", deps=("/a",))}, plan_id="p", version="v")


# --- the executor: builders -------------------------------------------------------------

_ids = itertools.count()


def inst(config: str = NEW, state: str = "TASK_RUNNING", *, healthy: bool | None = True,
         staged_at: float = 0.0, killing: bool = False, ready: bool = True,
         unreachable_since: float | None = None, iid: str | None = None) -> Instance:
    n = next(_ids)
    iid = iid or f"app.instance-{n}"
    return Instance(instance_id=iid, task_id=f"{iid}._app.1", app_id="/app", version="v",
                    state=state, staged_at=staged_at, healthy=healthy, killing=killing,
                    ready=ready, unreachable_since=unreachable_since, config_version=config)


def run(kind: ActionKind, instances: list[Instance], n: int, *, mhc: float = 1.0, moc: float = 1.0,
        kill_selection: str = YOUNGEST_FIRST, checks: bool = True) -> Decision:
    return decide(Action(kind, "/app"), spec("/app", n, config=NEW),
                  instances, min_health_capacity=mhc, max_over_capacity=moc,
                  kill_selection=kill_selection, has_health_checks=checks, now=100.0)


# --- start / stop -----------------------------------------------------------------------


def test_start_is_done_at_once() -> None:
    assert run("StartApplication", [], 3) == Decision(launch=0, kill=(), done=True)


def test_stop_kills_all_not_already_killing_and_waits_for_them() -> None:
    a, b = inst(iid="a"), inst(iid="b", killing=True)
    assert run("StopApplication", [a, b], 0) == Decision(launch=0, kill=("a",), done=False)
    assert run("StopApplication", [], 0).done


# --- scale ------------------------------------------------------------------------------


def test_scale_up_launches_the_missing_ones_counting_staging() -> None:
    d = run("ScaleApplication", [inst(), inst(state="TASK_STAGING", healthy=None)], 5)
    assert (d.launch, d.kill, d.done) == (3, (), False)


def test_scale_counts_killing_instances_as_gone() -> None:
    d = run("ScaleApplication", [inst(), inst(killing=True)], 2)
    assert d.launch == 1


def test_scale_down_kills_unreachable_staged_unhealthy_first() -> None:
    instances = [
        inst(iid="ok-old", staged_at=1), inst(iid="ok-young", staged_at=9),
        inst(iid="unhealthy", healthy=False, staged_at=2),
        inst(iid="staging", state="TASK_STAGING", healthy=None, staged_at=3),
        inst(iid="lost", state="TASK_UNREACHABLE", unreachable_since=50, staged_at=4),
    ]
    assert run("ScaleApplication", instances, 2).kill == ("lost", "staging", "unhealthy")
    assert run("ScaleApplication", instances, 1).kill == ("lost", "staging", "unhealthy",
                                                          "ok-young")


def test_scale_down_follows_kill_selection() -> None:
    instances = [inst(iid="t1", staged_at=1), inst(iid="t2", staged_at=2), inst(iid="t3", staged_at=3)]
    assert run("ScaleApplication", instances, 1).kill == ("t3", "t2")
    assert run("ScaleApplication", instances, 1, kill_selection=OLDEST_FIRST).kill == ("t1", "t2")


def test_scale_is_done_when_exactly_n_are_healthy_and_ready() -> None:
    assert run("ScaleApplication", [inst(), inst()], 2).done
    assert not run("ScaleApplication", [inst(), inst(healthy=None)], 2).done
    assert not run("ScaleApplication", [inst(), inst(ready=False)], 2).done
    assert not run("ScaleApplication", [inst(), inst(state="TASK_STAGING")], 2).done
    assert not run("ScaleApplication", [inst(), inst(killing=True)], 1).done
    assert run("ScaleApplication", [inst(healthy=None)], 1, checks=False).done
    assert run("ScaleApplication", [], 0).done


# --- rolling restart --------------------------------------------------------------------


def test_restart_bounds_follow_marathon() -> None:
    assert restart_bounds(10, 0.5, 0.2, healthy=10) == (5, 12)
    assert restart_bounds(10, 0.7, 0.0, healthy=10) == (7, 10)   # not ceil(7.000000000000001)
    assert restart_bounds(3, 1.0, 0.0, healthy=3) == (3, 4)      # the bump
    assert restart_bounds(3, 1.0, 0.0, healthy=2) == (3, 3)
    assert restart_bounds(0, 1.0, 1.0, healthy=0) == (0, 1)


def test_restart_kills_down_to_min_healthy_and_fills_capacity() -> None:
    old = [inst(OLD, iid=f"o{i}", staged_at=i) for i in range(10)]
    d = run("RestartApplication", old, 10, mhc=0.5, moc=0.2)
    # killNow = 10 - 5; maxCapacity = 12 counts the killed ones until they are gone
    assert len(d.kill) == 5 and d.launch == 2 and not d.done
    assert d.kill == ("o9", "o8", "o7", "o6", "o5")      # youngest first


def test_restart_with_no_room_starts_one_over_capacity() -> None:
    old = [inst(OLD) for _ in range(3)]
    d = run("RestartApplication", old, 3, mhc=1.0, moc=0.0)
    assert (d.launch, d.kill) == (1, ())


def test_restart_kills_one_old_per_new_healthy() -> None:
    old = [inst(OLD, iid=f"o{i}") for i in range(3)]
    d = run("RestartApplication", [*old, inst(NEW)], 3, mhc=1.0, moc=0.0)
    assert len(d.kill) == 1 and d.launch == 0
    staging = inst(NEW, state="TASK_STAGING", healthy=None)
    d = run("RestartApplication", [*old, staging], 3, mhc=1.0, moc=0.0)
    assert (d.launch, d.kill) == (0, ())


def test_restart_replaces_unhealthy_old_instances_at_once() -> None:
    old = [inst(OLD, healthy=False, iid="sick"), inst(OLD, iid="ok")]
    d = run("RestartApplication", old, 2, mhc=1.0, moc=0.0)
    assert d.kill == ("sick",)


def test_restart_kills_at_least_the_excess_old() -> None:
    old = [inst(OLD, staged_at=i) for i in range(5)]
    d = run("RestartApplication", old, 2, mhc=1.0, moc=0.0)
    assert len(d.kill) == 3


def test_restart_kills_surplus_new_instances() -> None:
    new = [inst(NEW, iid=f"n{i}", staged_at=i) for i in range(3)]
    d = run("RestartApplication", new, 2, mhc=0.0, moc=0.0)
    assert d.kill == ("n2",) and not d.done


def test_restart_is_done_with_n_new_healthy_and_no_old() -> None:
    assert run("RestartApplication", [inst(NEW), inst(NEW)], 2).done
    assert not run("RestartApplication", [inst(NEW), inst(NEW, ready=False)], 2).done
    assert not run("RestartApplication", [inst(NEW), inst(NEW), inst(OLD, killing=True)], 2).done
    assert run("RestartApplication", [], 0).done


def test_restart_to_zero_kills_everything() -> None:
    d = run("RestartApplication", [inst(OLD), inst(OLD)], 0)
    assert len(d.kill) == 2 and d.launch == 0


# --- the simulator ----------------------------------------------------------------------


@dataclass
class Sim:
    """A tiny cluster: launched instances run (and turn healthy) or fail after a random
    delay; killed ones disappear after a random delay."""

    rng: random.Random
    fail_rate: float
    instances: dict[str, Instance] = field(default_factory=dict)
    events: list[tuple[float, int, str, str]] = field(default_factory=list)
    now: float = 0.0
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, config: str, *, running: bool) -> None:
        iid = f"app.instance-{next(self.seq)}"
        state = "TASK_RUNNING" if running else "TASK_STAGING"
        self.instances[iid] = inst(config, state, healthy=True if running else None,
                                   staged_at=self.now, iid=iid)
        if not running:
            fails = self.rng.random() < self.fail_rate
            self.at(self.rng.uniform(0.1, 5.0), "fail" if fails else "run", iid)

    def at(self, delay: float, kind: str, iid: str) -> None:
        heapq.heappush(self.events, (self.now + delay, next(self.seq), kind, iid))

    def apply(self, d: Decision) -> None:
        for iid in d.kill:
            assert not self.instances[iid].killing, "killed twice"
            self.instances[iid] = replace(self.instances[iid], killing=True)
            self.at(self.rng.uniform(0.1, 5.0), "gone", iid)
        for _ in range(d.launch):
            self.add(NEW, running=False)

    def step(self) -> None:
        assert self.events, "stuck: nothing in flight and not done"
        self.now, _, kind, iid = heapq.heappop(self.events)
        if iid not in self.instances:
            return
        if kind == "run":
            self.instances[iid] = replace(self.instances[iid], state="TASK_RUNNING", healthy=True)
        else:
            del self.instances[iid]

    def healthy(self) -> int:
        return sum(1 for i in self.instances.values()
                   if not i.killing and i.state == "TASK_RUNNING" and i.healthy)


MAX_EVENTS = 20_000

fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 20), mhc=fractions, moc=fractions,
       healthy_old=st.integers(0, 25), staging_old=st.integers(0, 3),
       kill_selection=st.sampled_from([YOUNGEST_FIRST, OLDEST_FIRST]),
       fail_rate=st.sampled_from([0.0, 0.0, 0.3]), seed=st.integers(0, 2**32 - 1))
def test_rolling_restart_converges_within_its_bounds(
        n: int, mhc: float, moc: float, healthy_old: int, staging_old: int,
        kill_selection: str, fail_rate: float, seed: int) -> None:
    sim = Sim(random.Random(seed), fail_rate)
    for _ in range(healthy_old):
        sim.add(OLD, running=True)
    for _ in range(staging_old):
        sim.add(OLD, running=False)
    min_healthy, max_capacity = restart_bounds(n, mhc, moc, healthy=0)
    # The bump (+1) needs minHealthy == maxCapacity, which is n then.
    bound = max(max_capacity, n + 1) if min_healthy == max_capacity else max_capacity
    ceiling = max(bound, len(sim.instances))
    guard_health = healthy_old >= min_healthy

    for _ in range(MAX_EVENTS):
        d = decide(Action("RestartApplication", "/app"), spec("/app", n, config=NEW),
                   list(sim.instances.values()), min_health_capacity=mhc,
                   max_over_capacity=moc, kill_selection=kill_selection,
                   has_health_checks=True, now=sim.now)
        if d.done:
            break
        before = len(sim.instances)
        sim.apply(d)
        if d.launch:
            assert len(sim.instances) <= bound, (before, d)
        assert len(sim.instances) <= ceiling
        if guard_health:
            assert sim.healthy() >= min_healthy
        sim.step()
    else:
        pytest.fail("the restart did not finish")

    final = list(sim.instances.values())
    assert len(final) == n
    assert all(i.config_version == NEW and i.state == "TASK_RUNNING" and i.healthy
               and not i.killing for i in final)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 20), running=st.integers(0, 25), staging=st.integers(0, 5),
       kill_selection=st.sampled_from([YOUNGEST_FIRST, OLDEST_FIRST]),
       fail_rate=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**32 - 1))
def test_scaling_converges_to_exactly_the_instances(
        n: int, running: int, staging: int, kill_selection: str, fail_rate: float,
        seed: int) -> None:
    sim = Sim(random.Random(seed), fail_rate)
    for _ in range(running):
        sim.add(NEW, running=True)
    for _ in range(staging):
        sim.add(NEW, running=False)

    for _ in range(MAX_EVENTS):
        d = decide(Action("ScaleApplication", "/app"), spec("/app", n, config=NEW),
                   list(sim.instances.values()), min_health_capacity=1.0,
                   max_over_capacity=1.0, kill_selection=kill_selection,
                   has_health_checks=True, now=sim.now)
        if d.done:
            break
        sim.apply(d)
        active = sum(1 for i in sim.instances.values() if not i.killing)
        assert active == n or not (d.launch or d.kill), "a scale decision misses the target"
        sim.step()
    else:
        pytest.fail("the scale did not finish")

    final = list(sim.instances.values())
    assert len(final) == n
    assert all(i.state == "TASK_RUNNING" and i.healthy and not i.killing for i in final)
