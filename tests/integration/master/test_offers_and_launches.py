"""Offers, reservations, LAUNCH_GROUP, invalid launches, offer timeouts and the operator
API, through pymesos against a real master and simulated agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymesos import MesosOperatorMasterDriver, OperatorMaster

from tests.integration.master.simcluster import MasterProcess, SimAgents, wait_for
from tests.integration.master.test_scheduler_api import FAST, Recorder, command_task, start_driver


@pytest.fixture
def master(tmp_path: Path) -> Iterator[MasterProcess]:
    (tmp_path / "m").mkdir()
    m = MasterProcess(tmp_path / "m", *FAST, "--offer-timeout", "0.5", "--weights", "ops=2").start()
    yield m
    m.stop()


@pytest.fixture
def sims(master: MasterProcess) -> Iterator[SimAgents]:
    s = SimAgents(master.addr)
    yield s
    s.close()


class Holder(Recorder):
    """Keeps offers without answering them, and records rescinds."""

    def __init__(self) -> None:
        super().__init__()
        self.rescinded: list[str] = []

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        with self.lock:
            self.offers += offers

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:
        self.rescinded.append(offer_id["value"])


def cpus(offer: dict[str, Any], role: str = "*") -> float:
    return sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus" and r.get("role", "*") == role)


def test_offer_timeout_rescinds(master: MasterProcess, sims: SimAgents) -> None:
    sims.add()
    sched = Holder()
    d = start_driver(sched, master)
    try:
        first = wait_for(lambda: sched.offers, 10, "offer")[0]
        wait_for(lambda: first["id"]["value"] in sched.rescinded, 10, "rescind after --offer-timeout")
        # The resources come back in a new offer.
        wait_for(lambda: len(sched.offers) > 1, 10, "re-offer")
    finally:
        d.stop()


def test_reserved_resources_go_only_to_their_role(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(resources="cpus:2;mem:1024;cpus(ops):3;mem(ops):512")
    star = Holder()
    d1 = start_driver(star, master, name="star")
    ops = Holder()
    d2 = start_driver(ops, master, name="ops", role="ops")
    try:
        wait_for(lambda: star.offers or ops.offers, 10, "an offer")
        # Whoever gets the agent first, the reserved cpus only ever reach the ops framework.
        wait_for(lambda: any(cpus(o, "ops") == 3 for o in ops.offers), 10, "ops offer with its reservation")
        assert all(cpus(o, "ops") == 0 for o in star.offers)
        state = master.get("/master/slaves")["slaves"][0]
        assert state["reserved_resources"]["ops"]["cpus"] == 3
        assert state["unreserved_resources"]["cpus"] == 2
    finally:
        d1.stop()
        d2.stop()


def test_invalid_launches(master: MasterProcess, sims: SimAgents) -> None:
    sims.add(resources="cpus:1;mem:256")
    sched = Holder()
    d = start_driver(sched, master)
    try:
        offer = wait_for(lambda: sched.offers, 10, "offer")[0]
        big = command_task("too-big")
        big["resources"][0]["scalar"]["value"] = 64
        neither = {"name": "x", "task_id": {"value": "neither"}, "resources": command_task("y")["resources"]}
        d.launchTasks(offer["id"], [dict(big, agent_id=offer["agent_id"]), dict(neither, agent_id=offer["agent_id"])])
        wait_for(lambda: sched.states("too-big") == ["TASK_ERROR"] and sched.states("neither") == ["TASK_ERROR"],
                 10, "TASK_ERROR for both")
        assert all(u["reason"] == "REASON_TASK_INVALID" for u in sched.updates)
        # The offer is used up: launching on it again is a stale offer.
        d.launchTasks(offer["id"], [dict(command_task("stale"), agent_id=offer["agent_id"])])
        wait_for(lambda: sched.states("stale") == ["TASK_LOST"], 10, "stale offer")
        stale = next(u for u in sched.updates if u["task_id"]["value"] == "stale")
        assert stale["reason"] == "REASON_INVALID_OFFERS" and "uuid" not in stale
    finally:
        d.stop()


def test_launch_group(master: MasterProcess, sims: SimAgents) -> None:
    sims.add()
    sched = Holder()
    d = start_driver(sched, master)
    try:
        offer = wait_for(lambda: sched.offers, 10, "offer")[0]
        tasks = [dict(command_task(f"g{i}"), agent_id=offer["agent_id"]) for i in range(2)]
        for t in tasks:
            del t["command"]
        executor = {"executor_id": {"value": "default"}, "type": "DEFAULT",
                    "resources": command_task("e")["resources"]}
        d.acceptOffers([offer["id"]], [{"type": "LAUNCH_GROUP", "launch_group": {
            "executor": executor, "task_group": {"tasks": tasks}}}])
        # The simulated agent does not run groups; the master's bookkeeping shows them.
        tasks_state = wait_for(lambda: master.get("/master/tasks")["tasks"], 10, "group tasks")
        assert sorted(t["id"] for t in tasks_state) == ["g0", "g1"]
        assert {t["executor_id"] for t in tasks_state} == {"default"}
        fw = master.get("/master/frameworks")["frameworks"][0]
        assert fw["used_resources"]["cpus"] == pytest.approx(0.3)
    finally:
        d.stop()


class Watcher(OperatorMaster):
    def __init__(self) -> None:
        self.added: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []

    def taskAdded(self, task_info: Any) -> None:
        self.added.append(task_info)

    def taskUpdated(self, task_info: Any) -> None:
        self.updated.append(task_info)


def test_pymesos_operator_driver(master: MasterProcess, sims: SimAgents) -> None:
    sims.add()
    watcher = Watcher()
    op = MesosOperatorMasterDriver(master.addr, watcher)
    op.start()
    sched = Recorder()
    sched.to_launch = [command_task("watched")]
    d = start_driver(sched, master)
    try:
        assert op.getHealth() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
        state = op.getState()["get_state"]
        assert len(state["get_agents"]["agents"]) == 1
        assert op.getAgents()["get_agents"]["agents"][0]["agent_info"]["hostname"] == "sim0"
        wait_for(lambda: "TASK_FINISHED" in sched.states("watched"), 10, "task finished")
        wait_for(lambda: [t["task_id"]["value"] for t in watcher.added] == ["watched"], 10, "taskAdded")
        wait_for(lambda: {u["state"] for u in watcher.updated} >= {"TASK_RUNNING", "TASK_FINISHED"}, 10,
                 "taskUpdated")
        tasks = op.getTasks()["get_tasks"]
        assert [t["task_id"]["value"] for t in tasks["tasks"] + tasks["completed_tasks"]] == ["watched"]
    finally:
        d.stop()
        op.stop()


def test_weights_show_in_roles(master: MasterProcess) -> None:
    import requests

    r = requests.post(master.url + "/api/v1", json={"type": "GET_ROLES"}, timeout=5)
    assert {"name": "ops", "weight": 2.0} in r.json()["get_roles"]["roles"]
