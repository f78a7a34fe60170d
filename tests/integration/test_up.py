"""`lichen up` as a user runs it: a real process tree, a real framework, nothing left behind."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from pymesos import MesosSchedulerDriver, Scheduler

from lichen.cli.up import kill_tasks, task_processes
from tests.support import http_get_json, read_addr, wait_for

AGENT_RESOURCES = "cpus:1;mem:512;disk:512"


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    work_dir: Path
    out_path: Path

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def master_url(self) -> str:
        addr = read_addr(self.work_dir / "master" / "master.addr")
        assert addr is not None
        return f"http://{addr}"

    def family(self) -> set[int]:
        """Pids of `up`, its daemons and its tasks, alive now."""
        pids = {self.proc.pid}
        pids |= {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        pids |= {p.pid for p in task_processes(self.work_dir)}
        return pids

    def stop(self, timeout: float = 45.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    work_dir = tmp_path / "up"
    out_path = tmp_path / "up.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from lichen.cli.main import main; main()", "up",
             "--work-dir", str(work_dir), "--master-port", "0", "--marathon-port", "0", "--chronos-port", "0",
             "--agents", "2",
             "--agent-resources", AGENT_RESOURCES],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    running = Up(proc, work_dir, out_path)
    try:
        wait_for(lambda: "lichen is ready" in running.output or proc.poll() is not None, 60,
                 "lichen up to say it is ready")
        assert proc.poll() is None, f"lichen up exited early:\n{running.output}"
        yield running
    finally:
        _kill_tree(proc)
        kill_tasks(work_dir, grace=0.5)


def test_up_prints_a_url_per_component_and_registers_both_agents(up: Up) -> None:
    lines = up.output.splitlines()
    assert lines[-1] == "lichen is ready"
    names = [line.split()[0] for line in lines if "http://" in line]
    assert names == ["master", "agent-1", "agent-2", "marathon", "chronos"]
    master_line = next(line for line in lines if line.startswith("master "))
    assert master_line.split()[1] == up.master_url
    wait_for(
        lambda: len(http_get_json(up.master_url + "/master/slaves")["slaves"]) == 2,
        20, "two agents in /master/slaves",
    )
    slaves = http_get_json(up.master_url + "/master/slaves")["slaves"]
    ports = sorted(s["resources"]["ports"] for s in slaves)
    assert ports == ["[30000-30999]", "[31000-31999]"]


def test_sigterm_stops_daemons_and_the_tasks_they_left_running(up: Up) -> None:
    scheduler = _SleepEverywhere(tasks=2)
    driver = MesosSchedulerDriver(
        scheduler, {"user": "root", "name": "up-test", "failover_timeout": 3600.0}, up.master_url.removeprefix("http://"),
        use_addict=False,
    )
    driver.start()
    try:
        wait_for(lambda: scheduler.running() == 2, 60, "both sleep tasks to be TASK_RUNNING")
        wait_for(lambda: len(task_processes(up.work_dir)) >= 2, 10, "the task processes to show up")
        sleepers = task_processes(up.work_dir)
    finally:
        driver.stop(True)    # failover: the master keeps the framework and its tasks
        driver.join()
    assert all(_alive(p.pid) for p in sleepers)
    family = up.family() | {p.pid for p in sleepers}

    assert up.stop() == 0
    assert "lichen stopped" in up.output
    left = [pid for pid in family if _alive(pid)]
    assert left == [], f"processes left behind: {[_describe(pid) for pid in left]}"


def test_marathon_runs_apps_and_sigterm_stops_their_tasks(up: Up) -> None:
    marathon_url = next(line.split()[1] for line in up.output.splitlines() if line.startswith("marathon "))
    r = requests.post(marathon_url + "/v2/apps", json={"id": "/sleepy", "cmd": "sleep 600", "cpus": 0.1,
                                                       "mem": 16, "instances": 2}, timeout=10)
    assert r.status_code == 201, r.text
    wait_for(lambda: http_get_json(marathon_url + "/v2/apps/sleepy")["app"]["tasksRunning"] == 2, 60,
             "two Marathon tasks running")
    family = up.family()
    assert up.stop() == 0
    left = [pid for pid in family if _alive(pid)]
    assert left == [], f"processes left behind: {[_describe(pid) for pid in left]}"


def test_a_dead_agent_is_restarted(up: Up) -> None:
    agent_addr = read_addr(up.work_dir / "agent-1" / "agent.addr")
    agent = next(
        p for p in psutil.Process(up.proc.pid).children()
        if "agent-1" in " ".join(p.cmdline())
    )
    agent.kill()
    wait_for(lambda: "agent-1 is back at" in up.output, 30, "lichen up to restart agent-1")
    new_addr = wait_for(lambda: read_addr(up.work_dir / "agent-1" / "agent.addr"), 10, "agent-1's addr")
    assert new_addr != agent_addr or agent.pid not in {p.pid for p in psutil.Process(up.proc.pid).children()}
    wait_for(
        lambda: len(http_get_json(up.master_url + "/master/slaves")["slaves"]) == 2,
        20, "agent-1 back among two registered agents",
    )


class _SleepEverywhere(Scheduler):  # type: ignore[misc]
    """Launches `sleep 600` tasks, one per offer, until it has launched `tasks`."""

    def __init__(self, tasks: int) -> None:
        self.lock = threading.Lock()
        self.to_launch = tasks
        self.states: dict[str, str] = {}

    def resourceOffers(self, driver: Any, offers: list[dict[str, Any]]) -> None:
        with self.lock:
            for offer in offers:
                if self.to_launch == 0:
                    driver.declineOffer(offer["id"])
                    continue
                self.to_launch -= 1
                task_id = f"sleep-{self.to_launch}"
                driver.launchTasks(offer["id"], [{
                    "name": task_id,
                    "task_id": {"value": task_id},
                    "agent_id": offer["agent_id"],
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                    ],
                    "command": {"value": "sleep 600"},
                }])

    def statusUpdate(self, driver: Any, update: dict[str, Any]) -> None:
        with self.lock:
            self.states[update["task_id"]["value"]] = update["state"]

    def running(self) -> int:
        with self.lock:
            return sum(state == "TASK_RUNNING" for state in self.states.values())


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _describe(pid: int) -> str:
    try:
        return f"{pid} {' '.join(psutil.Process(pid).cmdline())}"
    except psutil.Error:
        return str(pid)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """The fixture's safety net: whatever the test did, `up` and its children go."""
    if proc.poll() is None:
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            proc.kill()
            proc.wait()
