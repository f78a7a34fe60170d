"""Agent restarts: checkpointed tasks survive, and their ends are reported."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent.agent_harness import (
    AgentProcess,
    FakeMaster,
    command_task,
    pid_alive,
    remove_tree,
    task_pid,
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


def _reregistration(master: FakeMaster, n: int) -> dict:
    wait_for(lambda: len(master.registrations) >= n, 30, "re-registration")
    return master.registrations[n - 1]


def test_restarted_agent_reregisters_with_running_task(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("sleepy", "sleep 1000"))
    master.wait_state("sleepy", "TASK_RUNNING")
    pid = task_pid(agent.work_dir, "sleepy")
    agent.kill()                                   # kill -9: no chance to clean up
    assert pid_alive(pid)
    agent.start()
    register = _reregistration(master, 2)
    assert register["agent_info"]["id"] == {"value": master.agent_id}
    tasks = {t["task_id"]["value"]: t for t in register["tasks"]}
    assert tasks["sleepy"]["state"] == "TASK_RUNNING"
    assert tasks["sleepy"]["task_info"]["command"]["value"] == "sleep 1000"
    assert [f["id"] for f in register["frameworks"]] == [{"value": "fw-1"}]
    wait_for(master.connected, what="stream again")
    master.kill_task("sleepy", grace=0.5)
    master.wait_state("sleepy", "TASK_KILLED")
    wait_for(lambda: not pid_alive(pid), what="task process gone")


def test_task_that_ends_while_agent_is_down_reports_after_restart(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    wait_for(master.connected, what="stream")
    gate = tmp_path / "gate"
    master.run_task(command_task("brief", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 0"))
    master.wait_state("brief", "TASK_RUNNING")
    pid = task_pid(agent.work_dir, "brief")
    agent.kill()
    gate.touch()
    wait_for(lambda: not pid_alive(pid), what="task to end while the agent is down")
    agent.start()
    _reregistration(master, 2)
    final = master.wait_state("brief", "TASK_FINISHED")
    assert final["message"] == "Command exited with status 0"


def test_unacknowledged_updates_are_resent_after_restart(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.auto_ack = False
    master.run_task(command_task("unacked", "true"))
    starting = master.wait_state("unacked", "TASK_STARTING")
    agent.kill()
    n = len(master.statuses("unacked"))
    master.auto_ack = True
    agent.start()
    _reregistration(master, 2)
    wait_for(lambda: len(master.statuses("unacked")) > n, what="resend")
    assert master.statuses("unacked")[n]["uuid"] == starting["uuid"]
    master.wait_state("unacked", "TASK_FINISHED")


def test_sigterm_stops_the_agent_but_not_its_tasks(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("survivor", "sleep 1000"))
    master.wait_state("survivor", "TASK_RUNNING")
    pid = task_pid(agent.work_dir, "survivor")
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit() == 0
    assert pid_alive(pid)
    agent.start()
    register = _reregistration(master, 2)
    assert [t["state"] for t in register["tasks"]] == ["TASK_RUNNING"]
    assert agent.state()["frameworks"][0]["executors"][0]["tasks"][0]["state"] == "TASK_RUNNING"


def test_finished_sandboxes_are_garbage_collected(master: FakeMaster, tmp_path: Path) -> None:
    agent = AgentProcess(master, tmp_path / "gc-agent", "--gc-delay", "0.5")
    try:
        agent.start()
        wait_for(master.connected, what="stream")
        master.run_task(command_task("short", "echo bye"))
        master.wait_state("short", "TASK_FINISHED")
        runs = agent.work_dir / "slaves" / master.agent_id / "frameworks/fw-1/executors/short/runs"
        wait_for(lambda: [p for p in runs.iterdir() if p.name != "latest"] == [], 15, "sandbox removal")
    finally:
        agent.cleanup()


def test_shutdown_framework_kills_its_tasks(master: FakeMaster, agent: AgentProcess) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(command_task("doomed", "sleep 1000"))
    master.wait_state("doomed", "TASK_RUNNING")
    pid = task_pid(agent.work_dir, "doomed")
    master.send({"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": {"framework_id": {"value": "fw-1"}}})
    master.wait_state("doomed", "TASK_KILLED")
    wait_for(lambda: not pid_alive(pid), what="task process gone")
    wait_for(lambda: agent.state()["frameworks"] == [], what="framework forgotten")


def test_agent_restarted_with_port_zero_comes_back_on_its_last_port(master: FakeMaster, agent: AgentProcess) -> None:
    # Executors reconnect to the MESOS_AGENT_ENDPOINT they were started with.
    wait_for(master.connected, what="stream")
    first = agent.port
    agent.kill()
    agent.port = 0
    agent.start()
    assert agent.port == first
