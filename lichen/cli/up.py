"""`lichen up`: a whole cluster on this machine, supervised, in one command.

Theory of operation. `up` starts `lichen master` and N `lichen agent`s as child processes,
each in its own session (so a Ctrl-C reaches only `up`, which then stops them in order)
and with a parent-death signal (so they do not outlive an `up` that is SIGKILLed). Each
child gets a work dir under the up work dir (`master/`, `agent-1/`, ...) and logs to
`<work-dir>/<component>.log`. A component is *ready* once it has written its
`<component>.addr` file and answers `GET /health`; `up` prints one line per component
with its URL once all are ready, then `lichen is ready`.

A child that exits is started again after a backoff (0.5 s doubling to 30 s, reset once
it has stayed up for a minute). The master keeps the port it first bound, so agents find
it again. A child that keeps dying before it ever became ready makes `up` give up.

Stopping (SIGINT or SIGTERM): SIGTERM to the agents and the master, SIGKILL to whatever
is left after a grace period, then `kill_tasks`: agents leave their tasks running when
they stop, as Mesos agents do, and `up` must leave nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click
import psutil

from lichen.cli.main import cli

log = logging.getLogger(__name__)

FIRST_AGENT_PORT = 31000
PORTS_PER_AGENT = 1000
MAX_AGENTS_WITH_OWN_PORTS = 11         # 31000-31999 down to 21000-21999
READY_TIMEOUT = 60.0             # seconds a component has to write its addr file and answer /health
STOP_GRACE = 10.0                # seconds between SIGTERM and SIGKILL for the daemons
TASK_STOP_GRACE = 3.0            # the same for the tasks the agents leave behind
MAX_EARLY_FAILURES = 3           # deaths before first readiness that make `up` give up
_POLL = 0.1
_STABLE_AFTER = 60.0             # seconds up after which a child's backoff resets


# --- pure parts -----------------------------------------------------------------------


def agent_port_range(index: int) -> tuple[int, int]:
    """Agent `index` (1-based) gets its own 1000 ports: 31000-31999, 30000-30999, ...

    Downwards from Mesos's default range: above it begins Linux's ephemeral range
    (32768-60999), whose ports any outgoing connection may hold, so a task could not
    bind them; below 21000 come Marathon's service ports (10000-20000).
    """
    if index < 1:
        raise ValueError(f"agent index must be at least 1, not {index}")
    if index > MAX_AGENTS_WITH_OWN_PORTS:
        raise ValueError(f"at most {MAX_AGENTS_WITH_OWN_PORTS} agents get a port range of their own; "
                         f"name the ports in --agent-resources")
    first = FIRST_AGENT_PORT - PORTS_PER_AGENT * (index - 1)
    return first, first + PORTS_PER_AGENT - 1


def split_resources(cpus: float, mem_mb: float, disk_mb: float, agents: int, index: int) -> str:
    """Agent `index`'s share of the host when `agents` agents split it evenly.

    cpus are rounded down to hundredths (at least 0.01), mem and disk down to whole MB.
    """
    if agents < 1:
        raise ValueError(f"need at least one agent, not {agents}")
    share_cpus = max(int(cpus * 100 / agents) / 100, 0.01)
    share_mem = max(int(mem_mb / agents), 1)
    share_disk = max(int(disk_mb / agents), 1)
    first, last = agent_port_range(index)
    return f"cpus:{share_cpus:g};mem:{share_mem};disk:{share_disk};ports:[{first}-{last}]"


def with_ports(spec: str, index: int) -> str:
    """`spec` as given, plus this agent's port range when it names no ports itself.

    Agents on one host must not offer the same ports.
    """
    from lichen.agent.detect import named_resources

    if "ports" in named_resources(spec):
        return spec
    first, last = agent_port_range(index)
    return f"{spec.rstrip(';')};ports:[{first}-{last}]"


def restart_delay(failures: int) -> float:
    """Seconds to wait before restarting a child that has exited `failures` times in a row."""
    return float(min(0.5 * 2 ** max(failures - 1, 0), 30.0))


# --- leftover tasks ---------------------------------------------------------------------


def task_processes(root: Path) -> list[psutil.Process]:
    """Live processes the agents under `root` started for tasks.

    A process counts when its environment has `MESOS_SANDBOX` under `root`, when it is a
    `lichen-wrap` for a sandbox under `root`, when its session leader is such a wrapper,
    when it is in the cgroup of a container under `root`, or when its process group is one a
    sandbox under `root` records in `.lichen/pid` for a task that has not ended. `up`
    itself and its ancestors never count.
    """
    root = root.resolve()
    spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    running_groups = _running_task_groups(root)
    in_cgroups = {pid for d in _container_cgroups(root) for pid in _cgroup_pids(d)}
    wrappers: set[int] = set()
    candidates: list[tuple[psutil.Process, bool]] = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid in spared:
            continue
        cmdline = proc.info["cmdline"] or []
        is_wrapper = (
            len(cmdline) > 1
            and os.path.basename(cmdline[0]).startswith("lichen-wrap")
            and _under(cmdline[1], root)
        )
        if is_wrapper:
            wrappers.add(proc.pid)
        candidates.append((proc, is_wrapper))
    found: list[psutil.Process] = []
    for proc, is_wrapper in candidates:
        try:
            if is_wrapper or proc.pid in in_cgroups or _sandbox_env_under(proc, root):
                found.append(proc)
                continue
            if os.getsid(proc.pid) in wrappers or os.getpgid(proc.pid) in running_groups:
                found.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return found


def kill_tasks(root: Path, grace: float = TASK_STOP_GRACE) -> list[int]:
    """SIGTERM every task process under `root`, SIGKILL what is left after `grace`.

    Returns the pids signalled. Blocking; safe to call when there is nothing to kill.
    """
    _delete_oci_containers(root)
    signalled: set[int] = set()
    kill_at = time.monotonic() + grace
    give_up_at = kill_at + 10.0      # a process that outlives SIGKILL this long is not ours to wait for
    while time.monotonic() < give_up_at:
        procs = task_processes(root)
        if not procs:
            break
        sig = signal.SIGKILL if time.monotonic() >= kill_at else signal.SIGTERM
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
                signalled.add(proc.pid)
        psutil.wait_procs(procs, timeout=_POLL * 2)
    for d in _container_cgroups(root):
        with contextlib.suppress(OSError):
            d.rmdir()                    # the agent would have, had it seen the task end
    with contextlib.suppress(Exception):  # best effort: a bridge network left by a dead agent
        from lichen.agent.containerizer.oci_network import teardown_under

        teardown_under(root)
    _unmount_under(root)
    return sorted(signalled)


def _delete_oci_containers(root: Path) -> None:
    """Image containers outlive a SIGKILLed `runc run`: delete them through runc itself."""
    runc = shutil.which("runc")
    if runc is None:
        return
    for state in root.rglob("oci-state"):
        if not state.is_dir():
            continue
        for entry in state.iterdir():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([runc, "--root", str(state), "delete", "--force", entry.name],
                               check=False, capture_output=True, timeout=30)


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever the agents mounted below `root` (container rootfs overlays)."""
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    targets = [line.split()[4] for line in lines if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True, timeout=30)


