"""`lichen task ...` against a fake Marathon, and `task log` through a fake master and agent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli.fake_servers import (
    _REPO,
    FakeAgent,
    FakeMarathon,
    FakeMaster,
    marathon,
    run_lichen,
)

__all__ = ["marathon"]

TASK_ID = "web.instance-1111._app.1"


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    directory = tmp_path / "sandbox"
    directory.mkdir()
    (directory / "stdout").write_text("".join(f"line {i}\n" for i in range(1, 31)))
    (directory / "stderr").write_text("oops\n")
    return directory


@pytest.fixture
def mesos(sandbox: Path) -> Iterator[tuple[FakeMaster, FakeAgent]]:
    agent = FakeAgent(TASK_ID, sandbox)
    agent.start()
    master = FakeMaster(TASK_ID, agent.url)
    try:
        master.start()
        yield master, agent
    finally:
        master.stop()
        agent.stop()


def test_task_list_shows_every_task(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100", "instances": 2})
    out = run_lichen("task", "list", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0, out.stderr
    assert "web.instance-0000._app.1" in out.stdout and "web.instance-0001._app.1" in out.stdout
    assert "TASK_RUNNING" in out.stdout


def test_task_list_of_one_app_json(marathon: FakeMarathon) -> None:
    web = marathon.add_app({"id": "web", "cmd": "sleep 100", "instances": 2})
    marathon.add_app({"id": "db", "cmd": "sleep 100"})
    out = run_lichen("task", "--marathon", marathon.url, "list", "/web", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"tasks": marathon.tasks_of(web)}
    assert marathon.calls("GET", "/v2/apps/web/tasks")


def test_task_list_of_unknown_app_is_404(marathon: FakeMarathon) -> None:
    out = run_lichen("task", "list", "ghost", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 1
    assert "App '/ghost' does not exist" in out.stderr


def test_task_log_prints_the_last_lines_of_stdout(mesos: tuple[FakeMaster, FakeAgent], sandbox: Path) -> None:
    master, agent = mesos
    out = run_lichen("task", "log", TASK_ID, "--lines", "3", env={"LICHEN_MASTER": master.url})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "line 28\nline 29\nline 30\n"
    reads = agent.calls("GET", "/files/read")
    assert reads and all(q["path"] == f"{sandbox}/stdout" for q, _ in reads)
    assert master.calls("GET", "/master/tasks")[0][0] == {"task_id": TASK_ID}


def test_task_log_defaults_to_ten_lines(mesos: tuple[FakeMaster, FakeAgent]) -> None:
    master, _ = mesos
    out = run_lichen("task", "--master", master.url.removeprefix("http://"), "log", TASK_ID)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"line {i}" for i in range(21, 31)]


def test_task_log_stderr(mesos: tuple[FakeMaster, FakeAgent]) -> None:
    master, _ = mesos
    out = run_lichen("task", "log", TASK_ID, "--stderr", env={"LICHEN_MASTER": master.url})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "oops\n"


def test_task_log_of_a_completed_executor(sandbox: Path) -> None:
    agent = FakeAgent(TASK_ID, sandbox, completed=True)
    agent.start()
    master = FakeMaster(TASK_ID, agent.url)
    try:
        master.start()
        out = run_lichen("task", "log", TASK_ID, "-n", "1", env={"LICHEN_MASTER": master.url})
    finally:
        master.stop()
        agent.stop()
    assert out.returncode == 0, out.stderr
    assert out.stdout == "line 30\n"


def test_task_log_unknown_task(mesos: tuple[FakeMaster, FakeAgent]) -> None:
    master, _ = mesos
    out = run_lichen("task", "log", "nope.1", env={"LICHEN_MASTER": master.url})
    assert out.returncode == 1
    assert "no task 'nope.1'" in out.stderr


def test_task_log_follow_prints_new_output(mesos: tuple[FakeMaster, FakeAgent], sandbox: Path) -> None:
    master, _ = mesos
    proc = subprocess.Popen(
        [sys.executable, "-m", "lichen.cli.main", "task", "--master", master.url, "log", TASK_ID,
         "--follow", "--lines", "1"],
        cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "line 30\n"
        with open(sandbox / "stdout", "a") as f:
            f.write("fresh output\n")
        deadline = time.monotonic() + 20
        line = proc.stdout.readline()
        assert time.monotonic() < deadline
        assert line == "fresh output\n"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_unreachable_master_is_one_clear_line() -> None:
    out = run_lichen("task", "log", TASK_ID, env={"LICHEN_MASTER": "http://127.0.0.1:1"})
    assert out.returncode == 1
    assert out.stderr.strip() == "cannot reach the Mesos master at http://127.0.0.1:1: connection refused"
