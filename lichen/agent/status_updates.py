"""Per-task FIFOs of status updates on their way to the master (pure, no I/O).

Theory of operation: each task has a queue of updates. Only the head is in flight; it
is sent when it becomes head and resent with a doubling backoff (`retry_interval` up to
`MAX_RETRY_INTERVAL`) until an acknowledgement with its uuid arrives, which pops it and
makes the next one due at once. `restart()` makes every head due now (after a
(re-)registration). The shell persists queues (`pending`) and sends what `due(now)`
returns.
"""

from __future__ import annotations

import base64
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

MAX_RETRY_INTERVAL = 600.0


def new_uuid() -> str:
    """A fresh update uuid: standard base64 of 16 random bytes."""
    return base64.b64encode(uuidlib.uuid4().bytes).decode()


@dataclass(frozen=True, slots=True)
class Update:
    framework_id: str
    task_id: str
    status: dict[str, Any]           # TaskStatus JSON, with `uuid`

    @property
    def uuid(self) -> str:
        return str(self.status["uuid"])

    def to_json(self) -> dict[str, Any]:
        return {"framework_id": self.framework_id, "task_id": self.task_id, "status": self.status}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Update:
        return Update(str(d["framework_id"]), str(d["task_id"]), dict(d["status"]))


@dataclass(slots=True)
class _Stream:
    updates: list[Update] = field(default_factory=list)
    next_send: float = 0.0
    interval: float = 0.0


class StatusUpdateQueues:
    def __init__(self, retry_interval: float) -> None:
        self.retry_interval = retry_interval
        self._streams: dict[tuple[str, str], _Stream] = {}

    def add(self, update: Update, *, now: float) -> None:
        key = (update.framework_id, update.task_id)
        stream = self._streams.setdefault(key, _Stream(next_send=now))
        if not stream.updates:
            stream.next_send = now
            stream.interval = 0.0
        stream.updates.append(update)

    def acknowledge(self, framework_id: str, task_id: str, uuid: str, *, now: float) -> Update | None:
        """Pop the head if `uuid` is its uuid; return it (None for a stale or unknown ack)."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None or not stream.updates or stream.updates[0].uuid != uuid:
            return None
        head = stream.updates.pop(0)
        stream.next_send = now
        stream.interval = 0.0
        if not stream.updates:
            del self._streams[(framework_id, task_id)]
        return head

    def due(self, now: float) -> list[Update]:
        """Heads to send now; each is rescheduled with the doubled interval."""
        out = []
        for stream in self._streams.values():
            if stream.updates and stream.next_send <= now:
                out.append(stream.updates[0])
                stream.interval = (
                    self.retry_interval
                    if stream.interval == 0.0
                    else min(stream.interval * 2, MAX_RETRY_INTERVAL)
                )
                stream.next_send = now + stream.interval
        return out

    def next_deadline(self) -> float | None:
        times = [s.next_send for s in self._streams.values() if s.updates]
        return min(times) if times else None

    def restart(self, *, now: float) -> None:
        for stream in self._streams.values():
            stream.next_send = now
            stream.interval = 0.0

    def pending(self, framework_id: str, task_id: str) -> list[Update]:
        stream = self._streams.get((framework_id, task_id))
        return list(stream.updates) if stream else []

    def drop(self, framework_id: str, task_id: str) -> None:
        self._streams.pop((framework_id, task_id), None)

    def __len__(self) -> int:
        return sum(len(s.updates) for s in self._streams.values())
