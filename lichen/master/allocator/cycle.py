"""One allocation cycle: hand each agent's free resources to the most deserving frameworks.

Theory of operation. At the start of the cycle the candidates are fixed: every active
framework, for each role it is subscribed to and has not suppressed, unless its live
filters cover every agent of the cycle. Candidates go into one `ShareQueue` per role
(by dominant share), the roles into one queue by share ÷ weight. Then, agent by agent
in the order they were added:

1. If the agent's unreserved free resources are allocatable, walk the roles in order
   and offer the first role that has a candidate not filtered on this agent everything
   allocatable to it (unreserved + reserved for it).
2. Offer what is left, the reservations of other roles, to the first candidate of each
   of those roles.

Each offer updates the taker's and its role's shares and their queue positions at
once, so the next agent already sees the new order. Work per agent is a few heap
operations plus one per framework skipped because of a filter on that agent.
"""

from __future__ import annotations

from collections.abc import Iterable

from lichen.master.allocator.sorter import ShareQueue, dominant_share, inverse_totals
from lichen.master.allocator.state import AgentState, Allocation, AllocatorState
from lichen.resources import UNRESERVED, Resources


def allocate(
    state: AllocatorState, now: float, agent_ids: Iterable[str] | None = None
) -> list[Allocation]:
    """Run one cycle over `agent_ids` (default: all), recording what it offers."""
    agents = _agents_of_cycle(state, agent_ids)
    if not agents:
        return []
    return _Cycle(state, now, agents).run()


def _agents_of_cycle(state: AllocatorState, agent_ids: Iterable[str] | None) -> list[AgentState]:
    if agent_ids is None:
        return [a for a in state.agents.values() if a.active]
    out: list[AgentState] = []
    seen: set[str] = set()
    for agent_id in agent_ids:
        agent = state.agents.get(agent_id)
        if agent is not None and agent.active and agent_id not in seen:
            seen.add(agent_id)
            out.append(agent)
    return out


class _Cycle:
    def __init__(self, state: AllocatorState, now: float, agents: list[AgentState]) -> None:
        self.state = state
        self.now = now
        self.agents = agents
        self.inv = inverse_totals(state.total_vector)
        self.decisions: list[Allocation] = []
        self.framework_queues: dict[str, ShareQueue] = {}
        self.role_queue = ShareQueue()
        self._build_queues()

    def _build_queues(self) -> None:
        state, now, inv = self.state, self.now, self.inv
        agent_ids = frozenset(a.agent_id for a in self.agents)
        subset_cache: dict[int, bool] = {}
        members: dict[str, list[tuple[float, str]]] = {}
        for framework in state.frameworks.values():
            if not framework.active:
                continue
            roles = framework.roles.difference(framework.suppressed)
            if not roles:
                continue
            filters = framework.filters
            if filters:
                filters.purge(now)
                if filters and filters.covers(agent_ids, now, subset_cache):
                    continue
            fid = framework.framework_id
            for role in roles:
                share = dominant_share(state.client_vectors.get((fid, role)), inv)
                members.setdefault(role, []).append((share, fid))
        self.framework_queues = {role: ShareQueue(entries) for role, entries in members.items()}
        self.role_queue = ShareQueue((self._role_key(role), role) for role in members)

    def _role_key(self, role: str) -> float:
        return dominant_share(self.state.role_vectors.get(role), self.inv) / self.state.weight(role)

    def run(self) -> list[Allocation]:
        if self.framework_queues:
            for agent in self.agents:
                self._offer_agent(agent)
        return self.decisions

    def _offer_agent(self, agent: AgentState) -> None:
        free = agent.free()
        if not free:
            return
        roles = free.role_set()
        taken_by: str | None = None
        if UNRESERVED in roles and free.unreserved().is_allocatable():
            taken_by = self._offer_unreserved(agent, free)
            if taken_by is not None:
                free = agent.free()
                if not free:
                    return
                roles = free.role_set()
        reserved = [r for r in roles if r != UNRESERVED and r != taken_by]
        if not reserved:
            return
        queued = [r for r in reserved if r in self.framework_queues]
        queued.sort(key=lambda r: (self.role_queue.key(r) or 0.0, r))
        for role in queued:
            offer = free.allocatable_to(role)
            if not offer.is_allocatable():
                continue
            framework_id = self._pick(role, agent.agent_id)
            if framework_id is not None:
                self._record(framework_id, role, agent, offer)
                free = agent.free()

    def _offer_unreserved(self, agent: AgentState, free: Resources) -> str | None:
        """Step 1: the first role in order with an unfiltered candidate takes its part."""
        queue = self.role_queue
        skipped: list[tuple[float, str]] | None = None
        taken_by: str | None = None
        while True:
            entry = queue.pop()
            if entry is None:
                break
            role = entry[1]
            framework_id = self._pick(role, agent.agent_id)
            if framework_id is None:
                if skipped is None:
                    skipped = []
                skipped.append(entry)
                continue
            self._record(framework_id, role, agent, free.allocatable_to(role))
            queue.push(self._role_key(role), role)
            taken_by = role
            break
        if skipped is not None:
            for key, role in skipped:
                queue.push(key, role)
        return taken_by

    def _pick(self, role: str, agent_id: str) -> str | None:
        """Pop the role's most deserving candidate not filtered on `agent_id`."""
        queue = self.framework_queues[role]
        frameworks = self.state.frameworks
        now = self.now
        entry = queue.pop()
        if entry is None:
            return None
        filters = frameworks[entry[1]].filters
        if not filters or not filters.blocks(agent_id, now):
            return entry[1]  # the common case allocates nothing more
        skipped = [entry]
        chosen: str | None = None
        while True:
            entry = queue.pop()
            if entry is None:
                break
            filters = frameworks[entry[1]].filters
            if filters and filters.blocks(agent_id, now):
                skipped.append(entry)
                continue
            chosen = entry[1]
            break
        for key, framework_id in skipped:
            queue.push(key, framework_id)
        return chosen

    def _record(self, framework_id: str, role: str, agent: AgentState, offer: Resources) -> None:
        state = self.state
        client = (framework_id, role)
        state.add_allocation(client, agent, offer)
        self.framework_queues[role].push(
            dominant_share(state.client_vectors[client], self.inv), framework_id
        )
        if role in self.framework_queues and self.role_queue.key(role) is not None:
            self.role_queue.push(self._role_key(role), role)
        self.decisions.append(Allocation(framework_id, role, agent.agent_id, offer))
