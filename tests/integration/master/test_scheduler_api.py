"""The v1 scheduler API driven by the unmodified pymesos client, against a real master
process and simulated agents."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pymesos import MesosSchedulerDriver, Scheduler

from tests.integration.master.simcluster import MasterProcess, SimAgents, wait_for

FAST = ("--allocation-interval", "0.1", "--agent-ping-timeout", "0.3", "--max-agent-ping-timeouts", "3")


class Recorder(Scheduler):
    """Records every callback; launches what `plan` says on offers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offers: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.registered_id: str | None = None
        self.rereg_count = 0
        self.lost_agents: list[str] = []
        self.errors: list[str] = []
        self.to_launch: list[dict[str, Any]] = []
        self.decline_seconds: float | None = None

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.registered_id = framework_id["value"]

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.rereg_count += 1

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        with self.lock:
            self.offers += offers
            for offer in offers:
                cpus = sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus")
                batch = []
                while self.to_launch and cpus >= 0.1 - 1e-9:
                    task = dict(self.to_launch.pop(0))
                    task["agent_id"] = offer["agent_id"]
                    batch.append(task)
                    cpus -= 0.1
                if batch:
                    driver.launchTasks(offer["id"], batch)
                elif self.decline_seconds is not None:
                    driver.declineOffer(offer["id"], {"refuse_seconds": self.decline_seconds})

    def statusUpdate(self, driver: Any, update: dict[str, Any]) -> None:
        with self.lock:
            self.updates.append(update)

    def slaveLost(self, driver: Any, agent_id: Any) -> None:
        self.lost_agents.append(agent_id["value"])

    def error(self, driver: Any, message: str) -> None:
        self.errors.append(message)

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]


def command_task(task_id: str, cmd: str = "echo hi") -> dict[str, Any]:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
        "command": {"value": cmd},
    }


@pytest.fixture
def master(tmp_path: Path) -> Iterator[MasterProcess]:
    m = MasterProcess(tmp_path / "master", *FAST)
    (tmp_path / "master").mkdir()
    m.start()
    yield m
    m.stop()


@pytest.fixture
def sims(master: MasterProcess) -> Iterator[SimAgents]:
    s = SimAgents(master.addr)
    yield s
    s.close()


def start_driver(sched: Recorder, master: MasterProcess, **framework: Any) -> MesosSchedulerDriver:
    info = {"user": "root", "name": "test", "failover_timeout": 60, **framework}
    driver = MesosSchedulerDriver(sched, info, master.addr, use_addict=False)
    driver.start()
    wait_for(lambda: sched.registered_id, 10, "framework registration")
    return driver


