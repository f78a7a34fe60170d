"""Several health checks per app against a real stack: every check counts. The first
check runs on the agent, the others are probed by `lichen marathon` itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import requests

from tests.integration.marathon.fake_service import ServedFake
from tests.integration.marathon.stack import Stack
from tests.integration.marathon.test_marathon_behaviour import EventReader, api, app_state
from tests.support import wait_for

PY = sys.executable
# Serves HTTP on $PORT0 and, when SERVE_SECOND is set, on $PORT1 too.
SERVER = """\
import http.server, os, threading
ports = [os.environ["PORT0"]] + ([os.environ["PORT1"]] if os.environ.get("SERVE_SECOND") else [])
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", int(p)), http.server.SimpleHTTPRequestHandler)
           for p in ports]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""
QUICK = {"intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 1}


def two_port_app(app_id: str, script: Path, *, serve_second: bool, second: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": app_id, "instances": 1, "cpus": 0.1, "mem": 32, "backoffSeconds": 1,
        "cmd": f"{PY} {script}", "env": {"SERVE_SECOND": "1"} if serve_second else {},
        "portDefinitions": [{"port": 0}, {"port": 0}],
        "healthChecks": [
            {"protocol": "HTTP", "path": "/", "portIndex": 0, "maxConsecutiveFailures": 3, **QUICK},
            {"portIndex": 1, "maxConsecutiveFailures": 3, **QUICK, **second},
        ],
    }


def test_failing_second_check_keeps_instance_unhealthy_and_kills_it(stack: Stack, tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SERVER)
    events = EventReader(stack.marathon.url)
    healthy_seen: list[int] = []
    try:
        app = two_port_app("/half", script, serve_second=False, second={"protocol": "HTTP", "path": "/"})
        r = api(stack, "POST", "/v2/apps", json=app)
        assert r.status_code == 201, r.text

        def both_results() -> dict[str, Any] | None:
            a = app_state(stack, "half")
            healthy_seen.append(a["tasksHealthy"])
            return next((t for t in a["tasks"] if len(t["healthCheckResults"]) == 2), None)

        task = wait_for(both_results, 30, "a task with two health results")
        first, second = task["healthCheckResults"]
        assert first["alive"] is True, first
        assert second["alive"] is False and second["consecutiveFailures"] >= 1 and second["lastFailureCause"]
        kill = wait_for(lambda: [e for e in events.of("unhealthy_instance_kill_event")
                                 if e["taskId"] == task["id"]], 30, "the unhealthy kill")[0]
        assert "health check 1" in kill["reason"]

        def replaced() -> bool:
            a = app_state(stack, "half")
            healthy_seen.append(a["tasksHealthy"])
            return any(t["id"] != task["id"] for t in a["tasks"])

        wait_for(replaced, 30, "a replacement")
        failed = [e for e in events.of("failed_health_check_event") if e["appId"] == "/half"]
        assert failed and all(e["healthCheck"]["portIndex"] == 1 for e in failed)
        assert app_state(stack, "half")["lastTaskFailure"]["taskId"] == task["id"]
        assert not any(e["alive"] for e in events.of("health_status_changed_event") if e["appId"] == "/half")
        assert max(healthy_seen) == 0
    finally:
        events.close()
        api(stack, "DELETE", "/v2/apps/half?force=true")


def test_app_with_two_passing_checks_turns_healthy(stack: Stack, tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SERVER)
    app = dict(two_port_app("/both", script, serve_second=True, second={"protocol": "TCP"}), instances=2)
    r = api(stack, "POST", "/v2/apps", json=app)
    assert r.status_code == 201, r.text

    def all_healthy() -> bool:
        a = app_state(stack, "both")
        return bool(a["tasksHealthy"] == 2 and not a["deployments"] and a["tasksUnhealthy"] == 0)

    wait_for(all_healthy, 30, "two healthy instances")
    for task in app_state(stack, "both")["tasks"]:
        results = task["healthCheckResults"]
        assert len(results) == 2 and all(h["alive"] and h["firstSuccess"] for h in results), results
    api(stack, "DELETE", "/v2/apps/both?force=true")


def test_two_mesos_network_checks_are_refused(served: ServedFake) -> None:
    app = {"id": "/twice", "cmd": "sleep 60", "cpus": 0.1, "mem": 16, "portDefinitions": [{"port": 0}],
           "healthChecks": [{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_TCP"}]}
    r = requests.post(served.url + "/v2/apps", json=app, timeout=10)
    assert r.status_code == 422
    assert r.json()["details"] == [{"path": "/", "errors": ["AppDefinition can contain at most one Mesos health check"]}]
