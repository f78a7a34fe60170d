"""End to end: a real master, real agents running real processes, and the unmodified
pymesos scheduler and executor drivers."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymesos import MesosSchedulerDriver, decode_data, encode_data

from tests.integration.agent.agent_harness import PYTHON, AgentProcess
from tests.integration.master.simcluster import MasterProcess, wait_for
from tests.integration.master.test_scheduler_api import Recorder, command_task

FAST = ("--allocation-interval", "0.1", "--agent-ping-timeout", "0.5", "--max-agent-ping-timeouts", "4")


class Cluster:
    def __init__(self, tmp: Path) -> None:
        (tmp / "master").mkdir()
        self.master = MasterProcess(tmp / "master", *FAST).start()
        self.agents: list[AgentProcess] = []
        self.tmp = tmp

    def add_agent(self, resources: str = "cpus:1;mem:1024;disk:1024;ports:[31000-31100]") -> AgentProcess:
        i = len(self.agents)
        a = AgentProcess(self.master, self.tmp / f"agent{i}", "--resources", resources,  # type: ignore[arg-type]
                         "--executor-shutdown-grace-period", "0.5")
        a.extra = [x for x in a.extra]
        self.agents.append(a)
        a.start()
        wait_for(lambda: len(self.master.get("/master/slaves")["slaves"]) >= i + 1, 20, "agent registration")
        return a

    def close(self) -> None:
        for a in self.agents:
            a.cleanup()
        self.master.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def driver_for(sched: Recorder, cluster: Cluster, **framework: Any) -> MesosSchedulerDriver:
    info = {"user": "root", "name": "e2e", "failover_timeout": 60, **framework}
    d = MesosSchedulerDriver(sched, info, cluster.master.addr, use_addict=False)
    d.start()
    wait_for(lambda: sched.registered_id, 10, "registration")
    return d


def test_twenty_command_tasks_across_two_agents_finish(cluster: Cluster) -> None:
    cluster.add_agent()
    cluster.add_agent()
    sched = Recorder()
    sched.to_launch = [command_task(f"echo-{i}", f"echo hello-{i}") for i in range(20)]
    d = driver_for(sched, cluster)
    try:
        wait_for(lambda: all("TASK_FINISHED" in sched.states(f"echo-{i}") for i in range(20)), 60, "20 finished")
        finished = [u for u in sched.updates if u["state"] == "TASK_FINISHED"]
        assert all(u["message"] == "Command exited with status 0" for u in finished)
        assert all(u["source"] == "SOURCE_EXECUTOR" and u["uuid"] and u["agent_id"] for u in finished)
        assert len({u["agent_id"]["value"] for u in finished}) == 2
        state = wait_for(lambda: (s := cluster.master.get("/master/state"))["frameworks"]
                         and len(s["frameworks"][0]["completed_tasks"]) == 20 and s, 20, "acknowledged")
        assert cluster.master.get("/metrics/snapshot")["master/tasks_finished"] == 20
        # The sandbox holds the task's output.
        task = state["frameworks"][0]["completed_tasks"][0]
        agent = next(a for a in cluster.agents if a.state()["id"] == task["slave_id"])
        ex = next(e for f in agent.state()["completed_frameworks"] + agent.state()["frameworks"]
              for e in f["completed_executors"] + f["executors"] if e["id"] == task["id"])
        out = agent.get("/files/read", path=ex["directory"] + "/stdout", offset=0).json()
        assert out["data"] == f"hello-{task['id'].split('-')[1]}\n"
    finally:
        d.stop()


def test_exit_code_and_kill(cluster: Cluster) -> None:
    cluster.add_agent()
    sched = Recorder()
    sched.to_launch = [command_task("fails", "exit 3"), command_task("sleeps", "sleep 1000")]
    d = driver_for(sched, cluster)
    try:
        wait_for(lambda: "TASK_FAILED" in sched.states("fails"), 30, "failure")
        failed = next(u for u in sched.updates if u["state"] == "TASK_FAILED")
        assert failed["message"] == "Command exited with status 3"
        wait_for(lambda: "TASK_RUNNING" in sched.states("sleeps"), 30, "sleep running")
        d.killTask({"value": "sleeps"})
        wait_for(lambda: "TASK_KILLED" in sched.states("sleeps"), 30, "killed")
        d.reconcileTasks([{"task_id": {"value": "sleeps"}}])
        wait_for(lambda: sched.states("sleeps")[-1] == "TASK_KILLED"
                 and sched.updates[-1].get("reason") == "REASON_RECONCILIATION", 10, "reconciled")
    finally:
        d.stop()


def test_agent_restart_keeps_running_task(cluster: Cluster) -> None:
    agent = cluster.add_agent()
    sched = Recorder()
    sched.to_launch = [command_task("survivor", "sleep 1000")]
    d = driver_for(sched, cluster)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("survivor"), 30, "running")
        agent_id = agent.state()["id"]
        agent.kill()  # kill -9: the task keeps running in its own session
        agent.start()
        wait_for(lambda: agent.state()["id"] == agent_id, 20, "same agent id")
        wait_for(lambda: any(s["id"] == agent_id and s["active"] for s in cluster.master.get("/master/slaves")["slaves"]),
                 20, "re-registered")
        tasks = cluster.master.get("/master/tasks")["tasks"]
        assert [(t["id"], t["state"]) for t in tasks] == [("survivor", "TASK_RUNNING")]
        n = len(sched.updates)
        d.reconcileTasks([])
        wait_for(lambda: len(sched.updates) > n, 10, "reconcile answer")
        assert sched.updates[n]["state"] == "TASK_RUNNING"
        d.killTask({"value": "survivor"})
        wait_for(lambda: "TASK_KILLED" in sched.states("survivor"), 30, "killed after restart")
    finally:
        d.stop()


def test_agent_killed_for_good_loses_its_tasks(cluster: Cluster) -> None:
    agent = cluster.add_agent()
    sched = Recorder()
    sched.to_launch = [command_task("orphan", "sleep 1000")]
    d = driver_for(sched, cluster)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("orphan"), 30, "running")
        agent.kill()
        # 4 pings of 0.5 s: lost within a few seconds.
        wait_for(lambda: "TASK_LOST" in sched.states("orphan"), 15, "task lost")
        lost = next(u for u in sched.updates if u["state"] == "TASK_LOST")
        assert lost["reason"] == "REASON_AGENT_REMOVED"
    finally:
        d.stop()


EXECUTOR = textwrap.dedent(
    """
    import threading, time
    from pymesos import MesosExecutorDriver, Executor, encode_data, decode_data

    class Echo(Executor):
        def launchTask(self, driver, task):
            driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_RUNNING"})

        def frameworkMessage(self, driver, message):
            driver.sendFrameworkMessage(encode_data(b"echo:" + decode_data(message)))
            driver.sendStatusUpdate({"task_id": {"value": "custom"}, "state": "TASK_FINISHED",
                                     "data": encode_data(b"ok")})

    MesosExecutorDriver(Echo()).run()
    """
)


class MessageRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[bytes] = []

    def frameworkMessage(self, driver: Any, executor_id: Any, agent_id: Any, data: str) -> None:
        self.messages.append(decode_data(data))


def test_pymesos_custom_executor_through_the_master(cluster: Cluster, tmp_path: Path) -> None:
    cluster.add_agent()
    script = tmp_path / "executor.py"
    script.write_text(EXECUTOR)
    sched = MessageRecorder()
    sched.to_launch = [{
        "name": "custom",
        "task_id": {"value": "custom"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        "executor": {"executor_id": {"value": "echo"}, "command": {"value": f"{PYTHON} {script}"}},
    }]
    d = driver_for(sched, cluster)
    try:
        running = wait_for(lambda: [u for u in sched.updates if u["state"] == "TASK_RUNNING"], 30, "executor RUNNING")
        agent_id = running[0]["agent_id"]
        d.sendFrameworkMessage({"value": "echo"}, agent_id, encode_data(b"ping"))
        wait_for(lambda: sched.messages == [b"echo:ping"], 20, "message round trip")
        finished = wait_for(lambda: [u for u in sched.updates if u["state"] == "TASK_FINISHED"], 20, "FINISHED")
        assert decode_data(finished[0]["data"]) == b"ok"
        assert base64.b64decode(finished[0]["uuid"])
    finally:
        d.stop()
    # TEARDOWN shuts the executor down; the agent survives its killpg.
    wait_for(lambda: cluster.master.get("/master/frameworks")["completed_frameworks"], 10, "teardown")
    assert cluster.agents[0].proc is not None and cluster.agents[0].proc.poll() is None


@pytest.mark.parametrize("partition_aware", [True, False])
def test_partitioned_agent_comes_back(cluster: Cluster, partition_aware: bool) -> None:
    import signal

    agent = cluster.add_agent()
    sched = Recorder()
    sched.to_launch = [command_task("partitioned", "sleep 1000")]
    caps = [{"type": "PARTITION_AWARE"}] if partition_aware else []
    d = driver_for(sched, cluster, capabilities=caps)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("partitioned"), 30, "running")
        agent.signal(signal.SIGSTOP)  # the agent stops answering pings; its task runs on
        try:
            gone = "TASK_UNREACHABLE" if partition_aware else "TASK_LOST"
            wait_for(lambda: gone in sched.states("partitioned"), 15, gone)
        finally:
            agent.signal(signal.SIGCONT)
        if partition_aware:
            # It re-registers with the task, which is RUNNING again.
            wait_for(lambda: sched.states("partitioned")[-1] == "TASK_RUNNING" or
                     [t["state"] for t in cluster.master.get("/master/tasks")["tasks"]] == ["TASK_RUNNING"],
                     20, "task running again")
            d.reconcileTasks([])
            wait_for(lambda: sched.states("partitioned")[-1] == "TASK_RUNNING", 10, "reconciled RUNNING")
        else:
            # Mesos kills tasks the framework was told are lost.
            wait_for(lambda: any(s["id"] == agent.state()["id"] and s["active"]
                                 for s in cluster.master.get("/master/slaves")["slaves"]), 20, "re-registered")
            wait_for(lambda: not [t for f in agent.state()["frameworks"] for e in f["executors"]
                                  for t in e["tasks"] if t["state"] == "TASK_RUNNING"], 20, "task killed on agent")
    finally:
        d.stop()
