"""`/files/*` on the agent: reading sandboxes, and nothing outside them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent.agent_harness import (
    AgentProcess,
    FakeMaster,
    command_task,
    remove_tree,
    wait_for,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProcess, str]]:
    tmp = tmp_path_factory.mktemp("files")
    master = FakeMaster()
    agent = AgentProcess(master, tmp / "agent")
    try:
        agent.start()
        wait_for(master.connected, what="stream")
        master.run_task(command_task("f1", "printf 'hello files' > out.txt; ln -s /etc/passwd escape"))
        master.wait_state("f1", "TASK_FINISHED")
        wait_for(lambda: agent.state()["completed_frameworks"], what="completed framework")
        fw = agent.state()["completed_frameworks"][0]
        directory = fw["completed_executors"][0]["directory"]
        yield agent, directory
    finally:
        agent.cleanup()
        master.close()
        remove_tree(tmp)


def test_read_returns_data_and_offset(setup: tuple[AgentProcess, str]) -> None:
    agent, directory = setup
    r = agent.get("/files/read", path=f"{directory}/out.txt", offset=6)
    assert r.json() == {"data": "files", "offset": 6}
    r = agent.get("/files/read", path=f"{directory}/out.txt", offset=0, length=5)
    assert r.json() == {"data": "hello", "offset": 0}


def test_read_offset_minus_one_gives_size(setup: tuple[AgentProcess, str]) -> None:
    agent, directory = setup
    r = agent.get("/files/read", path=f"{directory}/out.txt", offset=-1)
    assert r.json() == {"data": "", "offset": 11}


def test_read_errors(setup: tuple[AgentProcess, str]) -> None:
    agent, directory = setup
    assert agent.get("/files/read").status_code == 400
    assert agent.get("/files/read", path=f"{directory}/out.txt", offset="x").status_code == 400
    assert agent.get("/files/read", path=f"{directory}/nope").status_code == 404


def test_browse_lists_the_sandbox(setup: tuple[AgentProcess, str]) -> None:
    agent, directory = setup
    entries = {Path(e["path"]).name: e for e in agent.get("/files/browse", path=directory).json()}
    assert {"stdout", "stderr", "out.txt"} <= set(entries)
    assert entries["out.txt"]["size"] == 11
    assert entries["out.txt"]["mode"].startswith("-rw")


def test_download_returns_raw_bytes(setup: tuple[AgentProcess, str]) -> None:
    agent, directory = setup
    r = agent.get("/files/download", path=f"{directory}/out.txt")
    assert r.status_code == 200
    assert r.content == b"hello files"


def test_paths_outside_the_sandboxes_are_refused(setup: tuple[AgentProcess, str]) -> None:
    agent, directory = setup
    for path in ("/etc/passwd", f"{directory}/../../../../../../../../etc/passwd", f"{directory}/escape"):
        r = agent.get("/files/read", path=path)
        assert r.status_code in (403, 404), path
        assert "root:" not in r.text
    assert agent.get("/files/download", path="/etc/passwd").status_code == 403
    assert agent.get("/files/browse", path=str(agent.work_dir / "meta")).status_code == 403