def test_pymesos_tasks_run_to_finished_and_show_in_state(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(resources="cpus:1;mem:4096")  # ten tasks each: the twenty need both agents
    sims.add(resources="cpus:1;mem:4096")
    sched = Recorder()
    sched.to_launch = [command_task(f"t{i}") for i in range(20)]
    driver = start_driver(sched, master)
    try:
        wait_for(lambda: all("TASK_FINISHED" in sched.states(f"t{i}") for i in range(20)), 20, "20 tasks finished")
        for u in sched.updates:
            assert u["agent_id"]["value"] and u["uuid"]
        state = wait_for(lambda: (s := master.get("/master/state"))["frameworks"]
                         and len(s["frameworks"][0]["completed_tasks"]) == 20 and s, 10, "acks")
        assert {t["state"] for t in state["frameworks"][0]["completed_tasks"]} == {"TASK_FINISHED"}
        agents = {t["slave_id"] for t in state["frameworks"][0]["completed_tasks"]}
        assert len(agents) == 2
        assert master.get("/metrics/snapshot")["master/tasks_finished"] == 20
        assert sched.errors == []
    finally:
        driver.stop()


def test_reconcile_known_and_unknown_tasks(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(finish=False)
    sched = Recorder()
    sched.to_launch = [command_task("long")]
    driver = start_driver(sched, master)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("long"), 10, "task running")
        n = len(sched.updates)
        driver.reconcileTasks([])
        wait_for(lambda: len(sched.updates) > n, 10, "implicit reconciliation")
        rec = sched.updates[n]
        assert rec["reason"] == "REASON_RECONCILIATION" and "uuid" not in rec
        assert rec["state"] == "TASK_RUNNING" and rec["source"] == "SOURCE_MASTER"
        driver.reconcileTasks([{"task_id": {"value": "nope"}}])
        wait_for(lambda: sched.states("nope") == ["TASK_LOST"], 10, "unknown task lost")
    finally:
        driver.stop()


def test_kill_running_task_and_unknown_task(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(finish=False)
    sched = Recorder()
    sched.to_launch = [command_task("victim")]
    driver = start_driver(sched, master)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("victim"), 10, "task running")
        driver.killTask({"value": "victim"})
        wait_for(lambda: "TASK_KILLED" in sched.states("victim"), 10, "task killed")
        driver.killTask({"value": "ghost"})
        wait_for(lambda: sched.states("ghost") == ["TASK_LOST"], 10, "kill of unknown task")
    finally:
        driver.stop()


def test_decline_filter_holds_until_revive(master: MasterProcess, sims: SimAgents) -> None:
    sims.add()
    sched = Recorder()
    sched.decline_seconds = 3600
    driver = start_driver(sched, master)
    try:
        wait_for(lambda: sched.offers, 10, "first offer")
        count = len(sched.offers)
        # Ten allocation cycles pass: a declined agent stays filtered.
        wait_for(lambda: master.get("/metrics/snapshot")["master/uptime_secs"] > 0, 1)
        deadline_state = [master.get("/metrics/snapshot") for _ in range(5)]
        assert all(s["master/outstanding_offers"] == 0 for s in deadline_state)
        assert len(sched.offers) == count
        sched.decline_seconds = None
        driver.reviveOffers()
        wait_for(lambda: len(sched.offers) > count, 10, "offer after revive")
    finally:
        driver.stop()


def test_suppress_stops_offers(master: MasterProcess, sims: SimAgents) -> None:
    sched = Recorder()
    sched.decline_seconds = 0.0
    driver = start_driver(sched, master)
    try:
        driver.suppressOffers()
        wait_for(lambda: master.get("/master/frameworks")["frameworks"], 5)
        sims.add()
        assert master.get("/metrics/snapshot")["master/outstanding_offers"] == 0
        assert sched.offers == []
        driver.reviveOffers()
        wait_for(lambda: sched.offers, 10, "offer after revive")
    finally:
        driver.stop()


def test_failover_resubscribe_keeps_tasks(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(finish=False)
    sched = Recorder()
    sched.to_launch = [command_task("keep")]
    driver = start_driver(sched, master)
    wait_for(lambda: "TASK_RUNNING" in sched.states("keep"), 10, "task running")
    fid = sched.registered_id
    driver.stop(failover=True)
    driver.join()
    wait_for(lambda: not master.get("/master/frameworks")["frameworks"][0]["connected"], 10, "disconnect")
    sched2 = Recorder()
    driver2 = MesosSchedulerDriver(sched2, {"user": "root", "name": "test", "id": {"value": fid},
                                            "failover_timeout": 60}, master.addr, use_addict=False)
    driver2.start()
    try:
        wait_for(lambda: sched2.rereg_count or sched2.registered_id, 10, "resubscribe")
        fws = master.get("/master/frameworks")["frameworks"]
        assert [f["id"] for f in fws] == [fid]
        assert [t["id"] for t in fws[0]["tasks"]] == ["keep"]
        assert fws[0]["connected"]
    finally:
        driver2.stop()


def test_failover_timeout_kills_tasks(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(finish=False)
    sched = Recorder()
    sched.to_launch = [command_task("doomed")]
    driver = start_driver(sched, master, failover_timeout=0.5)
    wait_for(lambda: "TASK_RUNNING" in sched.states("doomed"), 10, "task running")
    driver.stop(failover=True)
    driver.join()
    state = wait_for(lambda: (s := master.get("/master/state"))["completed_frameworks"] and s, 10, "removal")
    assert state["frameworks"] == []
    assert state["completed_frameworks"][0]["completed_tasks"][0]["state"] == "TASK_KILLED"
    wait_for(lambda: sims.agents[0].tasks.get("doomed") == "TASK_KILLED", 10, "agent told to kill")


def test_unreachable_agent_loses_tasks(master: MasterProcess, sims: SimAgents) -> None:
    agent = sims.add(finish=False)
    sched = Recorder()
    sched.to_launch = [command_task("stranded")]
    driver = start_driver(sched, master)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("stranded"), 10, "task running")
        sims.stop_agent(agent)
        wait_for(lambda: "TASK_LOST" in sched.states("stranded"), 10, "task lost")
        lost = next(u for u in sched.updates if u["state"] == "TASK_LOST")
        assert lost["reason"] == "REASON_AGENT_REMOVED"
        wait_for(lambda: sched.lost_agents == [agent.agent_id], 10, "slaveLost")
        assert master.get("/metrics/snapshot")["master/slaves_unreachable"] == 1
    finally:
        driver.stop()


def test_unreachable_agent_tasks_unreachable_for_partition_aware(master: MasterProcess, sims: SimAgents) -> None:
    agent = sims.add(finish=False)
    sched = Recorder()
    sched.to_launch = [command_task("pa")]
    driver = start_driver(sched, master, capabilities=[{"type": "PARTITION_AWARE"}])
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("pa"), 10, "task running")
        sims.stop_agent(agent)
        wait_for(lambda: "TASK_UNREACHABLE" in sched.states("pa"), 10, "task unreachable")
        fw = master.get("/master/frameworks")["frameworks"][0]
        assert [t["id"] for t in fw["unreachable_tasks"]] == ["pa"]
    finally:
        driver.stop()


def test_teardown_removes_framework(master: MasterProcess, sims: SimAgents) -> None:
    sched = Recorder()
    driver = start_driver(sched, master)
    driver.stop()
    driver.join()
    wait_for(lambda: master.get("/master/frameworks")["completed_frameworks"], 10, "framework completed")
    assert master.get("/master/frameworks")["frameworks"] == []


def test_master_restart_recovers_registry(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    m = MasterProcess(tmp_path / "m", *FAST).start()
    sims = SimAgents(m.addr)
    try:
        agent = sims.add()
        sched = Recorder()
        driver = start_driver(sched, m)
        fid = sched.registered_id
        driver.stop(failover=True)
        driver.join()
        port = m.port
        m.stop(sig=9)
        m2 = MasterProcess(tmp_path / "m", *FAST, port=port).start()
        try:
            state = m2.get("/master/state")
            assert [f["id"] for f in state["frameworks"]] == [fid]
            # The agent re-registers on its own under the id the registry kept.
            wait_for(lambda: [s["id"] for s in m2.get("/master/slaves")["slaves"]] == [agent.agent_id],
                     10, "agent re-registration")
            assert m2.get("/master/slaves")["recovered_slaves"] == []
            sched2 = Recorder()
            d2 = MesosSchedulerDriver(sched2, {"user": "root", "name": "test", "id": {"value": fid},
                                               "failover_timeout": 60}, m2.addr, use_addict=False)
            d2.start()
            wait_for(lambda: sched2.registered_id or sched2.reregistered, 10, "resubscribe after restart")
            d2.stop()
        finally:
            m2.stop()
    finally:
        sims.close()
        if m.proc is not None:
            m.stop()


# ---------------------------------------------------------------- raw HTTP errors


def post(master: MasterProcess, body: Any, headers: dict[str, str] | None = None, raw: str | None = None,
         path: str = "/api/v1/scheduler") -> requests.Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else __import__("json").dumps(body)
    return requests.post(master.url + path, data=data, headers=h, timeout=5)


def test_scheduler_api_rejects_bad_requests_with_mesos_codes(master: MasterProcess) -> None:
    assert requests.get(master.url + "/api/v1/scheduler", timeout=5).status_code == 405
    r = requests.post(master.url + "/api/v1/scheduler", data="{}", headers={"Content-Type": "text/plain"}, timeout=5)
    assert r.status_code == 415
    assert post(master, None, raw="{nope").status_code == 400
    r = post(master, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}})
    assert r.status_code == 400 and "user" in r.text
    fid = {"value": str(uuid.uuid4())}
    r = post(master, {"type": "DECLINE", "framework_id": fid, "decline": {"offer_ids": []}},
             headers={"Mesos-Stream-Id": "x"})
    assert r.status_code == 400 and "cannot be found" in r.text
    r = post(master, {"type": "BOGUS"})
    assert r.status_code == 400
    r = post(master, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}},
             headers={"Accept": "text/html"})
    assert r.status_code == 406


