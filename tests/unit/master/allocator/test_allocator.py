"""The hierarchical DRF allocator: ordering, roles, filters, suppression, activity."""

from __future__ import annotations

from lichen.master.allocator import MAX_REFUSE_SECONDS, Allocation, Allocator
from lichen.resources import Resources

SMALL = "cpus:4;mem:1024"


def r(text: str) -> Resources:
    return Resources.parse(text)


def cluster(agents: dict[str, str], frameworks: dict[str, set[str]], **kw: object) -> Allocator:
    allocator = Allocator(**kw)  # type: ignore[arg-type]
    for agent_id, text in agents.items():
        allocator.add_agent(agent_id, r(text))
    for framework_id, roles in frameworks.items():
        allocator.add_framework(framework_id, roles)
    return allocator


def offers(decisions: list[Allocation]) -> set[tuple[str, str, str]]:
    return {(d.framework_id, d.role, d.agent_id) for d in decisions}


def test_offers_whole_free_agent_to_one_framework() -> None:
    allocator = cluster({"s1": SMALL}, {"f1": {"*"}})
    assert allocator.allocate(0.0) == [Allocation("f1", "*", "s1", r(SMALL))]
    assert allocator.free("s1").is_empty()
    assert allocator.allocate(1.0) == []


def test_drf_offers_next_to_framework_with_lowest_share() -> None:
    allocator = cluster({"s1": "cpus:8;mem:8192", "s2": SMALL}, {"a": {"*"}, "b": {"*"}})
    allocator.allocate_used("a", "*", "s1", r("cpus:1;mem:4096"))
    decisions = allocator.allocate(0.0)
    # b (share 0) takes s1 and its share (7/12 cpus) passes a's (4096/9216 mem).
    assert [(d.framework_id, d.agent_id) for d in decisions] == [("b", "s1"), ("a", "s2")]


def test_dominant_share_is_largest_resource_fraction() -> None:
    allocator = cluster({"s1": "cpus:10;mem:1000;disk:100"}, {"a": {"*"}})
    allocator.allocate_used("a", "*", "s1", r("cpus:1;mem:500;disk:10"))
    assert allocator.dominant_share("a") == 0.5


def test_every_agent_goes_to_lowest_share_in_turn() -> None:
    agents = {f"s{i}": SMALL for i in range(4)}
    allocator = cluster(agents, {"a": {"*"}, "b": {"*"}})
    decisions = allocator.allocate(0.0)
    assert [d.framework_id for d in decisions] == ["a", "b", "a", "b"]


def test_weights_divide_role_shares() -> None:
    allocator = cluster(
        {"s1": "cpus:10;mem:1000", "s2": SMALL},
        {"fa": {"heavy"}, "fb": {"light"}},
        weights={"heavy": 3.0},
    )
    allocator.allocate_used("fa", "heavy", "s1", r("cpus:2"))
    allocator.allocate_used("fb", "light", "s1", r("cpus:1"))
    assert allocator.role_share("heavy") < allocator.role_share("light")
    assert allocator.allocate(0.0, ["s2"])[0].framework_id == "fa"


def test_update_weights_changes_order() -> None:
    allocator = cluster({"s1": "cpus:10;mem:1000", "s2": SMALL}, {"fa": {"x"}, "fb": {"y"}})
    allocator.allocate_used("fa", "x", "s1", r("cpus:2"))
    allocator.allocate_used("fb", "y", "s1", r("cpus:1"))
    allocator.update_weights({"x": 4.0})
    assert allocator.allocate(0.0, ["s2"])[0].framework_id == "fa"


def test_reserved_resources_only_go_to_their_role() -> None:
    allocator = cluster({"s1": "cpus(ops):2;mem(ops):64"}, {"dev": {"dev"}, "star": {"*"}})
    assert allocator.allocate(0.0) == []
    allocator.add_framework("ops", {"ops"})
    assert allocator.allocate(0.0) == [Allocation("ops", "ops", "s1", r("cpus(ops):2;mem(ops):64"))]


