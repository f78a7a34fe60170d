"""Fixtures shared by every test: real daemons that are always stopped, and a cluster.

    def test_x(start_master, start_agent, tmp_path):
        master = start_master(tmp_path, "--allocation-interval", "0.1")
        agent = start_agent(master.addr, tmp_path)

    def test_y(cluster):          # one master and two agents, both registered
        http_get_json(cluster.master.url + "/master/slaves")

Whatever a test starts through these fixtures is stopped after it (SIGTERM, then SIGKILL
after a deadline), agents first, and the task processes the agents left behind are
killed. See tests/support for the helpers themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import Cluster, Daemon, http_get_json, stop_daemon, wait_for
from tests.support import start_agent as _start_agent
from tests.support import start_master as _start_master

# Flags that make a master notice things quickly, for tests that wait on it.
FAST_MASTER = ("--allocation-interval", "0.1")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that collected no tests fails: a green run must mean tests ran."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("no tests were collected: failing the run", red=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows the last lines of every daemon it started: CI keeps nothing else."""
    outcome = yield
    report = outcome.get_result()
    started = getattr(item, "funcargs", {}).get("daemons")
    if report.failed and isinstance(started, _Daemons):
        for daemon in started.started:
            report.sections.append((f"{daemon.kind} log ({daemon.log_path.name})", daemon.log_tail(60)))


class _Daemons:
    """What a test started; stops it all, agents first."""

    def __init__(self) -> None:
        self.started: list[Daemon] = []

    def add(self, daemon: Daemon) -> Daemon:
        self.started.append(daemon)
        return daemon

    def stop_all(self) -> None:
        agents = [d for d in self.started if d.kind == "agent"]
        others = [d for d in self.started if d.kind != "agent"]
        for daemon in [*reversed(agents), *reversed(others)]:
            stop_daemon(daemon)


@pytest.fixture
def daemons() -> Iterator[_Daemons]:
    registry = _Daemons()
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest.fixture
def start_master(daemons: _Daemons) -> Callable[..., Daemon]:
    """`start_master(root, *flags) -> Daemon`: a master in `root/master`, stopped after the test."""

    def start(root: Path, *flags: str) -> Daemon:
        return daemons.add(_start_master(root, *flags))

    return start


@pytest.fixture
def start_agent(daemons: _Daemons) -> Callable[..., Daemon]:
    """`start_agent(master_addr, root, *flags) -> Daemon`: an agent in `root/agent-N`."""

    def start(master_addr: str, root: Path, *flags: str) -> Daemon:
        return daemons.add(_start_agent(master_addr, root, *flags))

    return start


@pytest.fixture
def cluster(
    tmp_path: Path, start_master: Callable[..., Daemon], start_agent: Callable[..., Daemon]
) -> Cluster:
    """One master (allocating every 0.1 s) and two agents, both registered with it."""
    master = start_master(tmp_path, *FAST_MASTER)
    agents = tuple(start_agent(master.addr, tmp_path) for _ in range(2))
    wait_for(
        lambda: len(http_get_json(master.url + "/master/slaves")["slaves"]) == 2,
        30,
        "both agents to register with the master",
    )
    return Cluster(master, agents)
