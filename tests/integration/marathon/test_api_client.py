"""marathon-python 0.13.0, unchanged, against the v2 API over the in-memory service.

The client builds its models with `cls(**json)`: any key it does not know fails a call
with TypeError, so every call here also checks that we emit only known keys.
"""

from __future__ import annotations

import collections
import collections.abc
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lichen.frameworks.marathon.service_api import QueueEntry
from tests.integration.marathon.fake_service import ServedFake

# marathon-python 0.13.0 uses aliases removed from `collections` in Python 3.10.
for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from marathon import MarathonClient
from marathon.exceptions import ConflictError, MarathonHttpError, NotFoundError
from marathon.models import MarathonApp, MarathonGroup
from marathon.models.container import MarathonContainer
from marathon.models.events import (
    MarathonApiPostEvent,
    MarathonDeploymentInfo,
    MarathonDeploymentSuccess,
    MarathonEventStreamAttached,
    MarathonStatusUpdateEvent,
)


@pytest.fixture
def client(served: ServedFake) -> MarathonClient:
    return MarathonClient(served.url, timeout=5)


def _app(**fields: Any) -> MarathonApp:
    return MarathonApp(**{"cmd": "sleep 3600", "mem": 16, "cpus": 0.1, **fields})


def test_info_leader_ping_metrics(client: MarathonClient) -> None:
    info = client.get_info()
    assert info.marathon_config.local_port_min == 10000
    assert client.get_leader() == {"leader": "127.0.0.1:8080"}
    assert client.ping() == b"pong"
    assert "gauges" in client.get_metrics()


def test_create_get_list_and_conflict(client: MarathonClient) -> None:
    created = client.create_app("t", _app(instances=5))
    assert created.id == "/t" and created.deployments[0].id
    app = client.get_app("t")
    assert app.tasks_running == 5 and len(client.list_tasks("t")) == 5
    assert app.tasks[0].started_at.tzinfo is not None
    assert [a.id for a in client.list_apps(embed_tasks=True)] == ["/t"]
    assert len(client.list_apps(embed_tasks=True)[0].tasks) == 5
    with pytest.raises(ConflictError):
        client.create_app("t", _app())
    with pytest.raises(NotFoundError, match="App '/nope' does not exist"):
        client.get_app("nope")


def test_complex_app_round_trips(client: MarathonClient) -> None:
    container = MarathonContainer.from_json(
        {
            "type": "DOCKER",
            "docker": {
                "image": "nginx",
                "network": "BRIDGE",
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            },
            "volumes": [{"containerPath": "/etc/x", "hostPath": "/etc/x", "mode": "RO"}],
        }
    )
    app = MarathonApp(
        cmd="nginx",
        container=container,
        uris=["http://example.com/x.tgz"],
        health_checks=[{"protocol": "HTTP", "path": "/", "portIndex": 0}],
        constraints=[["hostname", "UNIQUE"]],
        labels={"HAPROXY_GROUP": "external"},
    )
    client.create_app("complex", app)
    got = client.get_app("complex")
    assert 10000 <= got.container.port_mappings[0].service_port <= 20000
    assert got.health_checks[0].timeout_seconds == 20
    assert got.labels == {"HAPROXY_GROUP": "external"}


def test_scale_update_versions_rollback(client: MarathonClient) -> None:
    client.create_app("t", _app(instances=1))
    before = client.get_app("t")
    client.scale_app("/t", instances=2)  # PUT /v2/apps//t
    scaled = client.get_app("t")
    assert scaled.instances == 2 and scaled.tasks_running == 2
    assert scaled.version_info.last_scaling_at != before.version_info.last_scaling_at
    assert scaled.version_info.last_config_change_at == before.version_info.last_config_change_at
    assert len(client.list_versions("t")) == 2
    client.update_app("t", _app(cmd="sleep 7200"))
    assert client.get_app("t").cmd == "sleep 7200"
    assert client.get_app("t").instances == 2
    result = client.rollback_app("t", before.version)
    assert "deploymentId" in result
    assert client.get_app("t").cmd == "sleep 3600"
    assert client.get_version("t", before.version).id == "/t"
    assert "deploymentId" in client.restart_app("t")
    assert "deploymentId" in client.delete_app("t")


def test_kill_tasks(client: MarathonClient) -> None:
    client.create_app("t", _app(instances=3))
    tasks = client.list_tasks("t")
    result = client.kill_task("t", tasks[0].id, scale=True)
    assert "deploymentId" in result
    assert client.get_app("t").instances == 2
    killed = client.kill_tasks("t")
    assert len(killed) == 2
    assert len(client.list_tasks("t")) == 2  # replaced
    assert client.kill_given_tasks([client.list_tasks("t")[0].id]) is True


