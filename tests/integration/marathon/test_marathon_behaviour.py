"""Marathon behaviour end to end: health checks, rolling restarts, groups, events,
callbacks, and a kill -9 of Marathon in the middle of a deployment."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.marathon.stack import Stack, sandbox_file
from tests.support import wait_for
from tests.support.daemons import start_daemon

PY = sys.executable
HTTP_APP = {
    "cmd": f"{PY} -m http.server $PORT0 --bind 127.0.0.1",
    "cpus": 0.1, "mem": 32, "portDefinitions": [{"port": 0}],
    "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
                      "intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 3}],
}


class EventReader:
    """Reads /v2/events on a thread; keeps every event."""

    def __init__(self, url: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.resp = requests.get(url + "/v2/events", stream=True, timeout=(5, None),
                                 headers={"Accept": "text/event-stream"})
        assert self.resp.status_code == 200
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.resp.iter_lines():
                if line.startswith(b"data: "):
                    self.events.append(json.loads(line[6:]))
        except (requests.RequestException, AttributeError, ValueError):
            pass

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["eventType"] == kind]

    def close(self) -> None:
        self.resp.close()


def api(stack: Stack, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, stack.marathon.url + path, timeout=10, **kw)


def app_state(stack: Stack, app_id: str) -> dict[str, Any]:
    return api(stack, "GET", f"/v2/apps/{app_id}").json()["app"]


def healthy_settled(stack: Stack, app_id: str, n: int) -> bool:
    a = app_state(stack, app_id)
    return not a["deployments"] and a["tasksRunning"] == n and a["tasksHealthy"] == n and len(a["tasks"]) == n


def test_http_health_checks_scale_and_events(stack: Stack) -> None:
    events = EventReader(stack.marathon.url)
    try:
        r = api(stack, "POST", "/v2/apps", json={"id": "/web", "instances": 3, **HTTP_APP})
        assert r.status_code == 201, r.text
        wait_for(lambda: healthy_settled(stack, "web", 3), 60, "3 healthy")
        wait_for(lambda: events.of("deployment_success"), 10, "deployment_success event")
        running = [e for e in events.of("status_update_event") if e["taskStatus"] == "TASK_RUNNING"]
        assert len(running) >= 3 and all(e["appId"] == "/web" for e in running)
        assert events.of("health_status_changed_event")
        for n in (5, 2):
            r = api(stack, "PUT", "/v2/apps/web", json={"instances": n})
            assert r.status_code == 200, r.text
            wait_for(lambda n=n: healthy_settled(stack, "web", n), 60, f"{n} healthy")
    finally:
        events.close()


def test_rolling_restart_keeps_minimum_health_capacity(stack: Stack) -> None:
    app = {"id": "/roll", "instances": 4, **HTTP_APP,
           "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}}
    assert api(stack, "POST", "/v2/apps", json=app).status_code == 201
    wait_for(lambda: healthy_settled(stack, "roll", 4), 60, "4 healthy")
    old = {t["id"] for t in app_state(stack, "roll")["tasks"]}
    events = EventReader(stack.marathon.url)
    try:
        r = api(stack, "POST", "/v2/apps/roll/restart")
        assert r.status_code == 200 and r.json()["deploymentId"]
        # Track healthy instances from the event stream while the restart runs.
        wait_for(lambda: healthy_settled(stack, "roll", 4)
                 and not old & {t["id"] for t in app_state(stack, "roll")["tasks"]}, 90, "restarted")
        alive: set[str] = set(old)
        lowest = len(alive)
        for e in events.events:
            if e["eventType"] == "health_status_changed_event" and e["alive"]:
                alive.add(e["instanceId"])
            elif e["eventType"] == "status_update_event" and e["taskStatus"] != "TASK_RUNNING":
                alive.discard(e["taskId"].rsplit("._app", 1)[0])
                alive.discard(e["taskId"])
            lowest = min(lowest, len(alive))
        assert lowest >= 2, f"healthy instances dropped to {lowest}"
        assert len(app_state(stack, "roll")["tasks"]) == 4
    finally:
        events.close()


def test_failing_health_check_kills_and_replaces(stack: Stack) -> None:
    app = {"id": "/sick", "instances": 1, "cmd": "sleep 3600", "cpus": 0.1, "mem": 16,
           "portDefinitions": [{"port": 0}], "backoffSeconds": 1,
           "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "gracePeriodSeconds": 1,
                             "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}]}
    events = EventReader(stack.marathon.url)
    try:
        assert api(stack, "POST", "/v2/apps", json=app).status_code == 201
        first = wait_for(lambda: app_state(stack, "sick")["tasks"], 60, "a task")[0]["id"]
        wait_for(lambda: events.of("unhealthy_instance_kill_event"), 60, "unhealthy kill")
        wait_for(lambda: any(t["id"] != first for t in app_state(stack, "sick")["tasks"]), 60, "replacement")
        assert events.of("failed_health_check_event")
        assert app_state(stack, "sick")["lastTaskFailure"]["taskId"] == first
        queue = api(stack, "GET", "/v2/queue").json()["queue"]
        assert all(set(q["delay"]) == {"timeLeftSeconds", "overdue"} for q in queue)
    finally:
        events.close()


def test_group_dependencies_deploy_in_order(stack: Stack) -> None:
    group = {"id": "/g", "apps": [
        {"id": "db", "cmd": "sleep 3600", "cpus": 0.1, "mem": 16, "instances": 1},
        {"id": "web", "cmd": "sleep 3600", "cpus": 0.1, "mem": 16, "instances": 1, "dependencies": ["/g/db"]},
    ]}
    r = api(stack, "POST", "/v2/groups", json=group)
    assert r.status_code == 201, r.text
    plan = next(d for d in api(stack, "GET", "/v2/deployments").json() if d["id"] == r.json()["deploymentId"])
    order = [[a["app"] for a in step["actions"]] for step in plan["steps"]]
    assert order.index(["/g/db"]) < order.index(["/g/web"])
    wait_for(lambda: not api(stack, "GET", "/v2/deployments").json(), 60, "group deployed")
    db_started = app_state(stack, "g/db")["tasks"][0]["startedAt"]
    web_staged = app_state(stack, "g/web")["tasks"][0]["stagedAt"]
    assert db_started <= web_staged
    g = api(stack, "GET", "/v2/groups/g").json()
    assert sorted(a["id"] for a in g["apps"]) == ["/g/db", "/g/web"]
    assert api(stack, "PUT", "/v2/groups/g", json={"scaleBy": 2}).status_code == 200
    wait_for(lambda: app_state(stack, "g/db")["tasksRunning"] == 2 and app_state(stack, "g/web")["tasksRunning"] == 2,
             60, "scaled group")
    assert api(stack, "DELETE", "/v2/groups/g").status_code == 200
    wait_for(lambda: api(stack, "GET", "/v2/apps").json()["apps"] == [], 60, "group removed")


class _Collector(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012  (one test at a time)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Collector.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/events"
    server.shutdown()
    server.server_close()


def test_callback_subscriber_receives_events(stack: Stack, collector: str) -> None:
    r = api(stack, "POST", "/v2/eventSubscriptions", params={"callbackUrl": collector})
    assert r.status_code == 200 and r.json()["eventType"] == "subscribe_event"
    assert collector in api(stack, "GET", "/v2/eventSubscriptions").json()["callbackUrls"]
    api(stack, "POST", "/v2/apps", json={"id": "/cb", "cmd": "sleep 3600", "cpus": 0.1, "mem": 16})
    wait_for(lambda: {"deployment_success", "status_update_event"} <= {e["eventType"] for e in _Collector.received},
             60, "callback events")


def test_kill_9_mid_deployment_finishes_with_exactly_n(stack: Stack, tmp_path: Path, daemons: Any) -> None:
    # A stuck deployment: instances never pass their readiness... here, the health check
    # passes only once a file exists, so the deployment is mid-way when Marathon dies.
    flag = tmp_path / "ready"
    app = {"id": "/resume", "instances": 3, "cpus": 0.1, "mem": 16, "portDefinitions": [{"port": 0}],
           "cmd": "sleep 3600",
           "healthChecks": [{"protocol": "COMMAND", "command": {"value": f"test -e {flag}"},
                             "gracePeriodSeconds": 300, "intervalSeconds": 1, "timeoutSeconds": 2,
                             "maxConsecutiveFailures": 0}]}
    assert api(stack, "POST", "/v2/apps", json=app).status_code == 201
    wait_for(lambda: app_state(stack, "resume")["tasksRunning"] == 3, 60, "3 running, not healthy")
    assert api(stack, "GET", "/v2/deployments").json(), "the deployment waits for health"
    os.kill(stack.marathon.proc.pid, signal.SIGKILL)
    stack.marathon.proc.wait(10)
    work = stack.marathon.work_dir
    port = stack.marathon.port
    stack.marathon = daemons.add(start_daemon("marathon", work, [
        "--master", stack.master.addr, "--port", str(port), "--work-dir", str(work)]))
    flag.touch()
    wait_for(lambda: healthy_settled(stack, "resume", 3), 60, "deployment finished after restart")
    master_tasks = requests.get(stack.master.url + "/master/tasks", timeout=5).json()["tasks"]
    running = [t for t in master_tasks if t["state"] == "TASK_RUNNING"]
    assert len(running) == 3, "nothing extra was launched"
    # Offers the previous incarnation declined (for 120 s by default) do not hold up new launches.
    assert api(stack, "PUT", "/v2/apps/resume", json={"instances": 4}).status_code == 200
    wait_for(lambda: app_state(stack, "resume")["tasksRunning"] == 4, 20, "a launch soon after the restart")


def test_readiness_checks_hold_the_deployment(stack: Stack, tmp_path: Path) -> None:
    flag = tmp_path / "ready-flag"
    app = {"id": "/rd", "instances": 2, "cpus": 0.1, "mem": 32,
           "cmd": f"ln -s {flag} ready && exec {PY} -m http.server $PORT0 --bind 127.0.0.1",
           "portDefinitions": [{"port": 0, "name": "http"}],
           "readinessChecks": [{"name": "r", "protocol": "HTTP", "path": "/ready", "portName": "http",
                                "intervalSeconds": 1, "timeoutSeconds": 1, "httpStatusCodesForReady": [200]}]}
    r = api(stack, "POST", "/v2/apps", json=app)
    assert r.status_code == 201, r.text
    wait_for(lambda: app_state(stack, "rd")["tasksRunning"] == 2, 60, "2 running")
    # Running but not ready: the deployment waits while the checks keep getting 404s.
    tasks = [t["id"] for t in app_state(stack, "rd")["tasks"]]
    for task_id in tasks:
        wait_for(lambda task_id=task_id: sandbox_file(stack, task_id, "stderr").count('"GET /ready') >= 2,
                 30, "two failed readiness checks")
    assert api(stack, "GET", "/v2/deployments").json(), "finished before the instances were ready"
    flag.write_text("ok")
    wait_for(lambda: not api(stack, "GET", "/v2/deployments").json(), 30, "deployment done once ready")


def test_unreachable_instances_are_replaced_then_expunged(stack: Stack) -> None:
    app = {"id": "/away", "instances": 1, "cmd": "sleep 3600", "cpus": 0.1, "mem": 16,
           "unreachableStrategy": {"inactiveAfterSeconds": 1, "expungeAfterSeconds": 2}}
    assert api(stack, "POST", "/v2/apps", json=app).status_code == 201
    first = wait_for(lambda: [t for t in app_state(stack, "away")["tasks"] if t["state"] == "TASK_RUNNING"],
                     60, "running")[0]
    agent = next(a for a in stack.agents
                 if requests.get(a.url + "/state", timeout=5).json()["id"] == first["slaveId"])
    os.kill(agent.proc.pid, signal.SIGSTOP)  # the agent stops answering; its task runs on
    try:
        wait_for(lambda: any(t["id"] == first["id"] and t["state"] == "TASK_UNREACHABLE"
                             for t in app_state(stack, "away")["tasks"]), 30, "unreachable")
        replacement = wait_for(lambda: [t for t in app_state(stack, "away")["tasks"]
                                        if t["id"] != first["id"] and t["state"] == "TASK_RUNNING"], 30,
                               "a replacement on the other agent")[0]
        assert replacement["slaveId"] != first["slaveId"]
        wait_for(lambda: [t["id"] for t in app_state(stack, "away")["tasks"]] == [replacement["id"]], 30,
                 "the unreachable instance expunged")
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    # When the agent comes back, the expunged instance's task is killed: one instance stays.
    wait_for(lambda: not [t for t in requests.get(stack.master.url + "/master/tasks", timeout=5).json()["tasks"]
                          if t["id"] == first["id"] and t["state"] == "TASK_RUNNING"], 60, "old task killed")
    assert [t["id"] for t in app_state(stack, "away")["tasks"]] == [replacement["id"]]
