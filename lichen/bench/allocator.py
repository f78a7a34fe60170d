"""Allocator benchmark: one allocation cycle over N agents and M frameworks.

The shape of Mesos's DeclineOffers benchmark: every agent is
`cpus:24;mem:4096;disk:4096;ports:[31000-32000]`, frameworks are spread over `roles`
roles weighted 1..roles, and half of them decline everything with a long filter (one
DECLINE naming every agent). Each measured cycle starts with every agent free: the
allocations of the previous cycle are recovered outside the timing.

    python -m lichen.bench.allocator --agents 10000 --frameworks 1000 --roles 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from lichen.master.allocator import MAX_REFUSE_SECONDS, Allocation, Allocator
from lichen.resources import Resources

AGENT_RESOURCES = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
NOW = 1_000_000.0


def build(agents: int, frameworks: int, roles: int) -> Allocator:
    """The cluster: agents, frameworks over weighted roles, half of them filtering all."""
    allocator = Allocator(weights={f"role{r}": float(r + 1) for r in range(roles)})
    total = Resources.parse(AGENT_RESOURCES)
    agent_ids = [f"S{i}" for i in range(agents)]
    for agent_id in agent_ids:
        allocator.add_agent(agent_id, total)
    everyone = frozenset(agent_ids)
    for j in range(frameworks):
        framework_id = f"F{j:06d}"
        allocator.add_framework(framework_id, {f"role{j % roles}"})
        if j % 2 == 1:
            allocator.add_filter(framework_id, everyone, refuse_seconds=MAX_REFUSE_SECONDS, now=NOW)
    return allocator


def _recover_all(allocator: Allocator, allocations: list[Allocation]) -> None:
    for a in allocations:
        allocator.recover(a.framework_id, a.role, a.agent_id, a.resources, now=NOW)


def run(agents: int, frameworks: int, roles: int, cycles: int = 5) -> dict[str, Any]:
    allocator = build(agents, frameworks, roles)
    timings: list[float] = []
    allocations = 0
    for cycle in range(cycles):
        started = time.perf_counter()
        decided = allocator.allocate(NOW + cycle)
        timings.append((time.perf_counter() - started) * 1000.0)
        assert len(decided) == agents, f"expected one offer per agent, got {len(decided)}"
        assert all(int(a.framework_id[1:]) % 2 == 0 for a in decided), "a filter was ignored"
        allocations += len(decided)
        _recover_all(allocator, decided)
        assert all(not allocator.allocated_on(a) for a in ("S0", f"S{agents - 1}"))
    return {
        "benchmark": "allocator",
        "agents": agents,
        "frameworks": frameworks,
        "roles": roles,
        "cycles": cycles,
        "cycle_ms_p50": round(statistics.median(timings), 2),
        "cycle_ms_max": round(max(timings), 2),
        "cycle_ms_min": round(min(timings), 2),
        "allocations": allocations,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--frameworks", type=int, default=None, help="default: agents / 10")
    parser.add_argument("--roles", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args(argv)
    frameworks = args.frameworks if args.frameworks is not None else max(1, args.agents // 10)
    print(json.dumps(run(args.agents, frameworks, args.roles, args.cycles)), flush=True)


if __name__ == "__main__":
    main()
