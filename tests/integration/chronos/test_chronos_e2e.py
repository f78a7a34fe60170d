"""`lichen chronos` end to end with chronos-python: schedules that really run, dependencies,
retries, manual runs, deletes, and a kill -9 of the scheduler."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import chronos
import pytest
import requests

from tests.support import Daemon, wait_for
from tests.support.daemons import start_daemon

FAR = "R/2099-01-01T00:00:00Z/P1D"


class ChronosStack:
    def __init__(self, master: Daemon, chronos_daemon: Daemon, daemons: Any) -> None:
        self.master = master
        self.daemon = chronos_daemon
        self.daemons = daemons
        self.client = chronos.connect(chronos_daemon.addr)

    def job(self, name: str) -> dict[str, Any]:
        return next(j for j in self.client.list() if j["name"] == name)

    def restart(self, *, kill: bool = True) -> None:
        os.kill(self.daemon.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        self.daemon.proc.wait(10)
        work = self.daemon.work_dir
        self.daemon = self.daemons.add(start_daemon("chronos", work, [
            "--master", self.master.addr, "--port", str(self.daemon.port), "--work-dir", str(work),
            "--failure-retry", "0.5"]))
        self.client = chronos.connect(self.daemon.addr)


@pytest.fixture
def stack(tmp_path: Path, start_master: Callable[..., Daemon], start_agent: Callable[..., Daemon],
          daemons: Any) -> Iterator[ChronosStack]:
    master = start_master(tmp_path, "--allocation-interval", "0.1")
    start_agent(master.addr, tmp_path)
    wait_for(lambda: len(requests.get(master.url + "/master/slaves", timeout=5).json()["slaves"]) == 1, 20,
             "agent")
    work = tmp_path / "chronos"
    d = daemons.add(start_daemon("chronos", work, [
        "--master", master.addr, "--port", "0", "--work-dir", str(work), "--failure-retry", "0.5"]))
    yield ChronosStack(master, d, daemons)


def job(name: str, command: str = "true", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "command": command, "owner": "", "disabled": False}
    if "parents" not in fields:
        out["schedule"] = FAR
    out.update(fields)
    return out


def test_scheduled_runs_ids_and_environment(stack: ChronosStack, tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    cmd = f'echo "$mesos_task_id $CHRONOS_JOB_NAME $CHRONOS_RESOURCE_MEM $CHRONOS_JOB_RUN_ATTEMPT" >> {out}'
    # concurrent: a slow machine may still run the first when the second falls due.
    stack.client.add(job("myjob", cmd, schedule="R2//PT2S", concurrent=True))
    wait_for(lambda: stack.job("myjob")["successCount"] == 2, 20, "two scheduled runs")
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        task_id, name, mem, attempt = line.split()
        assert re.fullmatch(r"ct:\d+:0:myjob:", task_id) and name == "myjob"
        assert (mem, attempt) == ("128.0", "0")
    got = stack.job("myjob")
    assert got["schedule"].startswith("R0/") and got["disabled"] is True


def test_every_two_seconds_runs_at_least_three_times(stack: ChronosStack) -> None:
    stack.client.add(job("tick", schedule="R//PT2S"))
    wait_for(lambda: stack.job("tick")["successCount"] >= 3, 30, "three runs")
    stat = stack.client.job_stat("tick")
    assert stat["histogram"]["count"] >= 3
    assert {r["status"] for r in stat["taskStatHistory"]} <= {"Success", "Running"}
    assert sum(r["status"] == "Success" for r in stat["taskStatHistory"]) >= 3


def test_manual_run_runs_once_and_delete_stops_the_schedule(stack: ChronosStack) -> None:
    stack.client.add(job("manual"))
    stack.client.run("manual")
    wait_for(lambda: stack.job("manual")["successCount"] == 1, 20, "one manual run")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stack.job("manual")["lastSuccess"])
    stack.client.add(job("gone", schedule="R//PT1S"))
    wait_for(lambda: stack.job("gone")["successCount"] >= 1, 20, "a scheduled run")
    stack.client.delete("gone")
    assert "gone" not in {j["name"] for j in stack.client.list()}
    before = len([t for t in requests.get(stack.master.url + "/master/tasks?limit=1000", timeout=5).json()["tasks"]
                  if ":gone:" in t["id"]])
    # A later scheduled job runs twice meanwhile; the deleted one never again.
    stack.client.add(job("witness", schedule="R2//PT1S", concurrent=True))
    wait_for(lambda: stack.job("witness")["successCount"] == 2, 20, "witness runs")
    after = len([t for t in requests.get(stack.master.url + "/master/tasks?limit=1000", timeout=5).json()["tasks"]
                 if ":gone:" in t["id"]])
    assert after == before
    with pytest.raises(chronos.ChronosAPIError):
        stack.client.delete("gone")


def test_dependent_job_runs_after_parents_succeed_not_after_failure(stack: ChronosStack) -> None:
    c = stack.client
    c.add(job("A"))
    c.add(job("B"))
    c.add(job("C", parents=["A", "B"]))
    c.run("A")
    wait_for(lambda: stack.job("A")["successCount"] == 1, 20, "A ran")
    assert stack.job("C")["successCount"] == 0
    c.run("B")
    wait_for(lambda: stack.job("C")["successCount"] == 1, 20, "C ran after both parents")
    c.run("A")
    wait_for(lambda: stack.job("A")["successCount"] == 2, 20, "A ran again")
    assert stack.job("C")["successCount"] == 0 + 1
    graph = c.scheduler_graph()
    assert "link,A,C" in graph and "link,B,C" in graph
    c.add(job("F", "exit 1", retries=0))
    c.add(job("G", parents=["F"]))
    c.run("F")
    wait_for(lambda: stack.job("F")["errorCount"] == 1, 20, "F failed")
    assert stack.job("G")["successCount"] == 0
    c.delete("B")
    assert stack.job("C")["parents"] == ["A"]


def test_failing_job_is_retried_exactly_retries_times(stack: ChronosStack, tmp_path: Path) -> None:
    out = tmp_path / "attempts.txt"
    stack.client.add(job("flaky", f'echo "$CHRONOS_JOB_RUN_ATTEMPT" >> {out}; exit 1', retries=2))
    stack.client.add(job("after", parents=["flaky"]))
    stack.client.run("flaky")
    wait_for(lambda: stack.job("flaky")["errorCount"] == 1, 30, "final failure")
    assert out.read_text().split() == ["0", "1", "2"]
    got = stack.job("flaky")
    assert got["errorsSinceLastSuccess"] == 1 and got["lastError"]
    assert stack.job("after")["successCount"] == 0


def test_kill_tasks_kills_without_retry(stack: ChronosStack) -> None:
    stack.client.add(job("S", "sleep 600"))
    stack.client.run("S")
    wait_for(lambda: any(":S:" in t["id"] and t["state"] == "TASK_RUNNING"
                         for t in requests.get(stack.master.url + "/master/tasks", timeout=5).json()["tasks"]),
             20, "S running")
    stack.client.delete_tasks("S")
    wait_for(lambda: any(":S:" in t["id"] and t["state"] == "TASK_KILLED"
                         for t in requests.get(stack.master.url + "/master/tasks", timeout=5).json()["tasks"]),
             5, "S killed")
    assert stack.job("S")["errorCount"] == 0


def test_kill_9_mid_run_loses_and_doubles_nothing(stack: ChronosStack, tmp_path: Path) -> None:
    out = tmp_path / "slow.txt"
    flag = tmp_path / "go"
    stack.client.add(job("slow", f"echo $mesos_task_id >> {out}; while [ ! -e {flag} ]; do sleep 0.1; done"))
    stack.client.run("slow")
    wait_for(lambda: out.exists() and out.read_text().strip(), 20, "the run started")
    stack.restart(kill=True)
    flag.touch()
    wait_for(lambda: stack.job("slow")["successCount"] == 1, 30, "the run's success counted after restart")
    assert len(out.read_text().split()) == 1
    # A job due every second keeps its instants across a kill -9: never two runs for one instant.
    ticks = tmp_path / "ticks.txt"
    stack.client.add(job("ticker", f"echo $CHRONOS_JOB_RUN_TIME >> {ticks}", schedule="R//PT1S"))
    wait_for(lambda: ticks.exists() and len(ticks.read_text().split()) >= 2, 20, "ticks")
    stack.restart(kill=True)
    wait_for(lambda: len(ticks.read_text().split()) >= 5, 30, "ticks after restart")
    instants = ticks.read_text().split()
    assert len(instants) == len(set(instants)), f"an instant ran twice: {instants}"


def test_job_verbs_against_a_real_chronos(stack: ChronosStack, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    def lichen(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lichen.cli.main", "job", "--chronos", stack.daemon.url, *args],
                              capture_output=True, text=True, timeout=60, check=False)

    spec = tmp_path / "parent.json"
    spec.write_text(json.dumps(job("parent")))
    child = tmp_path / "child.json"
    child.write_text(json.dumps(job("child", parents=["parent"])))
    assert lichen("add", str(spec)).returncode == 0
    assert lichen("add", str(child)).returncode == 0
    assert lichen("run", "parent").returncode == 0
    wait_for(lambda: stack.job("child")["successCount"] == 1, 20, "child ran after parent")
    listed = lichen("list")
    assert listed.returncode == 0 and "parent" in listed.stdout and "child" in listed.stdout
    history = json.loads(lichen("history", "parent", "--json").stdout)
    assert history["histogram"]["count"] == 1
    graph = lichen("graph")
    assert graph.returncode == 0 and "parent" in graph.stdout and "child" in graph.stdout
    assert "->" in lichen("graph", "--dot").stdout
    assert lichen("remove", "child").returncode == 0
    missing = lichen("show", "child")
    assert missing.returncode == 1 and "child" in missing.stderr


def test_missed_instants_past_epsilon_are_skipped_not_stacked(stack: ChronosStack, tmp_path: Path) -> None:
    import time
    from datetime import datetime

    ticks = tmp_path / "missed.txt"
    start = datetime.fromtimestamp(time.time() + 2, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    stack.client.add(job("E", f"echo $CHRONOS_JOB_RUN_TIME >> {ticks}", schedule=f"R/{start}/PT2S",
                         epsilon="PT1S"))
    stopped_at = time.time()
    os.kill(stack.daemon.proc.pid, signal.SIGKILL)
    stack.daemon.proc.wait(10)
    # Chronos is down for about four periods (polling the clock, not a state).
    wait_for(lambda: time.time() > stopped_at + 8, 15, "eight seconds to pass")
    _start_again(stack)
    wait_for(lambda: ticks.exists() and ticks.read_text().split(), 20, "a run after the restart")
    runs = [int(t) / 1000 for t in ticks.read_text().split()]
    # The instants that fell while it was down are not stacked up: at most one late run.
    assert sum(1 for r in runs if r < stopped_at + 8 - 1) <= 1
    assert sched_start(stack.job("E")["schedule"]) > stopped_at + 8


def sched_start(schedule: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(schedule.split("/")[1]).timestamp()


def _start_again(stack: ChronosStack) -> None:
    work = stack.daemon.work_dir
    stack.daemon = stack.daemons.add(start_daemon("chronos", work, [
        "--master", stack.master.addr, "--port", str(stack.daemon.port), "--work-dir", str(work),
        "--failure-retry", "0.5"]))
    stack.client = chronos.connect(stack.daemon.addr)


def test_an_instant_missed_within_epsilon_runs_once_after_a_restart(stack: ChronosStack, tmp_path: Path) -> None:
    import time
    from datetime import UTC, datetime

    runs = tmp_path / "late.txt"
    due = (int(time.time() * 1000) + 3000) / 1000   # a whole millisecond: the schedule keeps ms
    start = datetime.fromtimestamp(due, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    stack.client.add(job("L", f"echo $CHRONOS_JOB_RUN_TIME >> {runs}", schedule=f"R1/{start}/PT1H",
                         epsilon="PT30S"))
    os.kill(stack.daemon.proc.pid, signal.SIGKILL)   # down before the instant comes
    stack.daemon.proc.wait(10)
    wait_for(lambda: time.time() > due + 2, 10, "the instant to pass while Chronos is down")
    _start_again(stack)
    wait_for(lambda: runs.exists() and runs.read_text().split(), 20, "the late run")
    wait_for(lambda: stack.job("L")["successCount"] == 1, 20, "its success")
    assert runs.read_text().split() == [str(round(due * 1000))]


def test_a_job_with_a_container_runs_in_its_image(stack: ChronosStack, tmp_path: Path) -> None:
    from tests.support.images import busybox_image, start_registry

    with start_registry(tmp_path / "registry") as registry:
        layout = tmp_path / "layout"
        busybox_image(layout, "1", env=["GREETING=hello-from-image"])
        registry.push(layout, "1", "jobs/busybox:1")
        out = tmp_path / "boxed-out"
        out.mkdir()
        stack.client.add(job("boxed", 'echo "$GREETING $CHRONOS_JOB_NAME" > /out/said', container={
            "type": "DOCKER", "image": f"{registry.addr}/jobs/busybox:1", "network": "HOST",
            "volumes": [{"containerPath": "/out", "hostPath": str(out), "mode": "RW"}]}))
        stack.client.run("boxed")
        wait_for(lambda: stack.job("boxed")["successCount"] == 1, 60, "the containerized run")
        assert (out / "said").read_text() == "hello-from-image boxed\n"
