"""The dependency graph of jobs: edges parent -> child with Chronos's edge counters (pure).

Theory of operation. Every parent -> child edge carries a counter. When a parent succeeds
(`parent_succeeded`), each edge to its children goes up by one, and a child is ready when the
counter of that edge equals the smallest counter among the child's parent edges (a child with one
parent is ready at once). When the child starts (`child_started`) all its counters go back to 0.
So, as long as the service starts a ready child, a child is ready exactly once each time all of
its parents have succeeded at least once since its last start. The graph is fed events and
answers questions; whether a ready child is disabled, or actually starts, is the service's call.

Jobs without edges are not stored here; the renderers take the job list separately.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = ["DependencyGraph", "Edge", "render_csv", "render_dot"]

Edge = tuple[str, str]  # (parent, child)


class DependencyGraph:
    """Parent -> child edges with invocation counters. No I/O; persist `to_json()`."""

    def __init__(self) -> None:
        self._parents: dict[str, dict[str, int]] = {}  # child -> {parent: counter}
        self._children: dict[str, set[str]] = {}       # parent -> children

    # ----------------------------------------------------------------- edits

    def set_parents(self, child: str, parents: Iterable[str]) -> None:
        """Make `parents` the child's parents (empty: a scheduled job). Counters of the edges
        that stay are kept; new edges start at 0. No cycle check: ask `would_cycle` first."""
        wanted = set(parents)
        old = self._parents.pop(child, {})
        for parent in old.keys() - wanted:
            self._unlink(parent, child)
        if wanted:
            self._parents[child] = {parent: old.get(parent, 0) for parent in wanted}
            for parent in wanted:
                self._children.setdefault(parent, set()).add(child)

    def remove(self, job: str) -> None:
        """Drop the job and every edge to or from it (re-parenting is the service's job)."""
        self.set_parents(job, ())
        for child in self._children.pop(job, set()):
            counters = self._parents.get(child)
            if counters is not None:
                counters.pop(job, None)
                if not counters:
                    del self._parents[child]

    def _unlink(self, parent: str, child: str) -> None:
        children = self._children.get(parent)
        if children is not None:
            children.discard(child)
            if not children:
                del self._children[parent]

    # ----------------------------------------------------------------- questions

    def parents(self, job: str) -> list[str]:
        """The job's parents, sorted ([] for a scheduled or unknown job)."""
        return sorted(self._parents.get(job, ()))

    def children(self, job: str) -> list[str]:
        """The jobs that depend on `job`, sorted."""
        return sorted(self._children.get(job, ()))

    def edges(self) -> list[Edge]:
        """Every (parent, child) edge, sorted."""
        return sorted((parent, child) for child, counters in self._parents.items()
                      for parent in counters)

    def counter(self, parent: str, child: str) -> int:
        return self._parents.get(child, {}).get(parent, 0)

    def would_cycle(self, child: str, parents: Iterable[str]) -> list[str] | None:
        """The cycle that giving `child` these parents would close, as a path that starts and
        ends at `child` (`["a", "b", "a"]`: a -> b -> a), or None."""
        wanted = set(parents)
        if child in wanted:
            return [child, child]
        # Breadth-first along child edges from `child`: a path to any wanted parent closes it.
        came_from: dict[str, str] = {child: child}
        queue = deque([child])
        while queue:
            node = queue.popleft()
            for nxt in sorted(self._children.get(node, ())):
                if nxt in came_from:
                    continue
                came_from[nxt] = node
                if nxt in wanted:
                    path = [nxt]
                    while path[-1] != child:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), child]
                queue.append(nxt)
        return None

    # ----------------------------------------------------------------- events

    def parent_succeeded(self, parent: str) -> list[str]:
        """Count the success on each edge out of `parent`; the children now ready, sorted."""
        ready = []
        for child in sorted(self._children.get(parent, ())):
            counters = self._parents[child]
            counters[parent] += 1
            if len(counters) == 1 or counters[parent] == min(counters.values()):
                ready.append(child)
        return ready

    def child_started(self, child: str) -> None:
        """The child started a run: every counter on its parent edges goes back to 0."""
        counters = self._parents.get(child)
        if counters is not None:
            for parent in counters:
                counters[parent] = 0

    # ----------------------------------------------------------------- persistence

    def to_json(self) -> dict[str, Any]:
        return {"edges": [{"parent": parent, "child": child, "count": self.counter(parent, child)}
                          for parent, child in self.edges()]}

    def load_counters(self, data: dict[str, Any]) -> None:
        """Restore persisted counters (`to_json()`) onto the edges this graph already has
        (rebuilt from the job definitions); counters of edges that no longer exist are
        dropped."""
        for edge in data.get("edges", []):
            counters = self._parents.get(str(edge["child"]))
            parent = str(edge["parent"])
            if counters is not None and parent in counters:
                counters[parent] = int(edge.get("count", 0))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DependencyGraph:
        """A new graph with the persisted edges and counters (a classmethod: it does not
        change the graph it is called on; see `load_counters`)."""
        graph = cls()
        for edge in data.get("edges", []):
            parent, child = str(edge["parent"]), str(edge["child"])
            graph._parents.setdefault(child, {})[parent] = int(edge.get("count", 0))
            graph._children.setdefault(parent, set()).add(child)
        return graph


# --------------------------------------------------------------------------- renderers

def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(jobs: list[str], edges: Iterable[Edge]) -> str:
    """Graphviz: a node per job labelled with its name, an edge parent -> child."""
    lines = ["digraph G {"]
    lines += [f"  {_quote(job)} [label={_quote(job)}];" for job in jobs]
    lines += [f"  {_quote(parent)} -> {_quote(child)};" for parent, child in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_csv(nodes: list[tuple[str, str, str]], edges: Iterable[Edge]) -> str:
    """`node,<name>,<lastState>,<state>` per job, then `link,<parent>,<child>` per edge. No
    jobs give "" (as Chronos; the API answers an empty 200)."""
    lines = [f"node,{name},{last_state},{state}" for name, last_state, state in nodes]
    lines += [f"link,{parent},{child}" for parent, child in edges]
    return "".join(line + "\n" for line in lines)
