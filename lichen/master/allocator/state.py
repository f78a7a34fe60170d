"""The allocator's bookkeeping: agents, frameworks and who holds what.

Internal to the package; `hierarchical.Allocator` is the way in.

Invariants:
- `AgentState.allocated` is the sum of `AgentState.by_client`; a client is a
  (framework, role) pair.
- `AllocatorState.client_vectors[c]` and `role_vectors[r]` are the DRF quantities
  (thousandths of cpus, mem, disk, gpus) of everything a client / role holds, offered
  or in use; `total_vector` is the sum over all agents, active or not.
- `client_agents[c]` lists the agents where `c` holds something.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lichen.master.allocator.filters import Filters
from lichen.resources import Resources, saturating_sub

Client = tuple[str, str]  # (framework_id, role)


@dataclass(frozen=True, slots=True)
class Allocation:
    """One offer decision: `resources` of `agent_id` go to `framework_id` for `role`."""

    framework_id: str
    role: str
    agent_id: str
    resources: Resources


@dataclass(slots=True)
class AgentState:
    agent_id: str
    total: Resources
    active: bool = True
    allocated: Resources = field(default_factory=Resources.empty)
    by_client: dict[Client, Resources] = field(default_factory=dict)

    def free(self) -> Resources:
        if not self.allocated:
            return self.total
        return saturating_sub(self.total, self.allocated)


@dataclass(slots=True)
class FrameworkState:
    framework_id: str
    roles: frozenset[str]
    suppressed: set[str]
    active: bool
    filters: Filters = field(default_factory=Filters)


@dataclass(slots=True)
class AllocatorState:
    weights: dict[str, float] = field(default_factory=dict)
    agents: dict[str, AgentState] = field(default_factory=dict)
    frameworks: dict[str, FrameworkState] = field(default_factory=dict)
    client_vectors: dict[Client, list[int]] = field(default_factory=dict)
    role_vectors: dict[str, list[int]] = field(default_factory=dict)
    client_agents: dict[Client, set[str]] = field(default_factory=dict)
    framework_roles: dict[str, set[str]] = field(default_factory=dict)
    total_vector: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def weight(self, role: str) -> float:
        return self.weights.get(role, 1.0)

    def add_allocation(self, client: Client, agent: AgentState, resources: Resources) -> None:
        """Record `resources` of `agent` as held by `client` (offered or in use)."""
        by_client = agent.by_client
        held = by_client.get(client)
        by_client[client] = resources if held is None else held + resources
        agent.allocated = resources if not agent.allocated else agent.allocated + resources
        q0, q1, q2, q3 = resources.drf_quantities()
        vector = self.client_vectors.get(client)
        if vector is None:
            vector = self.client_vectors[client] = [0, 0, 0, 0]
            self.framework_roles.setdefault(client[0], set()).add(client[1])
        vector[0] += q0
        vector[1] += q1
        vector[2] += q2
        vector[3] += q3
        role_vector = self.role_vectors.get(client[1])
        if role_vector is None:
            role_vector = self.role_vectors[client[1]] = [0, 0, 0, 0]
        role_vector[0] += q0
        role_vector[1] += q1
        role_vector[2] += q2
        role_vector[3] += q3
        agents = self.client_agents.get(client)
        if agents is None:
            agents = self.client_agents[client] = set()
        agents.add(agent.agent_id)

    def remove_allocation(self, client: Client, agent: AgentState, resources: Resources) -> None:
        """Give back what `client` holds of `resources` on `agent`; the rest is ignored."""
        held = agent.by_client.get(client)
        if held is None:
            return
        left = saturating_sub(held, resources)
        released = saturating_sub(held, left)
        if left:
            agent.by_client[client] = left
        else:
            del agent.by_client[client]
            agents = self.client_agents.get(client)
            if agents is not None:
                agents.discard(agent.agent_id)
        agent.allocated = saturating_sub(agent.allocated, released)
        quantities = released.drf_quantities()
        vector = self.client_vectors[client]
        role_vector = self.role_vectors[client[1]]
        for i in range(4):
            vector[i] -= quantities[i]
            role_vector[i] -= quantities[i]
        if not self.client_agents.get(client):
            self.client_agents.pop(client, None)
            del self.client_vectors[client]
            roles = self.framework_roles.get(client[0])
            if roles is not None:
                roles.discard(client[1])
                if not roles:
                    del self.framework_roles[client[0]]
