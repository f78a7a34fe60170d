"""`lichen marathon` end to end: a real master, real agents running real processes, and
the unmodified marathon-python client."""

from __future__ import annotations

import collections
import collections.abc

import pytest
import requests

from tests.integration.marathon.stack import Stack, sandbox_file
from tests.support import wait_for

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
    setattr(collections, _name, getattr(collections.abc, _name))  # marathon 0.13.0 on Python >= 3.10

marathon = pytest.importorskip("marathon")
from marathon import MarathonApp
from marathon.exceptions import ConflictError, NotFoundError


def test_create_scale_and_delete_an_app(stack: Stack) -> None:
    c = stack.client
    created = c.create_app("t", MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=5))
    assert created.id == "/t" and created.deployments
    assert [d.affected_apps for d in c.list_deployments()] == [["/t"]]
    wait_for(lambda: stack.settled("t", 5), 60, "5 tasks running")
    tasks = c.list_tasks("t")
    assert len(tasks) == 5 and all(t.started_at.tzinfo is not None for t in tasks)
    with pytest.raises(ConflictError):
        c.create_app("t", MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=5))
    with pytest.raises(NotFoundError, match="App '/nope' does not exist"):
        c.get_app("nope")

    before = stack.app("t").version_info
    c.scale_app("/t", instances=2)
    wait_for(lambda: stack.settled("t", 2), 60, "scaled to 2")
    after = stack.app("t").version_info
    assert after.last_scaling_at != before.last_scaling_at
    assert after.last_config_change_at == before.last_config_change_at
    assert len(c.list_versions("t")) == 2

    c.delete_app("t")
    wait_for(lambda: not c.list_apps() and not c.list_deployments(), 60, "app removed")
    master_tasks = requests.get(stack.master.url + "/master/tasks", timeout=5).json()["tasks"]
    wait_for(lambda: all(t["state"] == "TASK_KILLED" for t in
                         requests.get(stack.master.url + "/master/tasks", timeout=5).json()["tasks"]), 20,
             "tasks killed")
    assert len(master_tasks) >= 5


def test_invalid_app_is_422_with_the_path(stack: Stack) -> None:
    r = requests.post(stack.marathon.url + "/v2/apps", json={"id": "Bad_Id", "cmd": "x"}, timeout=5)
    assert r.status_code == 422
    assert [d["path"] for d in r.json()["details"]] == ["/id"]


def test_killed_task_is_replaced(stack: Stack) -> None:
    c = stack.client
    c.create_app("r", MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=2))
    wait_for(lambda: stack.settled("r", 2), 60, "2 running")
    victim = c.list_tasks("r")[0].id
    c.kill_task("r", victim)
    wait_for(lambda: stack.settled("r", 2) and victim not in {t.id for t in c.list_tasks("r")}, 60,
             "replacement")


def test_update_rolls_tasks_and_rollback(stack: Stack) -> None:
    c = stack.client
    c.create_app("u", MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=2))
    wait_for(lambda: stack.settled("u", 2), 60, "2 running")
    old_tasks = {t.id for t in c.list_tasks("u")}
    v_old = stack.app("u").version
    c.update_app("u", MarathonApp(cmd="sleep 7200", mem=16, cpus=0.1, instances=2))
    wait_for(lambda: stack.settled("u", 2) and not old_tasks & {t.id for t in c.list_tasks("u")}, 60,
             "rolled")
    assert stack.app("u").cmd == "sleep 7200"
    c.rollback_app("u", v_old)
    wait_for(lambda: stack.app("u").cmd == "sleep 3600" and stack.settled("u", 2), 60, "rolled back")


