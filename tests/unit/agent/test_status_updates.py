from __future__ import annotations

import base64
import itertools

from lichen.agent.status_updates import MAX_RETRY_INTERVAL, StatusUpdateQueues, Update, new_uuid


def _update(task: str, state: str) -> Update:
    return Update("fw", task, {"task_id": {"value": task}, "state": state, "uuid": new_uuid()})


def test_new_uuid_is_base64_of_16_bytes() -> None:
    assert len(base64.b64decode(new_uuid(), validate=True)) == 16


def test_only_the_head_of_a_task_queue_is_due() -> None:
    q = StatusUpdateQueues(retry_interval=10)
    a, b = _update("t", "TASK_STARTING"), _update("t", "TASK_RUNNING")
    q.add(a, now=0)
    q.add(b, now=0)
    assert q.due(0) == [a]
    assert q.due(5) == []


def test_head_is_resent_with_doubling_backoff_up_to_the_cap() -> None:
    q = StatusUpdateQueues(retry_interval=10)
    q.add(_update("t", "TASK_RUNNING"), now=0)
    times, now = [], 0.0
    while now < 3000:
        if q.due(now):
            times.append(now)
        now += 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [10, 20, 40, 80]
    assert max(gaps) == MAX_RETRY_INTERVAL


def test_acknowledge_pops_the_head_and_makes_the_next_due() -> None:
    q = StatusUpdateQueues(retry_interval=10)
    a, b = _update("t", "TASK_STARTING"), _update("t", "TASK_RUNNING")
    q.add(a, now=0)
    q.add(b, now=0)
    q.due(0)
    assert q.acknowledge("fw", "t", b.uuid, now=1) is None       # not the head
    assert q.acknowledge("fw", "t", a.uuid, now=1) == a
    assert q.due(1) == [b]
    assert q.acknowledge("fw", "t", b.uuid, now=2) == b
    assert len(q) == 0 and q.next_deadline() is None


def test_restart_makes_every_head_due_now() -> None:
    q = StatusUpdateQueues(retry_interval=10)
    a, b = _update("t1", "TASK_RUNNING"), _update("t2", "TASK_RUNNING")
    q.add(a, now=0)
    q.add(b, now=0)
    q.due(0)
    assert q.due(1) == []
    q.restart(now=1)
    assert {u.uuid for u in q.due(1)} == {a.uuid, b.uuid}


def test_update_round_trips_through_json() -> None:
    u = _update("t", "TASK_FINISHED")
    assert Update.from_json(u.to_json()) == u
