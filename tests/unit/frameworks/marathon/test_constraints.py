"""Placement constraints: validation, each operator, and placement invariants."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lichen.frameworks.marathon.constraints import AgentView, satisfies, validate_constraint


def agent(name: str, **attributes: str) -> AgentView:
    return AgentView(agent_id=f"id-{name}", hostname=name, attributes=dict(attributes))


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize("c", [
    ["hostname", "UNIQUE"],
    ["hostname", "CLUSTER"],
    ["rack", "CLUSTER", "r1"],
    ["rack", "GROUP_BY"],
    ["rack", "GROUP_BY", "3"],
    ["rack", "LIKE", "r[0-9]+"],
    ["rack", "UNLIKE", "r1"],
    ["rack", "MAX_PER", "2"],
    ["cpus", "IS", "4"],
    ["@zone", "GROUP_BY", ""],
])
def test_valid_constraints_pass(c: list[str]) -> None:
    assert validate_constraint(c) is None


@pytest.mark.parametrize(("c", "words"), [
    ("hostname", "2 or 3 fields"),
    (["hostname"], "2 or 3 fields"),
    (["a", "UNIQUE", "b", "c"], "2 or 3 fields"),
    (["hostname", 1], "strings"),
    (["", "UNIQUE"], "Missing field"),
    (["hostname", "BOGUS"], "Invalid operator 'BOGUS'"),
    (["hostname", "unique"], "Invalid operator"),
    (["hostname", "UNIQUE", "x"], "not used"),
    (["rack", "LIKE"], "Missing value"),
    (["rack", "IS", ""], "Missing value"),
    (["rack", "MAX_PER"], "Missing value"),
    (["rack", "MAX_PER", "two"], "not a valid integer"),
    (["rack", "MAX_PER", "0"], "at least 1"),
    (["rack", "GROUP_BY", "x"], "not a valid integer"),
    (["rack", "LIKE", "r[0-"], "not a valid regular expression"),
])
def test_malformed_constraints_are_explained(c: Any, words: str) -> None:
    error = validate_constraint(c)
    assert error is not None and words in error


# --- operators --------------------------------------------------------------------------


def test_unique_hostname_refuses_a_host_already_used() -> None:
    c = [["hostname", "UNIQUE"]]
    assert satisfies(c, agent("a"), [])
    assert not satisfies(c, agent("a"), [agent("a")])
    assert satisfies(c, agent("b"), [agent("a")])


def test_at_hostname_is_the_hostname() -> None:
    assert not satisfies([["@hostname", "UNIQUE"]], agent("a"), [agent("a")])
    assert satisfies([["@hostname", "LIKE", "a"]], agent("a"), [])


def test_unique_attribute_counts_values_not_agents() -> None:
    c = [["rack", "UNIQUE"]]
    assert not satisfies(c, agent("b", rack="r1"), [agent("a", rack="r1")])
    assert satisfies(c, agent("b", rack="r2"), [agent("a", rack="r1")])


def test_agent_lacking_the_attribute_passes_only_unlike() -> None:
    bare = agent("a")
    for c in (["rack", "UNIQUE"], ["rack", "CLUSTER"], ["rack", "GROUP_BY"], ["rack", "LIKE", ".*"],
              ["rack", "MAX_PER", "5"], ["rack", "IS", "r1"], ["@zone", "UNIQUE"]):
        assert not satisfies([c], bare, []), c
    assert satisfies([["rack", "UNLIKE", "r1"]], bare, [])


def test_cluster_with_value_pins_to_it() -> None:
    c = [["rack", "CLUSTER", "r1"]]
    assert satisfies(c, agent("a", rack="r1"), [])
    assert not satisfies(c, agent("b", rack="r2"), [])


def test_cluster_without_value_follows_the_first_placement() -> None:
    c = [["rack", "CLUSTER"]]
    assert satisfies(c, agent("b", rack="r2"), [])
    assert satisfies(c, agent("b", rack="r2"), [agent("a", rack="r2")])
    assert not satisfies(c, agent("c", rack="r1"), [agent("a", rack="r2")])


def test_group_by_prefers_the_least_used_value() -> None:
    c = [["rack", "GROUP_BY"]]
    placed = [agent("a", rack="r1"), agent("b", rack="r1"), agent("c", rack="r2")]
    assert not satisfies(c, agent("d", rack="r1"), placed)
    assert satisfies(c, agent("d", rack="r2"), placed)
    assert satisfies(c, agent("d", rack="r3"), placed)      # unused value


def test_group_by_with_count_fills_every_group_first() -> None:
    c = [["rack", "GROUP_BY", "3"]]
    placed = [agent("a", rack="r1"), agent("b", rack="r2")]
    assert not satisfies(c, agent("c", rack="r1"), placed)
    assert satisfies(c, agent("c", rack="r3"), placed)
    placed.append(agent("c", rack="r3"))
    assert satisfies(c, agent("d", rack="r1"), placed)


def test_like_and_unlike_match_the_whole_value() -> None:
    assert satisfies([["rack", "LIKE", "r[12]"]], agent("a", rack="r1"), [])
    assert not satisfies([["rack", "LIKE", "r"]], agent("a", rack="r1"), [])
    assert not satisfies([["rack", "UNLIKE", "r[12]"]], agent("a", rack="r1"), [])
    assert satisfies([["rack", "UNLIKE", "r"]], agent("a", rack="r1"), [])


def test_max_per_caps_each_value() -> None:
    c = [["rack", "MAX_PER", "2"]]
    assert satisfies(c, agent("c", rack="r1"), [agent("a", rack="r1")])
    assert not satisfies(c, agent("c", rack="r1"), [agent("a", rack="r1"), agent("b", rack="r1")])


def test_is_compares_numbers_to_three_decimals_and_text_exactly() -> None:
    assert satisfies([["cpus", "IS", "4.0001"]], agent("a", cpus="4"), [])
    assert not satisfies([["cpus", "IS", "4.01"]], agent("a", cpus="4"), [])
    assert satisfies([["disks", "IS", "{a,b}"]], agent("a", disks="{a,b}"), [])
    assert not satisfies([["disks", "IS", "{b,a}"]], agent("a", disks="{a,b}"), [])


def test_region_and_zone_come_from_the_fault_domain() -> None:
    c = [["@zone", "UNIQUE"]]
    assert not satisfies(c, agent("b", zone="z1"), [agent("a", zone="z1")])
    assert satisfies([["@region", "IS", "eu"]], agent("a", region="eu"), [])


def test_all_constraints_must_hold() -> None:
    c = [["hostname", "UNIQUE"], ["rack", "IS", "r1"]]
    assert satisfies(c, agent("a", rack="r1"), [])
    assert not satisfies(c, agent("a", rack="r2"), [])
    assert not satisfies(c, agent("a", rack="r1"), [agent("a", rack="r1")])


def test_placed_agents_lacking_the_field_are_ignored() -> None:
    assert satisfies([["rack", "UNIQUE"]], agent("b", rack="r1"), [agent("a")])
    assert satisfies([["rack", "CLUSTER"]], agent("b", rack="r1"), [agent("a")])


# --- placement properties ---------------------------------------------------------------

VALUES = ["r1", "r2", "r3", "r4"]

pools = st.lists(st.sampled_from(VALUES), min_size=1, max_size=12).map(
    lambda racks: [agent(f"h{i}", rack=r) for i, r in enumerate(racks)])


def place(constraints: list[list[str]], pool: list[AgentView], choices: list[int]) -> list[AgentView]:
    """Place one instance per choice, each on an allowed agent of `pool` (the choice picks
    which); stop when no agent is allowed."""
    placed: list[AgentView] = []
    for choice in choices:
        allowed = [a for a in pool if satisfies(constraints, a, placed)]
        if not allowed:
            break
        placed.append(allowed[choice % len(allowed)])
    return placed


def racks(placed: list[AgentView]) -> Counter[str]:
    return Counter(a.attributes["rack"] for a in placed)


choices = st.lists(st.integers(min_value=0, max_value=100), max_size=40)


@given(pools, choices)
def test_unique_never_places_two_per_value(pool: list[AgentView], picks: list[int]) -> None:
    placed = place([["rack", "UNIQUE"]], pool, picks)
    assert all(n == 1 for n in racks(placed).values())
    if len(picks) >= len(VALUES):
        assert set(racks(placed)) == {a.attributes["rack"] for a in pool}


@given(pools, choices, st.integers(min_value=1, max_value=4))
def test_max_per_never_exceeds_its_limit(pool: list[AgentView], picks: list[int], n: int) -> None:
    placed = place([["rack", "MAX_PER", str(n)]], pool, picks)
    assert all(count <= n for count in racks(placed).values())


@given(pools, choices)
def test_cluster_keeps_every_instance_on_one_value(pool: list[AgentView], picks: list[int]) -> None:
    placed = place([["rack", "CLUSTER"]], pool, picks)
    assert len(racks(placed)) <= 1


@given(pools, choices, st.sampled_from(["r[12]", "r1", "r.*", "x"]))
def test_like_and_unlike_hold_for_every_placement(pool: list[AgentView], picks: list[int],
                                                   regex: str) -> None:
    liked = place([["rack", "LIKE", regex]], pool, picks)
    assert all(re.fullmatch(regex, a.attributes["rack"]) for a in liked)
    unliked = place([["rack", "UNLIKE", regex]], pool, picks)
    assert not any(re.fullmatch(regex, a.attributes["rack"]) for a in unliked)


@given(pools, choices)
def test_group_by_with_the_group_count_keeps_counts_within_one(pool: list[AgentView],
                                                               picks: list[int]) -> None:
    groups = len({a.attributes["rack"] for a in pool})
    placed = place([["rack", "GROUP_BY", str(groups)]], pool, picks)
    counts = racks(placed)
    assert max(counts.values(), default=0) - min(counts.values(), default=0) <= 1
    if len(placed) >= groups:
        assert len(counts) == groups


@settings(max_examples=200)
@given(pools, choices)
def test_group_by_places_only_on_a_least_used_or_new_value(pool: list[AgentView],
                                                           picks: list[int]) -> None:
    # Without a group count GROUP_BY balances the values in use: a value seen late (an
    # agent that joins) starts at 0 and catches up, so the spread is exact only up to it.
    placed: list[AgentView] = []
    for choice in picks:
        allowed = [a for a in pool if satisfies([["rack", "GROUP_BY"]], a, placed)]
        if not allowed:
            break
        counts = racks(placed)
        chosen = allowed[choice % len(allowed)]
        value = chosen.attributes["rack"]
        assert counts[value] == 0 or counts[value] == min(counts.values())
        placed.append(chosen)
