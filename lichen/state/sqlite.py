"""The embedded store: one SQLite file in the work dir.

Commits run in a worker thread (never on the event loop) with `synchronous=FULL`
in WAL mode, so an acknowledged write survives kill -9 of the process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self._lock = threading.Lock()
        self._closed = False

    def _put_many(self, items: dict[str, bytes | None]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in items.items():
                    if value is None:
                        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
                    else:
                        self._db.execute(
                            "INSERT INTO kv(key, value) VALUES(?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            (key, value),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _list(self, prefix: str) -> dict[str, bytes]:
        upper = prefix + "\U0010ffff"
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key", (prefix, upper)
            ).fetchall()
        return {k: bytes(v) for k, v in rows}

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, value: bytes) -> None:
        await asyncio.to_thread(self._put_many, {key: value})

    async def put_many(self, items: dict[str, bytes | None]) -> None:
        if items:
            await asyncio.to_thread(self._put_many, items)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._put_many, {key: None})

    async def list(self, prefix: str) -> dict[str, bytes]:
        return await asyncio.to_thread(self._list, prefix)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._lock:
                self._db.close()
