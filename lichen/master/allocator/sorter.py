"""Weighted DRF: dominant shares and a priority queue ordered by them.

A client's (a role's, or a framework's within a role) dominant share is the largest
of allocated ÷ cluster total over cpus, mem, disk and gpus. Roles are ordered by share
÷ weight, frameworks inside a role by share; ties break by name so a cycle is
deterministic.

Quantities are kept as 4-lists of thousandths (see `Resources.drf_quantities`) so the
cycle never builds a `Resources` to update a share.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

Vector = list[int]


def inverse_totals(total: Sequence[int]) -> tuple[float, float, float, float]:
    """1/total per DRF dimension, 0 for a dimension the cluster does not have."""
    inv = [1.0 / t if t > 0 else 0.0 for t in total]
    return (inv[0], inv[1], inv[2], inv[3])


def dominant_share(vector: Sequence[int] | None, inv: Sequence[float]) -> float:
    if vector is None:
        return 0.0
    return max(vector[0] * inv[0], vector[1] * inv[1], vector[2] * inv[2], vector[3] * inv[3])


class ShareQueue:
    """A min-queue of names by key with lazy deletion: `push` replaces a name's key.

    `pop` returns the entry with the lowest (key, name) whose key is still current and
    removes it; push it back (possibly with a new key) to keep the name queued.
    """

    __slots__ = ("_current", "_heap")

    def __init__(self, entries: Iterable[tuple[float, str]] = ()) -> None:
        self._heap = list(entries)
        heapq.heapify(self._heap)
        self._current = {name: key for key, name in self._heap}

    def __len__(self) -> int:
        return len(self._current)

    def push(self, key: float, name: str) -> None:
        self._current[name] = key
        heapq.heappush(self._heap, (key, name))

    def pop(self) -> tuple[float, str] | None:
        heap = self._heap
        current = self._current
        while heap:
            key, name = heapq.heappop(heap)
            if current.get(name) == key:
                del current[name]
                return key, name
        return None

    def key(self, name: str) -> float | None:
        return self._current.get(name)

    def order(self) -> list[str]:
        """The names in queue order (for tests and metrics; O(n log n))."""
        return [name for _, name in sorted((k, n) for n, k in self._current.items())]
