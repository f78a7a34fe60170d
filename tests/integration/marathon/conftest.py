"""The `served` fixture: the v2 API over the in-memory fake service (see fake_service.py)."""

from tests.integration.marathon.fake_service import served

__all__ = ["served"]