def test_offer_for_a_role_has_unreserved_plus_its_reservation() -> None:
    allocator = cluster({"s1": "cpus:1;mem:64;cpus(ops):2"}, {"ops": {"ops"}})
    assert allocator.allocate(0.0)[0].resources == r("cpus:1;mem:64;cpus(ops):2")


def test_leftover_reservation_goes_to_its_role_in_same_cycle() -> None:
    allocator = cluster({"s1": "cpus:4;mem:1024;cpus(ops):2;mem(ops):64"}, {"a": {"*"}})
    allocator.add_framework("o", {"ops"})
    allocator.allocate_used("o", "ops", "s1", r("cpus(ops):1"))  # o is behind a in DRF
    decisions = allocator.allocate(0.0)
    assert decisions == [
        Allocation("a", "*", "s1", r(SMALL)),
        Allocation("o", "ops", "s1", r("cpus(ops):1;mem(ops):64")),
    ]


def test_decline_filter_holds_until_expiry() -> None:
    allocator = cluster({"s1": SMALL}, {"a": {"*"}})
    (d,) = allocator.allocate(0.0)
    allocator.recover("a", "*", "s1", d.resources, refuse_seconds=5.0, now=10.0)
    assert allocator.allocate(14.9) == []
    assert allocator.allocate(15.0) == [Allocation("a", "*", "s1", r(SMALL))]


def test_filter_is_per_agent_and_framework() -> None:
    allocator = cluster({"s1": SMALL, "s2": SMALL}, {"a": {"*"}, "b": {"*"}})
    for d in allocator.allocate(0.0):
        allocator.recover(d.framework_id, d.role, d.agent_id, d.resources)
    allocator.recover("a", "*", "s1", Resources.empty(), refuse_seconds=100.0, now=0.0)
    assert offers(allocator.allocate(1.0)) == {("b", "*", "s1"), ("a", "*", "s2")}


def test_huge_refuse_seconds_is_capped_at_a_year() -> None:
    allocator = cluster({"s1": SMALL}, {"a": {"*"}})
    (d,) = allocator.allocate(0.0)
    allocator.recover("a", "*", "s1", d.resources, refuse_seconds=4294967295.0, now=0.0)
    assert allocator.allocate(MAX_REFUSE_SECONDS - 1) == []
    assert len(allocator.allocate(MAX_REFUSE_SECONDS)) == 1


def test_group_filter_covering_every_agent_skips_framework() -> None:
    agents = {f"s{i}": SMALL for i in range(3)}
    allocator = cluster(agents, {"a": {"*"}, "b": {"*"}})
    allocator.add_filter("a", frozenset(agents), refuse_seconds=60.0, now=0.0)
    assert {d.framework_id for d in allocator.allocate(1.0)} == {"b"}
    for d in allocator.allocate(1.0):
        raise AssertionError(d)


def test_revive_clears_filters_and_unsuppresses() -> None:
    allocator = cluster({"s1": SMALL, "s2": SMALL}, {"a": {"*"}})
    allocator.add_filter("a", frozenset({"s1", "s2"}), refuse_seconds=60.0, now=0.0)
    allocator.suppress("a")
    assert allocator.allocate(1.0) == []
    allocator.revive("a")
    assert len(allocator.allocate(1.0)) == 2


def test_suppress_one_role_keeps_offering_others() -> None:
    allocator = cluster({"s1": SMALL}, {"a": {"x", "y"}})
    allocator.suppress("a", {"x"})
    assert offers(allocator.allocate(0.0)) == {("a", "y", "s1")}


def test_revive_one_role() -> None:
    allocator = cluster({"s1": SMALL}, {"a": {"x", "y"}})
    allocator.suppress("a")
    assert allocator.allocate(0.0) == []
    allocator.revive("a", {"x"})
    assert offers(allocator.allocate(0.0)) == {("a", "x", "s1")}


