"""Decline filters: which agents a framework must not be offered until when.

A filter is per (framework, agent) and expires at `now + refuse_seconds`. A DECLINE may
name many offers under one filter, so besides single agents a framework may hold
*groups*: one frozenset of agents sharing one expiry, kept by reference. A framework
that declines a whole cluster at once then costs one set (shared with every other
framework declining the same set), not one entry per agent, and the cycle can tell in
one subset test that it covers every agent and skip the framework altogether.
"""

from __future__ import annotations

from collections.abc import Collection

# Mesos caps refuse_seconds at a year; pymesos may send 2**32 - 1.
MAX_REFUSE_SECONDS = 31_536_000.0


class Filters:
    """The live decline filters of one framework."""

    __slots__ = ("by_agent", "groups", "next_expiry")

    def __init__(self) -> None:
        self.by_agent: dict[str, float] = {}
        self.groups: list[tuple[frozenset[str], float]] = []
        self.next_expiry = float("inf")

    def __bool__(self) -> bool:
        return bool(self.by_agent) or bool(self.groups)

    def add(self, agent_id: str, until: float) -> None:
        if self.by_agent.get(agent_id, until - 1.0) < until:
            self.by_agent[agent_id] = until
        self.next_expiry = min(self.next_expiry, until)

    def add_group(self, agent_ids: frozenset[str], until: float) -> None:
        self.groups.append((agent_ids, until))
        self.next_expiry = min(self.next_expiry, until)

    def clear(self) -> None:
        self.by_agent.clear()
        self.groups.clear()
        self.next_expiry = float("inf")

    def forget_agent(self, agent_id: str) -> None:
        self.by_agent.pop(agent_id, None)

    def blocks(self, agent_id: str, now: float) -> bool:
        """Whether a live filter keeps `agent_id` from this framework at `now`."""
        until = self.by_agent.get(agent_id)
        if until is not None and until > now:
            return True
        for agents, until in self.groups:
            if until > now and agent_id in agents:
                return True
        return False

    def purge(self, now: float) -> None:
        """Drop the filters that expired at or before `now`."""
        if self.next_expiry > now:
            return
        self.by_agent = {a: u for a, u in self.by_agent.items() if u > now}
        self.groups = [(g, u) for g, u in self.groups if u > now]
        expiries = [*self.by_agent.values(), *(u for _, u in self.groups)]
        self.next_expiry = min(expiries, default=float("inf"))

    def covers(self, agent_ids: Collection[str], now: float, subset_cache: dict[int, bool]) -> bool:
        """Whether live filters block every agent in `agent_ids` (a frozenset).

        Conservative: a cover made of several groups plus singles reads as False and
        the cycle then checks agent by agent. `subset_cache` (keyed by the group's id,
        valid while the caller holds the groups) makes a shared group cost one subset
        test per cycle.
        """
        for agents, until in self.groups:
            if until <= now:
                continue
            key = id(agents)
            hit = subset_cache.get(key)
            if hit is None:
                hit = subset_cache[key] = len(agents) >= len(agent_ids) and all(
                    a in agents for a in agent_ids
                )
            if hit:
                return True
        by_agent = self.by_agent
        if len(by_agent) >= len(agent_ids):
            return all(by_agent.get(a, now) > now for a in agent_ids)
        return False
