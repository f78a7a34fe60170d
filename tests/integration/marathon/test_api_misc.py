"""Groups, deployments, queue, events (SSE), subscriptions, info, leader, ping and metrics
over real HTTP against the in-memory service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests

from lichen.frameworks.marathon.service_api import QueueEntry
from tests.integration.marathon.fake_service import ServedFake


def _group_body() -> dict[str, Any]:
    return {
        "id": "/g",
        "apps": [
            {"id": "db", "cmd": "sleep 100"},
            {"id": "web", "cmd": "sleep 100", "dependencies": ["/g/db"]},
        ],
    }


def test_post_group_is_201_and_duplicate_is_409(served: ServedFake) -> None:
    resp = requests.post(served.url + "/v2/groups", json=_group_body(), timeout=5)
    assert resp.status_code == 201
    assert set(resp.json()) == {"deploymentId", "version"}
    assert resp.headers["Marathon-Deployment-Id"] == resp.json()["deploymentId"]
    again = requests.post(served.url + "/v2/groups", json=_group_body(), timeout=5)
    assert again.status_code == 409
    assert again.json() == {"message": "Group /g is already created. Use PUT to change this group."}


def test_get_groups_is_bare_and_embeds(served: ServedFake) -> None:
    requests.post(served.url + "/v2/groups", json=_group_body(), timeout=5)
    root = requests.get(served.url + "/v2/groups", timeout=5).json()
    assert root["id"] == "/" and [g["id"] for g in root["groups"]] == ["/g"]
    group = requests.get(served.url + "/v2/groups/g", timeout=5).json()
    assert sorted(a["id"] for a in group["apps"]) == ["/g/db", "/g/web"]
    assert set(group) <= {"id", "apps", "groups", "pods", "dependencies", "version"}
    only_groups = requests.get(
        served.url + "/v2/groups/g", params={"embed": "group.groups"}, timeout=5
    ).json()
    assert only_groups["apps"] == []
    missing = requests.get(served.url + "/v2/groups/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"message": "Group '/nope' does not exist"}


def test_group_versions(served: ServedFake) -> None:
    requests.post(served.url + "/v2/groups", json=_group_body(), timeout=5)
    versions = requests.get(served.url + "/v2/groups/g/versions", timeout=5).json()
    assert isinstance(versions, list) and versions
    one = requests.get(served.url + f"/v2/groups/g/versions/{versions[0]}", timeout=5)
    assert one.status_code == 200 and one.json()["id"] == "/g"


def test_put_group_scale_by_and_dry_run(served: ServedFake) -> None:
    requests.post(served.url + "/v2/groups", json=_group_body(), timeout=5)
    resp = requests.put(served.url + "/v2/groups/g", json={"scaleBy": 2}, timeout=5)
    assert resp.status_code == 200 and "deploymentId" in resp.json()
    instances = [
        a["instances"] for a in requests.get(served.url + "/v2/groups/g", timeout=5).json()["apps"]
    ]
    assert instances == [2, 2]
    body = _group_body()
    body["apps"].append({"id": "cache", "cmd": "sleep 1"})
    dry = requests.put(served.url + "/v2/groups/g", params={"dryRun": "true"}, json=body, timeout=5)
    assert dry.status_code == 200
    actions = [a for step in dry.json()["steps"] for a in step["actions"]]
    assert {"action": "StartApplication", "app": "/g/cache"} in actions
    assert requests.get(served.url + "/v2/apps/g/cache", timeout=5).status_code == 404


def test_put_group_creates_and_delete_removes(served: ServedFake) -> None:
    resp = requests.put(served.url + "/v2/groups/g", json=_group_body(), timeout=5)
    assert resp.status_code == 201
    deleted = requests.delete(served.url + "/v2/groups/g", timeout=5)
    assert deleted.status_code == 200 and "deploymentId" in deleted.json()
    assert requests.get(served.url + "/v2/apps/g/db", timeout=5).status_code == 404
    assert requests.delete(served.url + "/v2/groups/g", timeout=5).status_code == 404


def test_deployments_list_and_cancel(served: ServedFake) -> None:
    served.service.hold = True
    created = requests.post(
        served.url + "/v2/apps", json={"id": "/web", "cmd": "sleep 1"}, timeout=5
    )
    deployment = created.headers["Marathon-Deployment-Id"]
    listed = requests.get(served.url + "/v2/deployments", timeout=5).json()
    assert [d["id"] for d in listed] == [deployment]
    assert listed[0]["affectedApps"] == ["/web"]
    assert listed[0]["currentStep"] == 1 and listed[0]["totalSteps"] >= 1
    forced = requests.delete(
        served.url + f"/v2/deployments/{deployment}", params={"force": "true"}, timeout=5
    )
    assert forced.status_code == 202 and forced.content == b""
    missing = requests.delete(served.url + f"/v2/deployments/{deployment}", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"message": f"DeploymentPlan {deployment} does not exist"}


def test_unforced_cancel_answers_a_rollback_deployment(served: ServedFake) -> None:
    served.service.hold = True
    created = requests.post(
        served.url + "/v2/apps", json={"id": "/web", "cmd": "sleep 1"}, timeout=5
    )
    deployment = created.headers["Marathon-Deployment-Id"]
    resp = requests.delete(served.url + f"/v2/deployments/{deployment}", timeout=5)
    assert resp.status_code == 200
    assert set(resp.json()) == {"deploymentId", "version"}


def test_queue_and_reset_delay(served: ServedFake) -> None:
    requests.post(served.url + "/v2/apps", json={"id": "/web", "cmd": "sleep 1"}, timeout=5)
    served.service.delays["/web"] = QueueEntry("/web", 1, 12.3, False, 1_700_000_000.0)
    queue = requests.get(served.url + "/v2/queue", timeout=5).json()["queue"]
    assert queue[0]["app"]["id"] == "/web"
    assert queue[0]["delay"] == {"timeLeftSeconds": 13, "overdue": False}
    offers = requests.get(
        served.url + "/v2/queue", params={"embed": "lastUnusedOffers"}, timeout=5
    ).json()
    assert offers["queue"][0]["lastUnusedOffers"] == []
    resp = requests.delete(served.url + "/v2/queue//web/delay", timeout=5)
    assert resp.status_code == 204
    again = requests.delete(served.url + "/v2/queue/web/delay", timeout=5)
    assert again.status_code == 404
    assert again.json() == {"message": "Application /web not found in tasks queue."}


def test_event_subscriptions(served: ServedFake) -> None:
    url = "http://127.0.0.1:9/cb"
    resp = requests.post(
        served.url + "/v2/eventSubscriptions", params={"callbackUrl": url}, timeout=5
    )
    assert resp.status_code == 200
    assert resp.json()["eventType"] == "subscribe_event" and resp.json()["callbackUrl"] == url
    listed = requests.get(served.url + "/v2/eventSubscriptions", timeout=5).json()
    assert listed == {"callbackUrls": [url]}
    info = requests.get(served.url + "/v2/info", timeout=5).json()
    assert info["event_subscriber"] == {"type": "http_callback", "http_endpoints": [url]}
    gone = requests.delete(
        served.url + "/v2/eventSubscriptions", params={"callbackUrl": url}, timeout=5
    )
    assert gone.json()["eventType"] == "unsubscribe_event"
    assert requests.get(served.url + "/v2/eventSubscriptions", timeout=5).json() == {
        "callbackUrls": []
    }
    bad = requests.post(
        served.url + "/v2/eventSubscriptions", params={"callbackUrl": "nope"}, timeout=5
    )
    assert bad.status_code == 422


def test_info_leader_ping_metrics(served: ServedFake) -> None:
    info = requests.get(
        served.url + "/v2/info", headers={"Content-Type": "application/json"}, timeout=5
    ).json()
    assert {"http_config", "zookeeper_config", "marathon_config"} <= set(info)
    assert info["marathon_config"]["local_port_min"] == 10000
    leader = requests.get(served.url + "/v2/leader", timeout=5).json()
    assert leader == {"leader": "127.0.0.1:8080"}
    assert requests.delete(served.url + "/v2/leader", timeout=5).json() == {
        "message": "Leadership abdicated"
    }
    ping = requests.get(served.url + "/ping", timeout=5)
    assert ping.text == "pong" and ping.headers["Content-Type"].startswith("text/plain")
    metrics = requests.get(served.url + "/metrics", timeout=5).json()
    assert set(metrics) == {"version", "gauges", "counters", "histograms", "meters", "timers"}
    assert requests.get(served.url + "/v2/pods", timeout=5).json() == []


def _read_events(lines: Iterator[bytes], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `count` events of an SSE line iterator (heartbeat lines skipped)."""
    out: list[tuple[str, dict[str, Any]]] = []
    event_type = ""
    for line in lines:
        text = line.decode()
        if text.startswith("event: "):
            event_type = text[len("event: ") :]
        elif text.startswith("data: "):
            out.append((event_type, json.loads(text[len("data: ") :])))
            if len(out) == count:
                return out
    raise AssertionError(f"stream ended after {out}")


