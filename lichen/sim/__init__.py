"""Simulated agents that speak the real master protocol (docs/agent-protocol.md)
without running anything, for benchmarks and master tests."""

from lichen.sim.agent import SimAgent

__all__ = ["SimAgent"]