def test_locked_deployment_conflict_and_force(client: MarathonClient, served: ServedFake) -> None:
    served.service.hold = True
    client.create_app("t", _app(instances=1))
    with pytest.raises(ConflictError):
        client.update_app("t", _app(cmd="sleep 1"))
    client.update_app("t", _app(cmd="sleep 1"), force=True)
    deployments = client.list_deployments()
    assert deployments and deployments[0].affected_apps == ["/t"]
    assert client.delete_deployment(deployments[0].id, force=True) == {}


def test_invalid_app_is_a_marathon_http_error(client: MarathonClient) -> None:
    with pytest.raises(MarathonHttpError, match="Object is not valid"):
        client.create_app("neg", _app(cpus=-1))


def test_groups(client: MarathonClient) -> None:
    group = MarathonGroup.from_json(
        {
            "id": "/g",
            "apps": [
                {"id": "db", "cmd": "sleep 1"},
                {"id": "web", "cmd": "sleep 1", "dependencies": ["/g/db"]},
            ],
        }
    )
    client.create_group(group)
    assert [g.id for g in client.list_groups()] == ["/g"]
    assert sorted(a.id for a in client.get_group("g").apps) == ["/g/db", "/g/web"]
    client.scale_group("/g", 2)
    assert sorted(a.instances for a in client.get_group("g").apps) == [2, 2]
    client.delete_group("/g")
    with pytest.raises(NotFoundError):
        client.get_app("g/db")


def test_queue_and_reset_delay(client: MarathonClient, served: ServedFake) -> None:
    client.create_app("t", _app())
    served.service.delays["/t"] = QueueEntry("/t", 1, 5.0, False, 1_700_000_000.0)
    items = client.list_queue()
    assert items[0].app.id == "/t" and items[0].delay.time_left_seconds == 5
    assert client.list_queue(embed_last_unused_offers=True)[0].app.id == "/t"
    client.reset_delay("t")
    assert client.list_queue() == []


def test_list_endpoints(client: MarathonClient) -> None:
    client.create_app("t", _app(instances=2, port_definitions=[{"port": 0}]))
    endpoints = client.list_endpoints()
    assert len(endpoints) == 2
    assert all(10000 <= e.service_port <= 20000 for e in endpoints)


def test_event_subscriptions(client: MarathonClient) -> None:
    url = "http://127.0.0.1:9/callback"
    assert client.create_event_subscription(url)["eventType"] == "subscribe_event"
    assert client.list_event_subscriptions() == [url]
    assert client.delete_event_subscription(url)["eventType"] == "unsubscribe_event"
    assert client.list_event_subscriptions() == []


def _stream(client: MarathonClient, **kwargs: Any) -> Iterator[Any]:
    """Events from a background thread (the client's stream blocks)."""
    out: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            for event in client.event_stream(**kwargs):
                out.put(event)
        except Exception as e:  # noqa: BLE001 -- surfaced to the test below
            out.put(e)

    def items() -> Iterator[Any]:
        while True:
            item = out.get(timeout=5)
            if isinstance(item, Exception):
                raise item
            yield item

    threading.Thread(target=run, daemon=True).start()
    return items()


def test_event_stream_parses_into_client_classes(
    client: MarathonClient, served: ServedFake
) -> None:
    events = _stream(client)
    assert isinstance(next(events), MarathonEventStreamAttached)
    client.create_app("t", _app(instances=1))
    seen: list[Any] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
        {MarathonApiPostEvent, MarathonDeploymentSuccess} <= {type(e) for e in seen}
    ):
        seen.append(next(events))
    kinds = {type(e) for e in seen}
    assert {
        MarathonApiPostEvent,
        MarathonDeploymentInfo,
        MarathonStatusUpdateEvent,
        MarathonDeploymentSuccess,
    } <= kinds
    info = next(e for e in seen if isinstance(e, MarathonDeploymentInfo))
    assert info.plan.steps[0].actions[0].app == "/t"
    status = next(e for e in seen if isinstance(e, MarathonStatusUpdateEvent))
    assert status.task_status == "TASK_RUNNING"


def test_event_stream_with_event_types(client: MarathonClient, served: ServedFake) -> None:
    events = _stream(client, event_types=[MarathonStatusUpdateEvent, "deployment_success"])
    deadline = time.monotonic() + 5
    while not served.service.subscribers and time.monotonic() < deadline:
        time.sleep(0.01)
    client.create_app("t", _app(instances=1))
    first, second = next(events), next(events)
    assert isinstance(first, MarathonStatusUpdateEvent)
    assert isinstance(second, MarathonDeploymentSuccess)
