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
def master() -> Iterator[FakeMaster]:
    m = FakeMaster()
    yield m
    m.close()


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