def test_bundles_below_min_allocatable_are_not_offered() -> None:
    allocator = cluster({"s1": "cpus:0.009;mem:31;disk:1000"}, {"a": {"*"}})
    assert allocator.allocate(0.0) == []


def test_leftover_after_tasks_offered_if_allocatable() -> None:
    allocator = cluster({"s1": "cpus:1;mem:100"}, {"a": {"*"}})
    allocator.allocate_used("a", "*", "s1", r("cpus:0.995;mem:80"))
    assert allocator.allocate(0.0) == []
    allocator.recover("a", "*", "s1", r("mem:20"))
    assert allocator.allocate(0.0) == [Allocation("a", "*", "s1", r("cpus:0.005;mem:40"))]


def test_multi_role_framework_tracks_share_per_role() -> None:
    allocator = cluster({"s1": SMALL, "s2": "cpus(y):1;mem(y):64"}, {"a": {"x", "y"}})
    decisions = allocator.allocate(0.0)
    assert offers(decisions) == {("a", "x", "s1"), ("a", "y", "s2")}
    held = allocator.allocated("a")
    assert held == {"x": r(SMALL), "y": r("cpus(y):1;mem(y):64")}
    assert allocator.dominant_share("a", "x") == 1024 / 1088
    assert allocator.dominant_share("a", "y") == 0.2  # 1 of 5 cpus


def test_inactive_framework_is_not_offered() -> None:
    allocator = cluster({"s1": SMALL}, {"a": {"*"}})
    allocator.deactivate_framework("a")
    assert allocator.allocate(0.0) == []
    allocator.activate_framework("a")
    assert len(allocator.allocate(0.0)) == 1


def test_inactive_agent_is_not_offered_but_counts_in_total() -> None:
    allocator = cluster({"s1": SMALL, "s2": SMALL}, {"a": {"*"}})
    allocator.deactivate_agent("s1")
    assert offers(allocator.allocate(0.0)) == {("a", "*", "s2")}
    assert allocator.total().scalar("cpus") == 8.0
    allocator.activate_agent("s1")
    assert offers(allocator.allocate(0.0)) == {("a", "*", "s1")}


def test_allocate_only_named_agents() -> None:
    allocator = cluster({"s1": SMALL, "s2": SMALL}, {"a": {"*"}})
    assert offers(allocator.allocate(0.0, ["s2", "unknown"])) == {("a", "*", "s2")}


def test_remove_framework_releases_everything() -> None:
    allocator = cluster({"s1": SMALL, "s2": SMALL}, {"a": {"x", "*"}})
    allocator.allocate(0.0)
    allocator.remove_framework("a")
    assert allocator.free("s1") == r(SMALL) and allocator.free("s2") == r(SMALL)
    assert allocator.allocated("a") == {}
    allocator.recover("a", "x", "s1", r("cpus:1"))  # late recover: ignored


def test_add_agent_with_used_resources() -> None:
    allocator = Allocator()
    allocator.add_agent("s1", r(SMALL), used={("a", "*"): r("cpus:3;mem:1000")})
    assert allocator.free("s1") == r("cpus:1;mem:24")
    assert allocator.allocated("a") == {"*": r("cpus:3;mem:1000")}


def test_remove_agent_drops_its_allocations_and_total() -> None:
    allocator = cluster({"s1": SMALL, "s2": SMALL}, {"a": {"*"}})
    allocator.allocate(0.0)
    allocator.remove_agent("s1")
    assert allocator.allocated("a") == {"*": r(SMALL)}
    assert allocator.total() == r(SMALL)
    assert allocator.dominant_share("a") == 1.0


def test_roles_change_stops_offers_for_dropped_role() -> None:
    allocator = cluster({"s1": SMALL}, {"a": {"x"}})
    allocator.update_framework("a", {"y"}, set())
    assert offers(allocator.allocate(0.0)) == {("a", "y", "s1")}
