"""Fixtures: `served` (the Chronos API over the in-memory fake service, see fake_service.py)."""

from tests.integration.chronos.fake_service import served

__all__ = ["served"]
