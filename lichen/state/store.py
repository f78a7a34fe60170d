"""The store protocol every piece of persistent state goes through.

Keys are `/`-separated paths (`master/agents/<id>`), values are bytes (JSON by
convention). The layout maps one-to-one onto ZooKeeper znodes, so a `zk` store can
fill the same protocol. A `put` that has returned is durable: it survives kill -9.
"""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""

    async def put(self, key: str, value: bytes) -> None:
        """Set `key`; durable once this returns."""

    async def put_many(self, items: dict[str, bytes | None]) -> None:
        """Set (or, for None, delete) several keys atomically; durable once this returns."""

    async def delete(self, key: str) -> None:
        """Remove `key`; no error if it is absent."""

    async def list(self, prefix: str) -> dict[str, bytes]:
        """Every key starting with `prefix`, with its value."""

    async def close(self) -> None:
        """Release the store; safe to call twice."""
