"""Allocator invariants under random event sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lichen.master.allocator import Allocation, Allocator
from lichen.resources import Resources

ROLES = ["*", "a", "b"]
FRAMEWORKS = ["f0", "f1", "f2", "f3"]


@st.composite
def agent_resources(draw: st.DrawFn) -> Resources:
    parts = [f"cpus:{draw(st.integers(0, 8))};mem:{draw(st.integers(0, 2048))}"]
    for role in ("a", "b"):
        if draw(st.booleans()):
            parts.append(f"cpus({role}):{draw(st.integers(1, 4))};mem({role}):64")
    if draw(st.booleans()):
        parts.append("ports:[31000-31010]")
    return Resources.parse(";".join(parts))


_event = st.one_of(
    st.tuples(st.just("allocate"), st.integers(0, 3)),
    st.tuples(st.just("decline"), st.integers(0, 20), st.sampled_from([0.0, 1.0, 5.0, 100.0])),
    st.tuples(st.just("suppress"), st.sampled_from(FRAMEWORKS)),
    st.tuples(st.just("revive"), st.sampled_from(FRAMEWORKS)),
    st.tuples(st.just("deactivate"), st.sampled_from(FRAMEWORKS)),
    st.tuples(st.just("activate"), st.sampled_from(FRAMEWORKS)),
    st.tuples(st.just("tick"), st.floats(0.0, 10.0)),
)


def _build(draw: st.DrawFn) -> tuple[Allocator, dict[str, Resources]]:
    allocator = Allocator(weights={"a": draw(st.sampled_from([0.5, 1.0, 3.0]))})
    totals = {f"s{i}": draw(agent_resources()) for i in range(draw(st.integers(1, 5)))}
    for agent_id, total in totals.items():
        allocator.add_agent(agent_id, total)
    for framework_id in FRAMEWORKS:
        roles = draw(st.sets(st.sampled_from(ROLES), min_size=1))
        allocator.add_framework(framework_id, roles)
    return allocator, totals


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_events_keep_invariants(data: st.DataObject) -> None:
    allocator, totals = _build(data.draw)
    events = data.draw(st.lists(_event, max_size=25))
    held: list[Allocation] = []
    filters: dict[tuple[str, str], float] = {}
    now = 0.0
    for event in events:
        kind = event[0]
        if kind == "tick":
            now += event[1]
        elif kind == "allocate":
            decisions = allocator.allocate(now)
            for d in decisions:
                # Filtered pairs are never offered.
                assert filters.get((d.framework_id, d.agent_id), -1.0) <= now
                # Reserved resources only go to their role.
                assert d.resources.roles() <= {"*", d.role}
                assert d.resources.is_allocatable()
            held.extend(decisions)
        elif kind == "decline" and held:
            d = held.pop(event[1] % len(held))
            refuse = event[2]
            allocator.recover(
                d.framework_id, d.role, d.agent_id, d.resources, refuse_seconds=refuse, now=now
            )
            if refuse > 0:
                key = (d.framework_id, d.agent_id)
                filters[key] = max(filters.get(key, -1.0), now + refuse)
        elif kind == "suppress":
            allocator.suppress(event[1])
        elif kind == "revive":
            allocator.revive(event[1])
            for key in [k for k in filters if k[0] == event[1]]:
                del filters[key]
        elif kind == "deactivate":
            allocator.deactivate_framework(event[1])
        elif kind == "activate":
            allocator.activate_framework(event[1])
        # Never more allocated than an agent has.
        for agent_id, total in totals.items():
            assert allocator.allocated_on(agent_id) <= total
            assert allocator.free(agent_id) + allocator.allocated_on(agent_id) == total
    for d in held:
        allocator.recover(d.framework_id, d.role, d.agent_id, d.resources)
    for agent_id, total in totals.items():
        assert allocator.free(agent_id) == total
    assert all(allocator.dominant_share(f) == 0.0 for f in FRAMEWORKS)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_full_cycle_offers_every_allocatable_agent_once_free(data: st.DataObject) -> None:
    allocator, totals = _build(data.draw)
    decisions = allocator.allocate(0.0)
    given_out: dict[str, Resources] = {}
    for d in decisions:
        given_out[d.agent_id] = given_out.get(d.agent_id, Resources.empty()) + d.resources
    for agent_id, total in totals.items():
        assert given_out.get(agent_id, Resources.empty()) <= total
    # A second cycle right away has nothing left to give.
    assert allocator.allocate(0.0) == []


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_remove_framework_returns_all(data: st.DataObject) -> None:
    allocator, totals = _build(data.draw)
    allocator.allocate(0.0)
    for framework_id in FRAMEWORKS:
        allocator.remove_framework(framework_id)
    for agent_id, total in totals.items():
        assert allocator.free(agent_id) == total
