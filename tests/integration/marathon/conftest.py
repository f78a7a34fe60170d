"""Fixtures: `served` (the v2 API over the in-memory fake service, see fake_service.py)
and `stack` (a real master, two agents and `lichen marathon`, see stack.py)."""

from tests.integration.marathon.fake_service import served
from tests.integration.marathon.stack import stack

__all__ = ["served", "stack"]