def _running_task_groups(root: Path) -> set[int]:
    groups: set[int] = set()
    for pid_file in root.rglob(".lichen/pid"):
        if (pid_file.parent / "status").exists():
            continue                      # the task ended: its group id may be reused
        with contextlib.suppress(OSError, ValueError):
            groups.add(int(pid_file.read_text().strip()))
    groups.discard(os.getpgrp())
    return groups


def _container_cgroups(root: Path) -> list[Path]:
    """The cgroup directories of the containers under `root` (from their container.json)."""
    dirs: list[Path] = []
    for described in root.rglob(".lichen/container.json"):
        try:
            cgroup = json.loads(described.read_text()).get("cgroup") or {}
            found = [Path(d) for d in cgroup.get("dirs") or []]
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        dirs += [d for d in found if d.is_relative_to("/sys/fs/cgroup") and d.is_dir()]
    return dirs


def _cgroup_pids(cgroup_dir: Path) -> set[int]:
    try:
        return {int(line) for line in (cgroup_dir / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def _sandbox_env_under(proc: psutil.Process, root: Path) -> bool:
    try:
        sandbox = proc.environ().get("MESOS_SANDBOX")
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return False
    return sandbox is not None and _under(sandbox, root)


def _under(path: str, root: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False


# --- supervision ------------------------------------------------------------------------


@dataclass(slots=True)
class Component:
    """One supervised child. Mutable: it changes as the child restarts."""

    name: str                                    # "master", "agent-1", ...
    kind: str                                    # "master" or "agent": names its addr file
    work_dir: Path
    log_path: Path
    argv: Callable[[], list[str]]                # built at each start: the master's port may be known by then
    proc: subprocess.Popen[bytes] | None = None
    addr: str | None = None
    started_at: float = 0.0
    failures: int = 0
    ever_ready: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def addr_file(self) -> Path:
        return self.work_dir / f"{self.kind}.addr"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"


@dataclass(frozen=True, slots=True)
class UpOptions:
    work_dir: Path
    agents: int
    host: str
    master_port: int
    containerizers: str
    agent_resources: str | None
    log_level: str
    docker_socket: str | None = None
    marathon_port: int = 8080
    chronos_port: int = 4400
    chronos_failure_retry: float = 60.0


class GaveUp(Exception):
    """A component kept dying before it ever became ready."""


class Cluster:
    """The supervisor: starts, watches, restarts and stops the components."""

    def __init__(self, options: UpOptions, out: Callable[[str], None]) -> None:
        self.options = options
        self.out = out
        self.stopping = asyncio.Event()
        self.master_port = options.master_port
        self.master = Component(
            "master", "master", options.work_dir / "master",
            options.work_dir / "master.log", self._master_argv,
        )
        self.agents = [self._agent(i) for i in range(1, options.agents + 1)]
        self.ports = {"marathon": options.marathon_port, "chronos": options.chronos_port}
        self.marathon = self._framework("marathon")
        self.chronos = self._framework("chronos", "--failure-retry", str(options.chronos_failure_retry))

    @property
    def frameworks(self) -> list[Component]:
        return [self.marathon, self.chronos]

    @property
    def components(self) -> list[Component]:
        return [self.master, *self.agents, *self.frameworks]

    async def run(self) -> None:
        """Start everything, report readiness, supervise until `stopping` is set; then stop all."""
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            async with asyncio.TaskGroup() as group:
                watchers = [group.create_task(self._supervise(self.master))]
                await self._until_ready(self.master)
                if self.stopping.is_set():
                    return
                for agent in self.agents:
                    watchers.append(group.create_task(self._supervise(agent)))
                for agent in self.agents:
                    await self._until_ready(agent)
                if self.stopping.is_set():
                    return
                for framework in self.frameworks:
                    watchers.append(group.create_task(self._supervise(framework)))
                for framework in self.frameworks:
                    await self._until_ready(framework)
                if self.stopping.is_set():
                    return
                width = max(len(c.name) for c in self.components) + 2
                for c in self.components:
                    self.out(f"{c.name.ljust(width)} {c.url}")
                self.out(f"logs in {self.options.work_dir}/<component>.log")
                self.out("lichen is ready")
                await self.stopping.wait()
                for watcher in watchers:
                    watcher.cancel()
        finally:
            await asyncio.to_thread(self._stop_all)

    def _master_argv(self) -> list[str]:
        o = self.options
        return [
            sys.executable, "-m", "lichen.cli.main", "master",
            "--host", o.host, "--port", str(self.master_port),
            "--work-dir", str(self.master.work_dir), "--log-level", o.log_level,
        ]

    def _framework(self, kind: str, *extra: str) -> Component:
        """Marathon or Chronos: a framework on the master, on its own port."""
        o = self.options
        work_dir = o.work_dir / kind

        def argv() -> list[str]:
            return [
                sys.executable, "-m", "lichen.cli.main", kind,
                "--master", self.master.addr or f"{o.host}:{self.master_port}",
                "--host", o.host, "--port", str(self.ports[kind]),
                "--work-dir", str(work_dir), "--log-level", o.log_level, *extra,
            ]

        return Component(kind, kind, work_dir, o.work_dir / f"{kind}.log", argv)

    def _agent(self, index: int) -> Component:
        o = self.options
        work_dir = o.work_dir / f"agent-{index}"

        def argv() -> list[str]:
            return [
                sys.executable, "-m", "lichen.cli.main", "agent",
                "--master", self.master.addr or f"{o.host}:{self.master_port}",
                "--host", o.host, "--port", "0", "--work-dir", str(work_dir),
                "--containerizers", o.containerizers,
                *(["--docker-socket", o.docker_socket] if o.docker_socket else []),
                "--resources", agent_resources(o.agent_resources, o.agents, index, work_dir),
                "--log-level", o.log_level,
            ]

        return Component(f"agent-{index}", "agent", work_dir, o.work_dir / f"agent-{index}.log", argv)

    async def _until_ready(self, c: Component) -> None:
        ready = asyncio.create_task(c.ready.wait())
        stop = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait([ready, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stop.cancel()

    async def _supervise(self, c: Component) -> None:
        while not self.stopping.is_set():
            self._start(c)
            became_ready = await self._await_ready(c)
            if became_ready:
                if c.kind == "master" and c.addr is not None:
                    self.master_port = int(c.addr.rsplit(":", 1)[1])   # keep it across restarts
                if c.kind in self.ports and c.addr is not None:
                    self.ports[c.kind] = int(c.addr.rsplit(":", 1)[1])   # keep it across restarts
                if not c.ever_ready:
                    c.ever_ready = True
                else:
                    self.out(f"{c.name} is back at {c.url}")
                c.ready.set()
            code = await self._wait_exit(c)
            if self.stopping.is_set():
                return
            if time.monotonic() - c.started_at > _STABLE_AFTER:
                c.failures = 0
            c.failures += 1
            if not c.ever_ready and c.failures >= MAX_EARLY_FAILURES:
                raise GaveUp(
                    f"{c.name} exited with status {code} {c.failures} times before it was ready;"
                    f" its log ({c.log_path}) ends with:\n{_tail(c.log_path)}"
                )
            delay = restart_delay(c.failures)
            self.out(f"{c.name} exited with status {code}; restarting in {delay:g}s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()

    def _start(self, c: Component) -> None:
        c.work_dir.mkdir(parents=True, exist_ok=True)
        c.addr_file.unlink(missing_ok=True)          # a stale file would look like readiness
        c.addr = None
        with open(c.log_path, "ab") as logf:
            c.proc = subprocess.Popen(
                c.argv(),
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                # Only prctl runs between fork and exec; it takes no lock a thread could hold.
                start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        c.started_at = time.monotonic()

    async def _await_ready(self, c: Component) -> bool:
        """Whether `c` wrote its addr file and answered /health before exiting or the deadline."""
        import aiohttp

        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
            while time.monotonic() < deadline and not self.stopping.is_set():
                assert c.proc is not None
                if c.proc.poll() is not None:
                    return False
                if c.addr is None:
                    c.addr = _read_addr(c.addr_file)
                if c.addr is not None:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                        async with http.get(f"{c.url}/health") as resp:
                            if resp.status == 200:
                                return True
                await asyncio.sleep(_POLL)
        if not self.stopping.is_set():
            self.out(f"{c.name} did not become ready in {READY_TIMEOUT:g}s; restarting it")
            assert c.proc is not None
            _terminate([c.proc], STOP_GRACE)
        return False

    async def _wait_exit(self, c: Component) -> int | None:
        assert c.proc is not None
        while not self.stopping.is_set():
            code = c.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(_POLL)
        return None

    def _stop_all(self) -> None:
        """Blocking: the frameworks, then the agents (so they do not chase a vanished master),
        then the master."""
        _terminate([f.proc for f in self.frameworks if f.proc is not None], STOP_GRACE)
        agents = [a.proc for a in self.agents if a.proc is not None]
        _terminate(agents, STOP_GRACE)
        if self.master.proc is not None:
            _terminate([self.master.proc], STOP_GRACE)
        kill_tasks(self.options.work_dir)


def agent_resources(spec: str | None, agents: int, index: int, work_dir: Path) -> str:
    """What agent `index` offers: `spec` with its own ports, or its even share of the host."""
    if spec:
        return with_ports(spec, index)
    from lichen.agent.detect import default_disk, default_mem, free_disk_mb, total_memory_mb

    cpus = float(os.cpu_count() or 1)
    return split_resources(
        cpus, default_mem(total_memory_mb()), default_disk(free_disk_mb(work_dir)), agents, index
    )


def _terminate(procs: Iterable[subprocess.Popen[bytes]], grace: float) -> None:
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()


def _find_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


# Looked up here, not in the forked child: between fork and exec it should do next to nothing.
_PRCTL = _find_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when `up` dies, even by SIGKILL (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _read_addr(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the command ------------------------------------------------------------------------


async def _up(options: UpOptions) -> None:
    cluster = Cluster(options, lambda line: click.echo(line))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, cluster.stopping.set)
    try:
        await cluster.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@cli.command()
@click.option("--work-dir", default=".lichen", show_default=True, type=click.Path(path_type=Path),
              help="Where the components' work dirs and logs go.")
@click.option("--agents", default=1, show_default=True, type=click.IntRange(1, MAX_AGENTS_WITH_OWN_PORTS),
              help="How many agents (each offers 1000 ports of its own).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address every component binds.")
@click.option("--master-port", default=5050, show_default=True, type=click.IntRange(0, 65535),
              help="The master's port (0: any free port).")
@click.option("--containerizers", default="process,oci", show_default=True,
              help="What the agents run tasks with: process, oci (images with runc), docker.")
@click.option("--agent-resources", default=None,
              help="Each agent's resources, e.g. \"cpus:2;mem:2048\" (default: the host split evenly).")
@click.option("--marathon-port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Marathon's port (0: any free port).")
@click.option("--chronos-port", default=4400, show_default=True, type=click.IntRange(0, 65535),
              help="Chronos's port (0: any free port).")
@click.option("--chronos-failure-retry", default=60.0, show_default=True, type=float,
              help="Seconds between a failed Chronos run and its retry.")
@click.option("--docker-socket", default=None,
              help="The Docker Engine the agents' docker containerizer drives (default: DOCKER_HOST).")
@click.option("--log-level", default="info", show_default=True)
def up(
    work_dir: Path, agents: int, host: str, master_port: int, containerizers: str, docker_socket: str | None,
    agent_resources: str | None, log_level: str, marathon_port: int, chronos_port: int,
    chronos_failure_retry: float, **_later: object,
) -> None:
    """Run a master and agents on this machine until Ctrl-C; leave nothing running."""
    options = UpOptions(
        work_dir=work_dir.resolve(), agents=agents, host=host, master_port=master_port,
        containerizers=containerizers, agent_resources=agent_resources, log_level=log_level,
        docker_socket=docker_socket,
        marathon_port=marathon_port, chronos_port=chronos_port, chronos_failure_retry=chronos_failure_retry,
    )
    try:
        asyncio.run(_up(options))
    except* GaveUp as group:
        for e in group.exceptions:
            click.echo(f"lichen up: {e}", err=True)
        raise SystemExit(1) from None
    click.echo("lichen stopped")