def test_calls_need_the_stream_id(master: MasterProcess) -> None:
    sched = Recorder()
    driver = start_driver(sched, master)
    try:
        fid = {"value": sched.registered_id}
        r = post(master, {"type": "REVIVE", "framework_id": fid})
        assert r.status_code == 400 and "Mesos-Stream-Id" in r.text
        r = post(master, {"type": "REVIVE", "framework_id": fid}, headers={"Mesos-Stream-Id": "wrong"})
        assert r.status_code == 400 and "stream ID" in r.text
        r = post(master, {"type": "ACKNOWLEDGE", "framework_id": fid, "acknowledge": {
            "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "not-base64!"}},
            headers={"Mesos-Stream-Id": driver.stream_id})
        assert r.status_code == 400 and "uuid" in r.text
    finally:
        driver.stop()


def test_version_health_redirect_and_operator(master: MasterProcess) -> None:
    v = master.get("/version")
    assert v["version"] == "1.11.0" and "lichen_version" in v
    assert requests.get(master.url + "/health", timeout=5).status_code == 200
    r = requests.get(master.url + "/master/redirect", allow_redirects=False, timeout=5)
    assert r.status_code == 307 and r.headers["Location"].startswith("//")
    for path in ("/api/v1", "/api/v1/operator"):
        r = post(master, {"type": "GET_HEALTH"}, path=path)
        assert r.json() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
    r = post(master, {"type": "GET_STATE"}, path="/api/v1")
    assert set(r.json()["get_state"]) == {"get_tasks", "get_executors", "get_frameworks", "get_agents"}
    assert post(master, {"type": "NOPE"}, path="/api/v1").status_code == 400
    assert "mesos_master_elected 1.0" in requests.get(master.url + "/metrics", timeout=5).text
    for path in ("/state", "/state.json", "/master/state.json", "/master/state-summary",
                 "/master/slaves", "/master/frameworks", "/master/tasks"):
        assert requests.get(master.url + path, timeout=5).status_code == 200, path


def test_completed_history_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    m = MasterProcess(tmp_path / "m", *FAST, "--max-completed-tasks-per-framework", "5",
                      "--max-completed-frameworks", "2").start()
    sims = SimAgents(m.addr)
    try:
        sims.add()
        for round_ in range(3):
            sched = Recorder()
            sched.to_launch = [command_task(f"r{round_}-{i}") for i in range(8)]
            d = start_driver(sched, m)
            wait_for(lambda s=sched, r=round_: all("TASK_FINISHED" in s.states(f"r{r}-{i}") for i in range(8)),
                     10, "tasks")
            wait_for(lambda: len(m.get("/master/frameworks")["frameworks"][0]["completed_tasks"]) == 5, 10,
                     "five completed tasks kept")
            d.stop()
            d.join()
            wait_for(lambda: m.get("/master/frameworks")["frameworks"] == [], 10, "teardown")
        assert len(m.get("/master/frameworks")["completed_frameworks"]) == 2
    finally:
        sims.close()
        m.stop()
