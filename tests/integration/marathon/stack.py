"""A real stack for Marathon tests: a master, two agents and `lichen marathon`, with the
marathon-python client pointed at it (the `stack` fixture, through conftest.py)."""

from __future__ import annotations

import collections
import collections.abc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import Daemon, wait_for
from tests.support.daemons import start_daemon

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
    setattr(collections, _name, getattr(collections.abc, _name))  # marathon 0.13.0 on Python >= 3.10

from marathon import MarathonClient


class Stack:
    def __init__(self, master: Daemon, agents: list[Daemon], marathon: Daemon) -> None:
        self.master = master
        self.agents = agents
        self.marathon = marathon
        self.client = MarathonClient(marathon.url)

    def app(self, app_id: str) -> Any:
        return self.client.get_app(app_id)

    def settled(self, app_id: str, n: int) -> bool:
        app = self.app(app_id)
        return not app.deployments and app.tasks_running == n and len(app.tasks) == n


@pytest.fixture
def stack(tmp_path: Path, start_master: Callable[..., Daemon], start_agent: Callable[..., Daemon],
          daemons: Any) -> Iterator[Stack]:
    master = start_master(tmp_path, "--allocation-interval", "0.1", "--agent-ping-timeout", "1",
                          "--max-agent-ping-timeouts", "4")
    agents = [start_agent(master.addr, tmp_path), start_agent(master.addr, tmp_path)]
    wait_for(lambda: len(requests.get(master.url + "/master/slaves", timeout=5).json()["slaves"]) == 2, 20,
             "agents")
    work = tmp_path / "marathon"
    m = daemons.add(start_daemon("marathon", work, [
        "--master", master.addr, "--port", "0", "--work-dir", str(work)]))
    yield Stack(master, agents, m)




def sandbox_file(stack: Stack, task_id: str, name: str = "stdout") -> str:
    """A file of a task's sandbox, read through the agents' /files API ("" if not found)."""
    for agent in stack.agents:
        state = requests.get(agent.url + "/state", timeout=5).json()
        for fw in state["frameworks"]:
            for ex in fw["executors"]:
                if ex["id"] == task_id:
                    r = requests.get(agent.url + "/files/read",
                                     params={"path": f"{ex['directory']}/{name}", "offset": 0}, timeout=5)
                    return str(r.json().get("data", "")) if r.status_code == 200 else ""
    return ""
