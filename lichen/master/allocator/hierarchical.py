"""The hierarchical weighted DRF allocator: an I/O-free object fed the master's events.

The master tells it about frameworks (roles, suppression, activity), agents (totals,
what is already in use, activity), offers that come back (`recover`, optionally with a
decline filter) and asks it, once per allocation interval or for a few agents after an
event, what to offer to whom (`allocate`). Everything `allocate` returns counts as
allocated until recovered. Time is the `now` argument; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from lichen.master.allocator import cycle
from lichen.master.allocator.filters import MAX_REFUSE_SECONDS
from lichen.master.allocator.sorter import dominant_share, inverse_totals
from lichen.master.allocator.state import (
    AgentState,
    Allocation,
    AllocatorState,
    FrameworkState,
)
from lichen.resources import Resources


class Allocator:
    def __init__(self, *, weights: dict[str, float] | None = None) -> None:
        self._state = AllocatorState()
        self._total: Resources | None = Resources.empty()
        if weights:
            self.update_weights(weights)

    # ------------------------------------------------------------------ frameworks

    def add_framework(
        self,
        framework_id: str,
        roles: set[str],
        *,
        active: bool = True,
        suppressed_roles: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        """Add a framework; for one already known (a resubscription) update it instead."""
        known = self._state.frameworks.get(framework_id)
        if known is not None:
            known.roles = frozenset(roles)
            known.suppressed = set(suppressed_roles)
            known.active = active
            return
        self._state.frameworks[framework_id] = FrameworkState(
            framework_id, frozenset(roles), set(suppressed_roles), active
        )

    def update_framework(
        self, framework_id: str, roles: set[str], suppressed_roles: set[str]
    ) -> None:
        """Change roles and suppression. What it holds in dropped roles stays until recovered."""
        framework = self._framework(framework_id)
        framework.roles = frozenset(roles)
        framework.suppressed = set(suppressed_roles)

    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework and release everything it still holds (offers and tasks).

        Later `recover` calls for it are ignored, so the master may recover its offers
        and tasks before or after, or not at all.
        """
        state = self._state
        state.frameworks.pop(framework_id, None)
        for role in list(state.framework_roles.get(framework_id, ())):
            client = (framework_id, role)
            for agent_id in list(state.client_agents.get(client, ())):
                agent = state.agents[agent_id]
                state.remove_allocation(client, agent, agent.by_client[client])

    def activate_framework(self, framework_id: str) -> None:
        self._framework(framework_id).active = True

    def deactivate_framework(self, framework_id: str) -> None:
        """Stop offering to it (disconnected); what it holds stays allocated."""
        self._framework(framework_id).active = False

    def suppress(self, framework_id: str, roles: set[str] | None = None) -> None:
        """Stop offers for `roles` (None: all its roles)."""
        framework = self._framework(framework_id)
        framework.suppressed |= set(framework.roles if roles is None else roles)

    def revive(self, framework_id: str, roles: set[str] | None = None) -> None:
        """Clear all its filters and unsuppress `roles` (None: all)."""
        framework = self._framework(framework_id)
        framework.filters.clear()
        if roles is None:
            framework.suppressed.clear()
        else:
            framework.suppressed -= roles

    def update_weights(self, weights: dict[str, float]) -> None:
        """Set role weights (merged into the current ones); a weight must be positive."""
        for role, weight in weights.items():
            if not weight > 0:
                raise ValueError(f"weight of role '{role}' must be positive, not {weight}")
        self._state.weights.update(weights)

    # ------------------------------------------------------------------ agents

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: dict[tuple[str, str], Resources] | None = None,
    ) -> None:
        """Add an agent with `used`: (framework_id, role) -> resources already in use.

        Raises ValueError for an agent already known (remove it first).
        """
        state = self._state
        if agent_id in state.agents:
            raise ValueError(f"agent '{agent_id}' is already known to the allocator")
        agent = state.agents[agent_id] = AgentState(agent_id, total)
        self._add_total(total, +1)
        for client, resources in (used or {}).items():
            if resources:
                state.add_allocation(client, agent, resources)

    def remove_agent(self, agent_id: str) -> None:
        """Forget the agent, what is allocated on it and the filters naming it."""
        state = self._state
        agent = state.agents.get(agent_id)
        if agent is None:
            return
        for client, resources in list(agent.by_client.items()):
            state.remove_allocation(client, agent, resources)
        del state.agents[agent_id]
        self._add_total(agent.total, -1)
        for framework in state.frameworks.values():
            framework.filters.forget_agent(agent_id)

    def activate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """Stop offering the agent (unreachable); its resources still count in totals."""
        self._agent(agent_id).active = False

    # ------------------------------------------------------------------ resources

    def allocate_used(
        self, framework_id: str, role: str, agent_id: str, resources: Resources
    ) -> None:
        """Mark `resources` as used by the framework's role without an offer."""
        if resources:
            self._state.add_allocation((framework_id, role), self._agent(agent_id), resources)

    def recover(
        self,
        framework_id: str,
        role: str,
        agent_id: str,
        resources: Resources,
        *,
        refuse_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        """Give back resources (declined or unused offer parts, ended tasks, rescinds).

        Unknown agents and frameworks are ignored, and so is any part the framework does
        not hold there. With `refuse_seconds` > 0 the framework is not offered this
        agent again until `now + refuse_seconds` (capped at a year).
        """
        state = self._state
        agent = state.agents.get(agent_id)
        if agent is None:
            return
        if resources:
            state.remove_allocation((framework_id, role), agent, resources)
        framework = state.frameworks.get(framework_id)
        if framework is not None and refuse_seconds is not None and refuse_seconds > 0:
            framework.filters.add(agent_id, now + min(refuse_seconds, MAX_REFUSE_SECONDS))

    def add_filter(
        self,
        framework_id: str,
        agent_ids: Iterable[str],
        *,
        refuse_seconds: float,
        now: float,
    ) -> None:
        """Filter several agents at once (one DECLINE of many offers).

        A frozenset is kept by reference, so many frameworks declining the same set
        share it; anything else is filtered agent by agent.
        """
        framework = self._framework(framework_id)
        if not refuse_seconds > 0:
            return
        until = now + min(refuse_seconds, MAX_REFUSE_SECONDS)
        if isinstance(agent_ids, frozenset) and len(agent_ids) > 1:
            framework.filters.add_group(agent_ids, until)
        else:
            for agent_id in agent_ids:
                framework.filters.add(agent_id, until)

    def allocate(self, now: float, agent_ids: Iterable[str] | None = None) -> list[Allocation]:
        """One cycle over all agents (or just `agent_ids`); what it returns is allocated."""
        return cycle.allocate(self._state, now, agent_ids)

    # ------------------------------------------------------------------ queries

    def free(self, agent_id: str) -> Resources:
        return self._agent(agent_id).free()

    def allocated(self, framework_id: str) -> dict[str, Resources]:
        """What the framework holds (offered or in use), per role."""
        state = self._state
        out: dict[str, Resources] = {}
        for role in state.framework_roles.get(framework_id, ()):
            client = (framework_id, role)
            total = Resources.empty()
            for agent_id in state.client_agents.get(client, ()):
                total = total + state.agents[agent_id].by_client[client]
            out[role] = total
        return out

    def allocated_on(self, agent_id: str) -> Resources:
        return self._agent(agent_id).allocated

    def total(self) -> Resources:
        if self._total is None:
            total = Resources.empty()
            for agent in self._state.agents.values():
                total = total + agent.total
            self._total = total
        return self._total

    def dominant_share(self, framework_id: str, role: str | None = None) -> float:
        """The framework's dominant share in `role`, or its largest over its roles."""
        state = self._state
        inv = inverse_totals(state.total_vector)
        roles = [role] if role is not None else state.framework_roles.get(framework_id, ())
        return max(
            (dominant_share(state.client_vectors.get((framework_id, r)), inv) for r in roles),
            default=0.0,
        )

    def role_share(self, role: str) -> float:
        """The role's dominant share divided by its weight."""
        state = self._state
        share = dominant_share(state.role_vectors.get(role), inverse_totals(state.total_vector))
        return share / state.weight(role)

    def is_filtered(self, framework_id: str, agent_id: str, now: float) -> bool:
        return self._framework(framework_id).filters.blocks(agent_id, now)

    def framework_ids(self) -> list[str]:
        return list(self._state.frameworks)

    def agent_ids(self) -> list[str]:
        return list(self._state.agents)

    # ------------------------------------------------------------------ helpers

    def _framework(self, framework_id: str) -> FrameworkState:
        framework = self._state.frameworks.get(framework_id)
        if framework is None:
            raise KeyError(f"unknown framework '{framework_id}' in the allocator")
        return framework

    def _agent(self, agent_id: str) -> AgentState:
        agent = self._state.agents.get(agent_id)
        if agent is None:
            raise KeyError(f"unknown agent '{agent_id}' in the allocator")
        return agent

    def _add_total(self, total: Resources, sign: int) -> None:
        quantities = total.drf_quantities()
        vector = self._state.total_vector
        for i in range(4):
            vector[i] += sign * quantities[i]
        self._total = None