def test_task_environment_and_ports(stack: Stack) -> None:
    c = stack.client
    c.create_app("env", MarathonApp(
        cmd='echo "PORT0=$PORT0 PORTS=$PORTS APP=$MARATHON_APP_ID LABEL=$MARATHON_APP_LABEL_TEAM"; sleep 3600',
        mem=16, cpus=0.1, instances=1, port_definitions=[{"port": 0}], labels={"team": "ops"}))
    wait_for(lambda: stack.settled("env", 1), 60, "running")
    app = stack.app("env")
    assert 10000 <= app.port_definitions[0].port <= 20000
    task = app.tasks[0]
    assert len(task.ports) == 1 and task.service_ports == [app.port_definitions[0].port]
    out = wait_for(lambda: sandbox_file(stack, task.id), 20, "task output")
    assert out.strip() == f"PORT0={task.ports[0]} PORTS={task.ports[0]} APP=/env LABEL=ops"


def test_marathon_python_event_stream_parses_every_event(stack: Stack) -> None:
    import threading

    from marathon.models.events import MarathonDeploymentSuccess, MarathonStatusUpdateEvent

    c = stack.client
    seen: list[object] = []
    errors: list[BaseException] = []
    attached = threading.Event()

    def read() -> None:
        try:
            for event in c.event_stream(event_types=["event_stream_attached", "status_update_event",
                                                     "deployment_success", "deployment_info", "api_post_event"]):
                attached.set()
                seen.append(event)
                if isinstance(event, MarathonDeploymentSuccess):
                    return
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(attached.is_set, 20, "the event stream to attach")
    c.create_app("ev", MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=1))
    reader.join(60)
    assert not errors, errors
    assert any(isinstance(e, MarathonStatusUpdateEvent) and e.task_status == "TASK_RUNNING" for e in seen)
    assert isinstance(seen[-1], MarathonDeploymentSuccess)


def test_unique_hostname_constraint_spreads_instances(stack: Stack) -> None:
    c = stack.client
    r = requests.post(stack.marathon.url + "/v2/apps", json={
        "id": "/uniq", "cmd": "sleep 3600", "cpus": 0.1, "mem": 16, "instances": 3,
        "constraints": [["hostname", "UNIQUE"]]}, timeout=10)
    assert r.status_code == 201, r.text
    # Both agents are on 127.0.0.1 with distinct agent ids but the same hostname: one fits.
    wait_for(lambda: stack.app("uniq").tasks_running == 1, 60, "one instance placed")
    queue = requests.get(stack.marathon.url + "/v2/queue", timeout=5).json()["queue"]
    assert [(q["app"]["id"], q["count"]) for q in queue] == [("/uniq", 2)]
    c.scale_app("/uniq", instances=1, force=True)
    wait_for(lambda: stack.settled("uniq", 1), 60, "settled at one")


def test_kill_with_scale_and_kill_given_tasks(stack: Stack) -> None:
    c = stack.client
    c.create_app("k", MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=3))
    wait_for(lambda: stack.settled("k", 3), 60, "3 running")
    victim = c.list_tasks("k")[0].id
    result = c.kill_task("k", victim, scale=True)
    assert result is not None
    wait_for(lambda: stack.settled("k", 2), 60, "scaled down to 2")
    assert stack.app("k").instances == 2
    other = c.list_tasks("k")[0].id
    assert c.kill_given_tasks([other]) is True
    wait_for(lambda: stack.settled("k", 2) and other not in {t.id for t in c.list_tasks("k")}, 60, "replaced")


def test_stuck_deployment_conflicts_until_forced(stack: Stack) -> None:
    c = stack.client
    stuck = MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=1, port_definitions=[{"port": 0}],
                        health_checks=[{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 300,
                                        "intervalSeconds": 1, "maxConsecutiveFailures": 0}])
    c.create_app("stuck", stuck)
    wait_for(lambda: stack.app("stuck").tasks_running == 1, 60, "running, never healthy")
    with pytest.raises(ConflictError):
        c.update_app("stuck", MarathonApp(cmd="sleep 7200", mem=16, cpus=0.1, instances=1))
    deployment = c.list_deployments()[0]
    assert c.delete_deployment(deployment.id, force=True) == {}
    wait_for(lambda: not c.list_deployments(), 10, "deployment gone")
    c.update_app("stuck", MarathonApp(cmd="sleep 7200", mem=16, cpus=0.1, instances=0), force=True)
    wait_for(lambda: stack.settled("stuck", 0), 60, "scaled to zero")
