"""`lichen agent` against a fake master: registration and command tasks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent.agent_harness import (
    AgentProcess,
    FakeMaster,
    command_task,
    framework_info,
    remove_tree,
    wait_for,
)


@pytest.fixture
def agent(master: FakeMaster, tmp_path: Path) -> Iterator[AgentProcess]:
    a = AgentProcess(master, tmp_path / "agent")
    try:
        a.start()
        yield a
    finally:
        a.cleanup()
        remove_tree(tmp_path)


def test_registers_with_resources_and_attributes(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(lambda: master.registrations, what="REGISTER")
    info = master.registrations[0]["agent_info"]
    assert "id" not in info
    assert info["port"] == int(agent.url.rsplit(":", 1)[1])
    names = {r["name"]: r for r in info["resources"]}
    assert names["cpus"]["scalar"]["value"] == 2
    assert names["ports"]["ranges"]["range"] == [{"begin": 31000, "end": 32000}]
    assert info["attributes"] == [
        {"name": "rack", "type": "TEXT", "text": {"value": "a"}},
        {"name": "zone", "type": "SCALAR", "scalar": {"value": 1.0}},
    ]
    wait_for(lambda: agent.state()["id"] == master.agent_id, what="agent id in /state")
    assert (agent.work_dir / "meta" / "agent.json").exists()


def test_answers_ping_with_pong(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.send({"type": "PING"})
    pong = wait_for(lambda: master.calls_of("PONG"), what="PONG")
    assert pong[0]["pong"]["agent_id"] == {"value": master.agent_id}


def test_command_task_finishes(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("t1", "echo hello; echo oops >&2"))
    final = master.wait_state("t1", "TASK_FINISHED")
    assert master.states("t1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert final["message"] == "Command exited with status 0"
    assert final["source"] == "SOURCE_EXECUTOR"
    assert final["agent_id"] == {"value": master.agent_id}
    assert final["executor_id"] == {"value": "t1"}
    sandbox = next(agent.work_dir.glob("slaves/*/frameworks/fw-1/executors/t1/runs/latest"))
    assert (sandbox / "stdout").read_text() == "hello\n"
    assert "oops" in (sandbox / "stderr").read_text()


def test_failing_command_reports_exit_status(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("t2", "exit 3"))
    final = master.wait_state("t2", "TASK_FAILED")
    assert final["message"] == "Command exited with status 3"
    assert final["reason"] == "REASON_COMMAND_EXECUTOR_FAILED"


def test_kill_reports_killed(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("t3", "sleep 1000"))
    master.wait_state("t3", "TASK_RUNNING")
    master.kill_task("t3", grace=0.5)
    final = master.wait_state("t3", "TASK_KILLED")
    assert "TASK_KILLING" not in master.states("t3")
    assert final["message"].startswith("Command terminated with signal")


def test_kill_sends_killing_first_with_the_capability(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    fw = framework_info(capabilities=[{"type": "TASK_KILLING_STATE"}])
    master.run_task(command_task("t4", "sleep 1000"), fw)
    master.wait_state("t4", "TASK_RUNNING")
    master.kill_task("t4")
    master.wait_state("t4", "TASK_KILLED")
    assert master.states("t4") == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]


def test_kill_of_unknown_task_reports_lost_without_uuid(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.kill_task("nope")
    lost = master.wait_state("nope", "TASK_LOST")
    assert "uuid" not in lost


def test_argv_form_execs_value_with_arguments(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    cmd = {"shell": False, "value": "/bin/echo", "arguments": ["echo", "a  b", "$HOME"]}
    master.run_task(command_task("t5", cmd))
    master.wait_state("t5", "TASK_FINISHED")
    sandbox = next(agent.work_dir.glob("slaves/*/frameworks/fw-1/executors/t5/runs/latest"))
    assert (sandbox / "stdout").read_text() == "a  b $HOME\n"


def test_environment_has_command_and_mesos_variables(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    cmd = {
        "value": "env > env.txt",
        "environment": {"variables": [{"name": "GREETING", "value": "hi there"}]},
    }
    master.run_task(command_task("t6", cmd))
    master.wait_state("t6", "TASK_FINISHED")
    sandbox = next(agent.work_dir.glob("slaves/*/frameworks/fw-1/executors/t6/runs/latest"))
    env = dict(
        line.split("=", 1) for line in (sandbox / "env.txt").read_text().splitlines() if "=" in line
    )
    assert env["GREETING"] == "hi there"
    assert env["MESOS_TASK_ID"] == "t6"
    assert env["MESOS_EXECUTOR_ID"] == "t6"
    assert env["MESOS_FRAMEWORK_ID"] == "fw-1"
    assert env["MESOS_SLAVE_ID"] == master.agent_id
    assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"] == str(sandbox.resolve())
    assert env["MESOS_AGENT_ENDPOINT"] == agent.url.removeprefix("http://")


def test_fetches_a_file_uri_into_the_sandbox(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    pytest.importorskip("lichen.agent.fetcher")
    source = tmp_path / "payload.txt"
    source.write_text("fetched!\n")
    wait_for(master.connected, what="stream")
    cmd = {"value": "cat payload.txt", "uris": [{"value": str(source)}]}
    master.run_task(command_task("t7", cmd))
    master.wait_state("t7", "TASK_FINISHED")
    sandbox = next(agent.work_dir.glob("slaves/*/frameworks/fw-1/executors/t7/runs/latest"))
    assert (sandbox / "stdout").read_text() == "fetched!\n"


def test_fetch_failure_fails_the_task(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    pytest.importorskip("lichen.agent.fetcher")
    wait_for(master.connected, what="stream")
    cmd = {"value": "true", "uris": [{"value": str(tmp_path / "missing.txt")}]}
    master.run_task(command_task("t8", cmd))
    final = master.wait_state("t8", "TASK_FAILED")
    assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert final["message"]


def test_status_updates_are_retried_until_acknowledged(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.auto_ack = False
    master.run_task(command_task("t9", "true"))
    wait_for(lambda: len(master.statuses("t9")) >= 3, what="retries")
    sent = master.statuses("t9")
    # Only the head of the queue is in flight: STARTING again and again, nothing else.
    assert {s["state"] for s in sent} == {"TASK_STARTING"}
    assert len({s["uuid"] for s in sent}) == 1
    master.acknowledge("fw-1", sent[0])
    running = master.wait_state("t9", "TASK_RUNNING")
    master.acknowledge("fw-1", running)
    finished = master.wait_state("t9", "TASK_FINISHED")
    master.acknowledge("fw-1", finished)

    def completed() -> bool:
        fws = agent.state()["completed_frameworks"]
        return bool(fws) and fws[0]["completed_executors"][0]["completed_tasks"][0]["state"] == "TASK_FINISHED"

    wait_for(completed, what="task moved to completed")


def test_state_endpoint_describes_running_task(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("t10", "sleep 1000"))
    master.wait_state("t10", "TASK_RUNNING")
    state = agent.state()
    assert state["pid"].startswith("slave(1)@127.0.0.1:")
    assert state["resources"]["cpus"] == 2.0
    assert state["attributes"] == {"rack": "a", "zone": 1.0}
    fw = state["frameworks"][0]
    assert fw["id"] == "fw-1"
    ex = fw["executors"][0]
    assert ex["id"] == "t10"
    assert Path(ex["directory"]).is_dir()
    task = ex["tasks"][0]
    assert (task["id"], task["state"], task["executor_id"]) == ("t10", "TASK_RUNNING", "")
    assert agent.get("/slave(1)/state").json()["id"] == state["id"]
    metrics = agent.get("/metrics/snapshot").json()
    assert metrics["slave/tasks_running"] == 1
    assert metrics["slave/registered"] == 1
    assert metrics["slave/cpus_used"] == pytest.approx(0.1)
    assert "lichen_agent_tasks_running 1.0" in agent.get("/metrics").text
    master.kill_task("t10", grace=0.2)
    master.wait_state("t10", "TASK_KILLED")


def test_version_health_and_bad_requests(master: FakeMaster, agent: AgentProcess) -> None:
    version = agent.get("/version").json()
    assert version["version"] == "1.11.0"
    assert all(part.isdigit() for part in version["version"].split("."))
    health = agent.get("/health")
    assert health.status_code == 200 and health.text == ""
    import requests

    r = requests.post(agent.url + "/api/v1", data="{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400
    r = requests.post(agent.url + "/api/v1", data="{}", headers={"Content-Type": "text/plain"}, timeout=5)
    assert r.status_code == 415
    r = requests.get(agent.url + "/api/v1/executor", timeout=5)
    assert r.status_code == 405
    r = requests.post(agent.url + "/api/v1", json={"type": "GET_HEALTH"}, timeout=5)
    assert r.json() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
    r = requests.post(agent.url + "/api/v1", json={"type": "GET_STATE"}, timeout=5)
    assert set(r.json()["get_state"]) == {"get_tasks", "get_executors", "get_frameworks"}


def _health_check(command: str) -> dict:
    return {
        "type": "COMMAND",
        "command": {"value": command},
        "delay_seconds": 0,
        "interval_seconds": 0.2,
        "timeout_seconds": 5,
        "consecutive_failures": 2,
        "grace_period_seconds": 0,
    }


def test_healthy_task_reports_running_healthy(master: FakeMaster, agent: AgentProcess) -> None:
    pytest.importorskip("lichen.agent.health")
    wait_for(master.connected, what="stream")
    master.run_task(command_task("h1", "sleep 1000", health_check=_health_check("true")))
    healthy = wait_for(
        lambda: [s for s in master.statuses("h1") if s.get("healthy") is True], what="healthy update"
    )[0]
    assert healthy["state"] == "TASK_RUNNING"
    master.kill_task("h1", grace=0.2)
    master.wait_state("h1", "TASK_KILLED")


def test_failing_health_check_kills_the_task(master: FakeMaster, agent: AgentProcess) -> None:
    pytest.importorskip("lichen.agent.health")
    wait_for(master.connected, what="stream")
    master.run_task(command_task("h2", "sleep 1000", health_check=_health_check("exit 1")))
    killed = master.wait_state("h2", "TASK_KILLED")
    assert killed["healthy"] is False
    unhealthy = [s for s in master.statuses("h2") if s["state"] == "TASK_RUNNING" and s.get("healthy") is False]
    assert unhealthy
