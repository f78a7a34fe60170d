"""Real `lichen` daemons for tests: loopback, port 0, their own work dirs.

Every daemon is started as `python -m lichen.cli.main <kind> ...` in its own session and
is *ready* once it has written `<work_dir>/<kind>.addr` and answers `GET /health`.
`stop_daemon` sends SIGTERM, then SIGKILL after a deadline, and for an agent then kills
the task processes it left behind (agents leave tasks running when they stop, as Mesos
agents do) with the same `kill_tasks` as `lichen up`, and removes its cgroups.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from lichen.cli.up import kill_tasks
from tests.support.net import read_addr

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
AGENT_RESOURCES = "cpus:2;mem:2048;disk:4096"

_agent_numbers = itertools.count(1)

__all__ = ["Cluster", "Daemon", "kill_tasks", "start_agent", "start_daemon", "start_master", "stop_daemon"]


@dataclass(frozen=True, slots=True)
class Daemon:
    kind: str                       # "master" or "agent"
    addr: str                       # host:port it bound
    proc: subprocess.Popen[bytes]
    work_dir: Path
    log_path: Path
    cgroups_root: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)


@dataclass(frozen=True, slots=True)
class Cluster:
    """What the `cluster` fixture gives a test."""

    master: Daemon
    agents: tuple[Daemon, ...]


def start_daemon(
    kind: str, work_dir: Path, args: list[str], *, cgroups_root: str | None = None,
    timeout: float = READY_TIMEOUT,
) -> Daemon:
    """Start `lichen <kind> <args>` with its log in `<work_dir>.log`; return it once ready."""
    work_dir.mkdir(parents=True, exist_ok=True)
    addr_file = work_dir / f"{kind}.addr"
    addr_file.unlink(missing_ok=True)
    log_path = work_dir.with_name(work_dir.name + ".log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lichen.cli.main", kind, *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )

    def ready() -> str | None:
        if proc.poll() is not None:
            raise _Exited(proc.returncode)
        addr = read_addr(addr_file)
        if addr is None:
            return None
        try:
            healthy = requests.get(f"http://{addr}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return None
        return addr if healthy else None

    try:
        addr = _wait_ready(ready, timeout, f"{kind} in {work_dir}")
    except (_Exited, AssertionError) as e:
        _terminate(proc)
        raise AssertionError(f"{kind} did not start ({e}); its log ends with:\n{_tail(log_path)}") from None
    except BaseException:
        _terminate(proc)
        raise
    return Daemon(kind, addr, proc, work_dir, log_path, cgroups_root)


def start_master(root: Path, *flags: str) -> Daemon:
    """A master in a fresh `root/master[-N]` dir, on 127.0.0.1:0, with `flags` last (they win)."""
    work_dir = _fresh_dir(root, "master")
    args = ["--host", "127.0.0.1", "--port", "0", "--work-dir", str(work_dir), *flags]
    return start_daemon("master", work_dir, args)


def start_agent(master_addr: str, root: Path, *flags: str) -> Daemon:
    """An agent in a fresh `root/agent-N` dir, on 127.0.0.1:0, registered with `master_addr`.

    It offers `cpus:2;mem:2048;disk:4096` and 100 ports of its own unless `flags` say
    `--resources`, and puts its cgroups under a root of its own that `stop_daemon` removes.
    """
    number = next(_agent_numbers)
    work_dir = _fresh_dir(root, "agent")
    # Below Linux's ephemeral ports (32768-60999): an outgoing connection holding one
    # would stop a task from binding it; above Marathon's service ports (10000-20000).
    first_port = 21000 + 100 * (number % 110)
    cgroups_root = f"lichen-test-{os.getpid()}-{number}"
    args = [
        "--master", master_addr, "--host", "127.0.0.1", "--port", "0",
        "--work-dir", str(work_dir), "--cgroups-root", cgroups_root,
        "--resources", f"{AGENT_RESOURCES};ports:[{first_port}-{first_port + 99}]",
        "--executor-registration-timeout", "20",
        *flags,
    ]
    return start_daemon("agent", work_dir, args, cgroups_root=cgroups_root)


def stop_daemon(daemon: Daemon, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; then kill an agent's tasks and remove its cgroups.

    Returns the daemon's exit status. Safe to call twice.
    """
    code = _terminate(daemon.proc, timeout)
    if daemon.kind == "agent":
        kill_tasks(daemon.work_dir)
        if daemon.cgroups_root is not None:
            remove_cgroup_root(daemon.cgroups_root)
    return code


def remove_cgroup_root(name: str) -> None:
    """Remove `/sys/fs/cgroup[/<controller>]/<name>` and everything (empty) below it."""
    base = Path("/sys/fs/cgroup")
    for top in [base / name, *base.glob(f"*/{name}")]:
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"exited with status {code}")


def _wait_ready(ready: Callable[[], str | None], timeout: float, what: str) -> str:
    """Like wait_for, but a daemon that exited fails at once instead of at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        addr = ready()
        if addr:
            return addr
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def _terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


def _fresh_dir(root: Path, stem: str) -> Path:
    for n in itertools.count(1):
        name = stem if stem == "master" and n == 1 else f"{stem}-{n}"
        candidate = root / name
        if not candidate.exists() and not candidate.with_name(name + ".log").exists():
            return candidate
    raise AssertionError("unreachable")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
