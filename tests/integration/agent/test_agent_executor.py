"""Custom executors: a pymesos executor started through TaskInfo.executor."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.agent_harness import (
    PYTHON,
    AgentProcess,
    FakeMaster,
    framework_info,
    remove_tree,
    wait_for,
)

pytest.importorskip("pymesos")

EXECUTOR = textwrap.dedent(
    """
    import os, sys, threading, time
    from pymesos import MesosExecutorDriver, Executor, encode_data, decode_data

    class Echo(Executor):
        def launchTask(self, driver, task):
            def run():
                tid = task["task_id"]
                driver.sendStatusUpdate({"task_id": tid, "state": "TASK_RUNNING"})
                mode = decode_data(task.get("data", "")).decode() if task.get("data") else ""
                if mode == "crash":
                    time.sleep(0.2)
                    os._exit(7)
                if mode == "wait":
                    return
                time.sleep(0.1)
                driver.sendStatusUpdate(
                    {"task_id": tid, "state": "TASK_FINISHED", "data": encode_data(b"ok")}
                )
            threading.Thread(target=run, daemon=True).start()

        def killTask(self, driver, task_id):
            driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})

        def frameworkMessage(self, driver, message):
            driver.sendFrameworkMessage(encode_data(b"echo:" + decode_data(message)))

    MesosExecutorDriver(Echo()).run()
    """
)


@pytest.fixture
def agent(master: FakeMaster, tmp_path: Path) -> Iterator[AgentProcess]:
    a = AgentProcess(master, tmp_path / "agent", "--executor-shutdown-grace-period", "0.5")
    try:
        a.start()
        wait_for(master.connected, what="stream")
        yield a
    finally:
        a.cleanup()
        remove_tree(tmp_path)


def _task(tmp_path: Path, task_id: str, data: str | None = None) -> dict[str, Any]:
    import base64

    script = tmp_path / "executor.py"
    script.write_text(EXECUTOR)
    task: dict[str, Any] = {
        "name": task_id,
        "task_id": {"value": task_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "executor": {
            "executor_id": {"value": "echo-ex"},
            "framework_id": {"value": "fw-1"},
            "command": {"value": f"{PYTHON} {script}"},
            "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}],
        },
    }
    if data is not None:
        task["data"] = base64.b64encode(data.encode()).decode()
    return task


def test_pymesos_executor_runs_a_task(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    master.run_task(_task(tmp_path, "e1"))
    final = master.wait_state("e1", "TASK_FINISHED", timeout=30)
    assert master.states("e1") == ["TASK_RUNNING", "TASK_FINISHED"]
    assert final["data"] == "b2s="
    assert final["source"] == "SOURCE_EXECUTOR"
    assert final["executor_id"] == {"value": "echo-ex"}
    assert final["agent_id"] == {"value": master.agent_id}


def test_second_task_reuses_the_running_executor(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    master.run_task(_task(tmp_path, "e2"))
    master.wait_state("e2", "TASK_FINISHED", timeout=30)
    master.run_task(_task(tmp_path, "e3"))
    master.wait_state("e3", "TASK_FINISHED", timeout=30)
    executors = agent.state()["frameworks"][0]["executors"]
    assert [e["id"] for e in executors] == ["echo-ex"]
    assert executors[0]["type"] == "CUSTOM"


def test_messages_go_both_ways(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    master.run_task(_task(tmp_path, "e4", "wait"))
    master.wait_state("e4", "TASK_RUNNING", timeout=30)
    master.send(
        {
            "type": "FRAMEWORK_MESSAGE",
            "framework_message": {
                "framework_id": {"value": "fw-1"},
                "executor_id": {"value": "echo-ex"},
                "data": "aGk=",
            },
        }
    )
    msg = wait_for(lambda: master.calls_of("EXECUTOR_MESSAGE"), what="EXECUTOR_MESSAGE")[0]
    assert msg["executor_message"]["data"] == "ZWNobzpoaQ=="       # "echo:hi"
    assert msg["executor_message"]["executor_id"] == {"value": "echo-ex"}
    master.kill_task("e4")
    master.wait_state("e4", "TASK_KILLED")


def test_executor_exit_fails_its_tasks(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    master.run_task(_task(tmp_path, "e5", "crash"))
    failed = master.wait_state("e5", "TASK_FAILED", timeout=30)
    assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
    assert failed["source"] == "SOURCE_AGENT"
    exited = wait_for(lambda: master.calls_of("EXITED_EXECUTOR"), what="EXITED_EXECUTOR")[0]
    assert exited["exited_executor"]["executor_id"] == {"value": "echo-ex"}
    assert exited["exited_executor"]["status"] == 7 << 8


def test_shutdown_executor_stops_it(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    master.run_task(_task(tmp_path, "e6", "wait"))
    master.wait_state("e6", "TASK_RUNNING", timeout=30)
    master.send(
        {
            "type": "SHUTDOWN_EXECUTOR",
            "shutdown_executor": {"framework_id": {"value": "fw-1"}, "executor_id": {"value": "echo-ex"}},
        }
    )
    final = wait_for(
        lambda: [s for s in master.statuses("e6") if s["state"] in ("TASK_KILLED", "TASK_FAILED")],
        timeout=20,
        what="terminal update after shutdown",
    )[0]
    assert final["state"] == "TASK_KILLED"
    wait_for(lambda: master.calls_of("EXITED_EXECUTOR"), what="EXITED_EXECUTOR")


def test_executor_update_validation(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    import requests

    master.run_task(_task(tmp_path, "e7", "wait"))
    master.wait_state("e7", "TASK_RUNNING", timeout=30)

    def call(status: dict[str, Any], executor: str = "echo-ex") -> int:
        body = {
            "type": "UPDATE",
            "framework_id": {"value": "fw-1"},
            "executor_id": {"value": executor},
            "update": {"status": {"task_id": {"value": "e7"}, "state": "TASK_RUNNING", **status}},
        }
        return requests.post(agent.url + "/api/v1/executor", json=body, timeout=5).status_code

    good_uuid = "AAAAAAAAAAAAAAAAAAAAAA=="
    assert call({"uuid": "bm9wZQ=="}) == 400
    assert call({"uuid": good_uuid, "source": "SOURCE_MASTER"}) == 400
    assert call({"uuid": good_uuid, "state": "TASK_STAGING"}) == 400
    assert call({"uuid": good_uuid, "executor_id": {"value": "other"}}) == 400
    assert call({"uuid": good_uuid}, executor="unknown") == 403
    master.kill_task("e7")
    master.wait_state("e7", "TASK_KILLED")


def test_default_executor_runs_each_task_of_a_group(master: FakeMaster, agent: AgentProcess) -> None:
    tasks = [
        {
            "name": name,
            "task_id": {"value": name},
            "agent_id": {"value": master.agent_id},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
            "command": {"value": command},
        }
        for name, command in (("g1", "echo one > f"), ("g2", "exit 2"))
    ]
    master.send(
        {
            "type": "RUN_TASK_GROUP",
            "run_task_group": {
                "framework_info": framework_info(),
                "executor": {"executor_id": {"value": "group-ex"}, "type": "DEFAULT"},
                "task_group": {"tasks": tasks},
            },
        }
    )
    master.wait_state("g1", "TASK_FINISHED")
    failed = master.wait_state("g2", "TASK_FAILED")
    assert failed["executor_id"] == {"value": "group-ex"}
    box = next(agent.work_dir.glob("slaves/*/frameworks/fw-1/executors/group-ex/runs/latest"))
    assert (box / "tasks" / "g1" / "f").read_text() == "one\n"


def test_executor_resubscribes_after_agent_restart(master: FakeMaster, agent: AgentProcess, tmp_path: Path) -> None:
    fw = framework_info(checkpoint=True)
    master.send({"type": "RUN_TASK", "run_task": {"framework_info": fw, "task": _task(tmp_path, "r1", "wait")}})
    master.wait_state("r1", "TASK_RUNNING", timeout=30)
    agent.kill()
    agent.start()
    wait_for(lambda: len(master.registrations) >= 2, 30, "re-registration")
    assert [t["state"] for t in master.registrations[1]["tasks"]] == ["TASK_RUNNING"]

    def subscribed() -> bool:
        ex = agent.state()["frameworks"][0]["executors"][0]
        return ex["id"] == "echo-ex" and bool(ex["tasks"])

    wait_for(subscribed, what="executor known after restart")
    # The kill reaches the executor once it has re-subscribed; it answers TASK_KILLED itself.
    master.kill_task("r1")
    killed = master.wait_state("r1", "TASK_KILLED", timeout=30)
    assert killed["source"] == "SOURCE_EXECUTOR"


def test_executor_that_never_subscribes_is_killed(master: FakeMaster, tmp_path: Path) -> None:
    agent = AgentProcess(master, tmp_path / "slow-agent", "--executor-registration-timeout", "1")
    try:
        agent.start()
        wait_for(master.connected, what="stream")
        task = _task(tmp_path, "silent")
        task["executor"]["command"] = {"value": "sleep 1000"}
        master.run_task(task)
        failed = master.wait_state("silent", "TASK_FAILED", timeout=20)
        assert failed["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    finally:
        agent.cleanup()
