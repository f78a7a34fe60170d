"""The master's flags, with Mesos's defaults (durations in seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class MasterFlags:
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 5050
    hostname: str | None = None
    allocation_interval: float = 1.0
    offer_timeout: float | None = None
    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    weights: dict[str, float] = field(default_factory=dict)
    max_completed_tasks_per_framework: int = 1000
    max_completed_frameworks: int = 50
    heartbeat_interval: float = 15.0
    agent_reregister_timeout: float = 600.0


def parse_weights(text: str) -> dict[str, float]:
    """`ops=2,batch=1` -> {"ops": 2.0, "batch": 1.0}; raises ValueError naming the bad part."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, value = part.partition("=")
        if not sep or not role:
            raise ValueError(f"bad weight {part!r}: expected ROLE=WEIGHT")
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"bad weight {part!r}: {value!r} is not a number") from None
        if not w > 0:
            raise ValueError(f"bad weight {part!r}: weights must be positive")
        weights[role] = w
    return weights
