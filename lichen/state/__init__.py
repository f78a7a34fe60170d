"""State stores: a small key/value protocol (`store.Store`) with an embedded SQLite
implementation (`sqlite.SqliteStore`); a ZooKeeper one fills the same protocol later."""

from lichen.state.sqlite import SqliteStore
from lichen.state.store import Store

__all__ = ["SqliteStore", "Store"]