def test_event_stream_frames_filters_and_attached(served: ServedFake) -> None:
    with requests.get(served.url + "/v2/events", stream=True, timeout=5) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        lines = resp.iter_lines(chunk_size=1)
        first = _read_events(lines, 1)
        assert first[0][0] == "event_stream_attached"
        assert "remoteAddress" in first[0][1] and "timestamp" in first[0][1]
        requests.post(served.url + "/v2/apps", json={"id": "/web", "cmd": "sleep 1"}, timeout=5)
        got = _read_events(lines, 6)
        types = [t for t, _ in got]
        assert types[:2] == ["group_change_success", "deployment_info"]
        assert "api_post_event" in types or "status_update_event" in types
        info = dict(got)["deployment_info"]
        assert "original" in info["plan"] and "target" in info["plan"]


def test_event_stream_type_filter_and_light_plans(served: ServedFake) -> None:
    params = [
        ("event_type", "deployment_info"),
        ("event_type", "api_post_event"),
        ("plan-format", "light"),
    ]
    with requests.get(served.url + "/v2/events", params=params, stream=True, timeout=5) as resp:
        deadline = time.monotonic() + 5
        while not served.service.subscribers and time.monotonic() < deadline:
            time.sleep(0.01)
        requests.post(served.url + "/v2/apps", json={"id": "/web", "cmd": "sleep 1"}, timeout=5)
        got = _read_events(resp.iter_lines(chunk_size=1), 2)
        assert sorted(t for t, _ in got) == ["api_post_event", "deployment_info"]
        plan = dict(got)["deployment_info"]["plan"]
        assert set(plan) == {"id", "version", "steps"}


def test_event_stream_heartbeats_and_detaches(served: ServedFake) -> None:
    with requests.get(served.url + "/v2/events", stream=True, timeout=5) as resp:
        raw = resp.raw
        received = b""
        deadline = time.monotonic() + 5
        while received.count(b"\r\n") < 4 and time.monotonic() < deadline:
            received += raw.read(1)
        # attached event (3 CRLFs) then at least one bare CRLF heartbeat (0.5 s here)
        assert received.startswith(b"event: event_stream_attached\r\ndata: ")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(e["eventType"] == "event_stream_detached" for e in served.service.published):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("no event_stream_detached")
