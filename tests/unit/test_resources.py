"""Resources: parsing, JSON forms, arithmetic and containment."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.errors import InvalidRequest
from lichen.resources import Resources

AGENT = "cpus:4;mem:4096;disk:10000;ports:[31000-32000];cpus(ops):2;zones:{a,b}"


def test_parse_merges_by_name_and_role() -> None:
    r = Resources.parse("cpus:1;cpus:2.5;cpus(ops):2;mem:10")
    assert r.scalar("cpus") == 5.5
    assert r.reserved("ops").scalar("cpus") == 2.0
    assert r.unreserved().scalar("cpus") == 3.5
    assert r.roles() == {"*", "ops"}


def test_parse_ranges_and_sets() -> None:
    r = Resources.parse("ports:[31000-31005, 31006-31010, 40000-40000];zones:{a, b}")
    assert r.ranges("ports") == [(31000, 31010), (40000, 40000)]
    assert r.set("zones") == {"a", "b"}


@pytest.mark.parametrize(
    "text",
    ["cpus", "cpus:-1", "cpus:abc", "ports:[5-1]", "ports:[a-b]", "cpus():1", "cpus:1;cpus:[1-2]"],
)
def test_parse_rejects_bad_parts_naming_them(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        Resources.parse(text)
    assert info.value.field is not None


def test_parse_accepts_json_list() -> None:
    r = Resources.parse(AGENT)
    assert Resources.parse(json.dumps(r.to_json())) == r


def test_from_json_takes_role_from_last_reservation() -> None:
    r = Resources.from_json(
        [
            {
                "name": "cpus",
                "type": "SCALAR",
                "scalar": {"value": 2},
                "role": "ignored",
                "reservations": [{"type": "STATIC", "role": "a"}, {"type": "DYNAMIC", "role": "b"}],
            },
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
        ]
    )
    assert r.reserved("b").scalar("cpus") == 2.0
    assert r.unreserved().scalar("mem") == 64.0


@pytest.mark.parametrize(
    "item",
    [
        {"type": "SCALAR", "scalar": {"value": 1}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}},
        {"name": "cpus", "type": "SCALAR", "ranges": {"range": []}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 1}]}},
        {"name": "cpus", "type": "TEXT"},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": "1"}},
    ],
)
def test_from_json_rejects_malformed(item: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        Resources.from_json([item])


def test_to_json_roles_refinement_and_allocation_info() -> None:
    r = Resources.parse("cpus:1;mem(ops):32")
    plain = r.to_json()
    assert {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "*"} in plain
    assert {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}, "role": "ops"} in plain
    refined = r.to_json(refinement=True, allocation_role="ops")
    mem = next(e for e in refined if e["name"] == "mem")
    assert mem["reservations"] == [{"type": "STATIC", "role": "ops"}]
    assert "role" not in mem
    assert all(e["allocation_info"] == {"role": "ops"} for e in refined)


def test_to_state_json_shape() -> None:
    r = Resources.parse("cpus:4;mem(ops):15360;ports:[31000-32000,32005-32010];zones:{b,a}")
    assert r.to_state_json() == {
        "cpus": 4.0,
        "gpus": 0.0,
        "mem": 15360.0,
        "disk": 0.0,
        "ports": "[31000-32000, 32005-32010]",
        "zones": "{a, b}",
    }


def test_scalars_round_to_three_decimals() -> None:
    total = Resources.empty()
    for _ in range(10):
        total = total + Resources.parse("cpus:0.1")
    assert total == Resources.parse("cpus:1")
    assert Resources.parse("cpus:0.0004").is_empty()


def test_subtract_more_than_present_raises() -> None:
    with pytest.raises(ValueError):
        Resources.parse("cpus:1") - Resources.parse("cpus:2")
    with pytest.raises(ValueError):
        Resources.parse("cpus:1") - Resources.parse("cpus(ops):1")
    with pytest.raises(ValueError):
        Resources.parse("ports:[1-5]") - Resources.parse("ports:[5-6]")


def test_subtract_ranges_splits() -> None:
    left = Resources.parse("ports:[1-10]") - Resources.parse("ports:[3-4,7-7]")
    assert left.ranges("ports") == [(1, 2), (5, 6), (8, 10)]


def test_containment_is_per_role() -> None:
    r = Resources.parse("cpus:4;cpus(ops):1")
    assert Resources.parse("cpus(ops):1") <= r
    assert not Resources.parse("cpus(ops):2") <= r
    assert not Resources.parse("cpus(dev):1") <= r
    assert Resources.empty() <= r


def test_allocatable_to_keeps_unreserved_and_own_role() -> None:
    r = Resources.parse("cpus:4;cpus(ops):1;mem(dev):64")
    assert r.allocatable_to("ops") == Resources.parse("cpus:4;cpus(ops):1")
    assert r.allocatable_to("other") == Resources.parse("cpus:4")


def test_min_allocatable() -> None:
    assert Resources.parse("cpus:0.01").is_allocatable()
    assert Resources.parse("mem:32").is_allocatable()
    assert not Resources.parse("cpus:0.009;mem:31;disk:100").is_allocatable()


def test_equal_values_hash_equal() -> None:
    a = Resources.parse("cpus:1;mem:2;ports:[1-2]")
    b = Resources.parse("ports:[1-1,2-2];mem:2;cpus:1")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1


_names = st.sampled_from(["cpus", "mem", "disk"])
_roles = st.sampled_from(["*", "a", "b"])


@st.composite
def resources(draw: st.DrawFn, port_base: int = 0) -> Resources:
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        name, role = draw(_names), draw(_roles)
        label = name if role == "*" else f"{name}({role})"
        parts.append(f"{label}:{draw(st.integers(0, 5000)) / 100}")
    for _ in range(draw(st.integers(0, 2))):
        b = port_base + draw(st.integers(0, 50))
        parts.append(f"ports({draw(_roles)}):[{b}-{b + draw(st.integers(0, 10))}]")
    return Resources.parse(";".join(parts))


# Ranges union, so the identity needs disjoint ports.
@given(resources(), resources(port_base=100))
def test_add_then_subtract_is_identity(a: Resources, b: Resources) -> None:
    assert (a + b) - b == a
    assert a <= a + b
    assert b <= a + b


@given(resources())
def test_json_round_trip(a: Resources) -> None:
    assert Resources.from_json(a.to_json()) == a
    assert Resources.from_json(a.to_json(refinement=True)) == a
