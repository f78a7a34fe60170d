"""The dependency graph: edge counters (§7.5 scenario), cycles, removal, renderers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lichen.frameworks.chronos.graph import DependencyGraph, render_csv, render_dot


def abc() -> DependencyGraph:
    graph = DependencyGraph()
    graph.set_parents("C", {"A", "B"})
    return graph


def test_child_waits_for_every_parent_then_runs_once() -> None:
    graph = abc()
    assert graph.parent_succeeded("A") == []
    assert graph.parent_succeeded("B") == ["C"]
    graph.child_started("C")
    assert graph.parent_succeeded("A") == []


def test_a_parent_succeeding_twice_does_not_ready_the_child_alone() -> None:
    graph = abc()
    assert graph.parent_succeeded("A") == []
    assert graph.parent_succeeded("A") == []
    assert graph.parent_succeeded("B") == ["C"]


def test_single_parent_readies_the_child_each_time() -> None:
    graph = DependencyGraph()
    graph.set_parents("child", {"parent"})
    assert graph.parent_succeeded("parent") == ["child"]
    graph.child_started("child")
    assert graph.parent_succeeded("parent") == ["child"]


def test_a_job_without_children_readies_nothing() -> None:
    assert abc().parent_succeeded("C") == []
    assert abc().parent_succeeded("nobody") == []


def test_parents_and_children_are_sorted_lists() -> None:
    graph = abc()
    graph.set_parents("D", {"A"})
    assert graph.parents("C") == ["A", "B"]
    assert graph.children("A") == ["C", "D"]
    assert graph.parents("A") == []
    assert graph.edges() == [("A", "C"), ("A", "D"), ("B", "C")]


def test_set_parents_keeps_counters_of_kept_edges() -> None:
    graph = abc()
    graph.parent_succeeded("A")
    graph.set_parents("C", {"A", "E"})
    assert graph.counter("A", "C") == 1
    assert graph.counter("E", "C") == 0
    assert graph.children("B") == []
    assert graph.parent_succeeded("E") == ["C"]


def test_set_parents_empty_makes_the_job_scheduled() -> None:
    graph = abc()
    graph.set_parents("C", set())
    assert graph.edges() == []
    assert graph.children("A") == []


def test_remove_drops_edges_both_ways() -> None:
    graph = abc()
    graph.set_parents("D", {"C"})
    graph.remove("C")
    assert graph.edges() == []
    assert graph.children("A") == [] and graph.parents("D") == []


def test_remove_a_parent_leaves_the_other_edge() -> None:
    graph = abc()
    graph.remove("B")
    assert graph.parents("C") == ["A"]
    assert graph.parent_succeeded("A") == ["C"]


def test_self_parent_is_a_cycle() -> None:
    assert DependencyGraph().would_cycle("a", {"a"}) == ["a", "a"]


def test_two_job_cycle_is_reported_as_a_path() -> None:
    graph = DependencyGraph()
    graph.set_parents("b", {"a"})
    assert graph.would_cycle("a", {"b"}) == ["a", "b", "a"]


def test_long_cycle_path() -> None:
    graph = DependencyGraph()
    graph.set_parents("b", {"a"})
    graph.set_parents("c", {"b"})
    graph.set_parents("d", {"c", "x"})
    assert graph.would_cycle("a", {"d"}) == ["a", "b", "c", "d", "a"]
    assert " -> ".join(graph.would_cycle("a", {"d"}) or []) == "a -> b -> c -> d -> a"


def test_diamond_is_not_a_cycle() -> None:
    graph = DependencyGraph()
    graph.set_parents("b", {"a"})
    graph.set_parents("c", {"a"})
    assert graph.would_cycle("d", {"b", "c"}) is None
    assert graph.would_cycle("b", {"a", "c"}) is None


def test_counters_survive_json() -> None:
    graph = abc()
    graph.parent_succeeded("A")
    again = DependencyGraph.from_json(graph.to_json())
    assert again.to_json() == graph.to_json()
    assert again.parent_succeeded("B") == ["C"]


def test_load_counters_restores_only_existing_edges() -> None:
    saved = abc()
    saved.parent_succeeded("A")
    saved.set_parents("D", {"A"})
    saved.parent_succeeded("A")
    graph = abc()  # rebuilt from the job definitions; D is gone
    graph.load_counters(saved.to_json())
    assert graph.counter("A", "C") == 2
    assert graph.edges() == [("A", "C"), ("B", "C")]
    assert graph.parent_succeeded("B") == ["C"]


def test_dot_has_a_labelled_node_per_job_and_edges() -> None:
    dot = render_dot(["A", "B", "C", 'we"ird'], [("A", "C"), ("B", "C")])
    assert dot.startswith("digraph G {\n") and dot.endswith("}\n")
    assert '  "A" [label="A"];' in dot
    assert '  "A" -> "C";' in dot
    assert '"we\\"ird"' in dot


def test_csv_lists_nodes_then_links() -> None:
    text = render_csv([("A", "success", "idle"), ("C", "fresh", "1 running")],
                      [("A", "C"), ("B", "C")])
    assert text == "node,A,success,idle\nnode,C,fresh,1 running\nlink,A,C\nlink,B,C\n"


def test_csv_without_jobs_is_empty() -> None:
    assert render_csv([], []) == ""


PARENTS = ["p0", "p1", "p2", "p3"]


@settings(max_examples=300)
@given(st.integers(1, 4), st.lists(st.one_of(st.sampled_from(PARENTS), st.just("start")),
                                   max_size=60))
def test_child_is_ready_exactly_once_per_round_of_parent_successes(
    n_parents: int, events: list[str],
) -> None:
    parents = set(PARENTS[:n_parents])
    graph = DependencyGraph()
    graph.set_parents("child", parents)
    succeeded: set[str] = set()  # the model: parents that succeeded since the last start
    for event in events:
        if event == "start":
            graph.child_started("child")
            succeeded.clear()
            continue
        if event not in parents:
            assert graph.parent_succeeded(event) == []
            continue
        succeeded.add(event)
        ready = graph.parent_succeeded(event) == ["child"]
        assert ready == (succeeded == parents)
        if ready:  # the service starts a ready child
            graph.child_started("child")
            succeeded.clear()
