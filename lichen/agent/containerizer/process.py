"""The process containerizer: each task is a process tree under a small C wrapper.

Theory of operation. `launch` starts `lichen-wrap` (wrapper.c, compiled on first use into
`<work_dir>/bin/`) in a new session; the wrapper forks the task into its own process
group (and its cgroups, when the host has them) and stays as its parent. All state lives
in `<sandbox>/.lichen/`:

    container.json   written by us at launch: wrapper pid, cgroup dirs, memory limit
    pid              written by the wrapper: the task's pid = its process group id
    status           written by the wrapper (tmp + rename) when the task ends: raw wait status
    termination.json written by us once we have turned `status` into a Termination
    wrapper.log      the wrapper's own stderr (it is empty unless something broke)

A container is *running* while `status` is absent and its wrapper is alive, *ended* once
`status` exists (or, abnormally, when the wrapper died without writing it). No Python
process or thread watches a task: `wait` polls those files, so it works the same for
containers we launched and for containers recovered after an agent restart, while the
tasks themselves never notice the agent going away (they are in their own sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lichen.agent.containerizer import cgroups as cg
from lichen.agent.containerizer.base import LaunchError, LaunchSpec, Termination
from lichen.agent.containerizer.filewatch import FileWatcher

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 0.2
PID_FILE_TIMEOUT = 10.0          # how long launch waits for the wrapper to report the task's pid
KILL_SETTLE_TIMEOUT = 10.0       # how long kill waits for a SIGKILLed task's status

_META = ".lichen"
_NO_STATUS = "Command terminated without an exit status (its wrapper died)"


@dataclass(slots=True)
class _Container:
    """What we know about one container. Mutable: it fills in as files appear."""

    container_id: str
    sandbox: Path
    wrapper_pid: int | None
    pgid: int | None
    cgroup: cg.ContainerCgroup | None
    mem_mb: float | None
    popen: subprocess.Popen[bytes] | None = None     # only for containers we launched
    termination: Termination | None = None

    @property
    def meta(self) -> Path:
        return self.sandbox / _META


class ProcessContainerizer:
    """Runs containers as plain process trees (in cgroups when the host offers them)."""

    def __init__(self, work_dir: Path, *, cgroups_root: str = "lichen", cgroups: bool = True) -> None:
        self.work_dir = Path(work_dir)
        self.cgroups_root = cgroups_root
        self._use_cgroups = cgroups
        self._host: cg.CgroupHost | None = None
        self._host_detected = False
        self._containers: dict[str, _Container] = {}
        self._wrapper: Path | None = None
        self._wrapper_lock = asyncio.Lock()
        self._zombies: list[subprocess.Popen[bytes]] = []
        self.files = FileWatcher()     # wakes launches when a pid file appears (shared with oci)

    # -- the protocol ----------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> None:
        """Start the container. Raises LaunchError; leaves nothing behind when it does."""
        known = self._containers.get(spec.container_id)
        if known is not None and self._check(known) is None:
            raise LaunchError(f"container '{spec.container_id}' is already running")
        wrapper = await self._ensure_wrapper()
        host = await self._cgroup_host()
        container = await asyncio.to_thread(self._start, spec, wrapper, host)
        self._containers[spec.container_id] = container
        try:
            await self._await_pid(container)
        except BaseException:
            self._containers.pop(spec.container_id, None)
            await asyncio.to_thread(self._abort, container)
            raise

    async def wait(self, container_id: str) -> Termination:
        """Wait until the container ends. Raises KeyError for a container we do not know."""
        container = self._get(container_id)
        interval = POLL_INTERVAL
        while True:
            termination = self._check(container)
            if termination is not None:
                return termination
            await asyncio.sleep(interval)
            interval = min(MAX_POLL_INTERVAL, interval * 1.5)

    async def kill(self, container_id: str, grace_period: float) -> None:
        """SIGTERM the process group, SIGKILL after `grace_period` s. Safe to call twice."""
        container = self._containers.get(container_id)
        if container is None:
            return
        if self._check(container) is None:
            _signal_group(container, signal.SIGTERM)
            await self._ended_within(container, grace_period)
        if self._check(container) is None:
            await asyncio.to_thread(_kill_everything, container)
            if not await self._ended_within(container, KILL_SETTLE_TIMEOUT):
                log.warning("container %s survives SIGKILL", container_id)
        else:
            # The leader is gone; leave nothing of the tree behind.
            await asyncio.to_thread(_kill_everything, container)

    async def recover(self, sandboxes: dict[str, Path]) -> set[str]:
        """Re-attach to the containers whose sandboxes hold our `.lichen/` files."""
        host = await self._cgroup_host()
        found: set[str] = set()
        for container_id, sandbox in sandboxes.items():
            container = await asyncio.to_thread(_load, container_id, Path(sandbox).absolute(), host)
            if container is None:
                continue
            self._containers[container_id] = container
            found.add(container_id)
        return found

    async def destroy(self, container_id: str) -> None:
        """Kill what is left and remove the cgroups. Safe to call twice or for an unknown id."""
        container = self._containers.get(container_id)
        if container is not None:
            await self.kill(container_id, 0.0)
            self._check(container)            # record the termination before the cgroup goes
            if container.cgroup is not None:
                await asyncio.to_thread(container.cgroup.destroy)
            if container.popen is not None and container.popen.poll() is None:
                self._zombies.append(container.popen)
            del self._containers[container_id]
        else:
            host = await self._cgroup_host()
            if host is not None:
                await asyncio.to_thread(host.find(container_id).destroy)
        self._reap()

    # -- helpers beyond the protocol -------------------------------------------------------

    def pid(self, container_id: str) -> int | None:
        """The task's pid (= its process group id), once known."""
        container = self._containers.get(container_id)
        if container is None:
            return None
        if container.pgid is None:
            container.pgid = _read_int(container.meta / "pid")
        return container.pgid

    def ended(self, container_id: str) -> bool:
        """Whether the container has ended (or is unknown). Cheap and synchronous."""
        container = self._containers.get(container_id)
        return container is None or self._check(container) is not None

    def cgroup(self, container_id: str) -> cg.ContainerCgroup | None:
        container = self._containers.get(container_id)
        return None if container is None else container.cgroup

    # -- launching -------------------------------------------------------------------------

    async def _cgroup_host(self) -> cg.CgroupHost | None:
        if not self._host_detected:
            if self._use_cgroups:
                self._host = await asyncio.to_thread(cg.detect, self.cgroups_root)
            self._host_detected = True
        return self._host

    async def _ensure_wrapper(self) -> Path:
        async with self._wrapper_lock:
            if self._wrapper is None or not self._wrapper.exists():
                self._wrapper = await asyncio.to_thread(build_wrapper, self.work_dir / "bin")
            return self._wrapper

    def _start(self, spec: LaunchSpec, wrapper: Path, host: cg.CgroupHost | None) -> _Container:
        """Blocking: prepare the sandbox, create cgroups, start the wrapper."""
        sandbox = Path(spec.sandbox).absolute()
        meta = sandbox / _META
        try:
            meta.mkdir(exist_ok=True)
            for name in ("pid", "status", "termination.json", "container.json"):
                with contextlib.suppress(FileNotFoundError):
                    (meta / name).unlink()
            for name in ("stdout", "stderr"):
                (sandbox / name).touch()
        except OSError as e:
            raise LaunchError(f"cannot prepare sandbox {sandbox}: {e}") from e
        user = _effective_user(spec.user)
        if user is not None:
            _chown_sandbox(sandbox, user)

        cgroup: cg.ContainerCgroup | None = None
        if host is not None:
            try:
                cgroup = host.create(spec.container_id, cpus=spec.cpus, mem_mb=spec.mem_mb)
            except OSError as e:
                raise LaunchError(f"cannot create cgroups for '{spec.container_id}': {e}") from e

        argv = [str(wrapper), str(sandbox)]
        for procs in cgroup.procs_files() if cgroup is not None else []:
            argv += ["--cgroup-procs", str(procs)]
        if user is not None:
            argv += ["--user", user.pw_name]
        argv += ["--", *spec.argv]
        container = _Container(spec.container_id, sandbox, None, None, cgroup, spec.mem_mb)
        try:
            with open(meta / "wrapper.log", "ab") as wrapper_log:
                container.popen = subprocess.Popen(
                    argv,
                    env=spec.env,
                    cwd=sandbox,
                    stdin=subprocess.DEVNULL,
                    stdout=wrapper_log,
                    stderr=wrapper_log,
                    start_new_session=True,
                )
            container.wrapper_pid = container.popen.pid
            _write_json_atomic(meta / "container.json", _describe(container))
        except OSError as e:
            self._abort(container)
            raise LaunchError(f"cannot start '{spec.argv[0] if spec.argv else ''}': {e}") from e
        return container

    async def _await_pid(self, container: _Container) -> None:
        popen = container.popen
        assert popen is not None
        try:
            await self.files.wait(container.meta / "pid", PID_FILE_TIMEOUT, abandon=lambda: popen.poll() is not None)
        except TimeoutError:
            raise LaunchError(f"task wrapper for '{container.container_id}' did not start in time") from None
        container.pgid = _read_int(container.meta / "pid")
        if container.pgid is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(1)        # it ended before writing the pid: say how
            log_text = _read_text(container.meta / "wrapper.log").strip()
            raise LaunchError(
                f"task wrapper for '{container.container_id}' exited with status "
                f"{popen.returncode} before starting the task: {log_text}"
            )

    def _abort(self, container: _Container) -> None:
        """Blocking: undo a launch that failed half way."""
        if container.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.popen.pid, signal.SIGKILL)
            _kill_everything(container)
            with contextlib.suppress(subprocess.TimeoutExpired):
                container.popen.wait(timeout=5)
        if container.cgroup is not None:
            container.cgroup.destroy()

    # -- watching --------------------------------------------------------------------------

    def _get(self, container_id: str) -> _Container:
        try:
            return self._containers[container_id]
        except KeyError:
            raise KeyError(f"unknown container '{container_id}'") from None

    def _check(self, container: _Container) -> Termination | None:
        """The container's termination if it has ended, else None. Cheap: a few file reads."""
        self._reap()
        if container.termination is not None:
            return container.termination
        status = _read_int(container.meta / "status")
        if status is None:
            if _wrapper_alive(container):
                return None
            # The wrapper may have written the status just before exiting.
            status = _read_int(container.meta / "status")
        termination = _recorded_termination(container.meta)
        if termination is None:
            termination = _termination(status, container)
            with contextlib.suppress(OSError):
                _write_json_atomic(container.meta / "termination.json", asdict(termination))
        container.termination = termination
        self._release_wrapper(container)
        return termination

    def _release_wrapper(self, container: _Container) -> None:
        if container.popen is not None:
            if container.popen.poll() is None:
                self._zombies.append(container.popen)     # it exits right after the status
            container.popen = None
        elif container.wrapper_pid is not None:
            # A wrapper recovered from a sandbox may still be our child (same process).
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(container.wrapper_pid, os.WNOHANG)

    def _reap(self) -> None:
        self._zombies = [p for p in self._zombies if p.poll() is None]

    async def _ended_within(self, container: _Container, seconds: float) -> bool:
        deadline = time.monotonic() + max(0.0, seconds)
        while self._check(container) is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL)
        return True


# -- the wrapper binary ----------------------------------------------------------------------


def wrapper_source() -> bytes:
    return (importlib.resources.files("lichen.agent.containerizer") / "wrapper.c").read_bytes()


def build_wrapper(bin_dir: Path) -> Path:
    """Compile wrapper.c into `bin_dir/lichen-wrap-<hash>` unless it is there already."""
    source = wrapper_source()
    target = bin_dir / f"lichen-wrap-{hashlib.sha256(source).hexdigest()[:16]}"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise LaunchError("no C compiler (cc, gcc or clang) found to build the task wrapper")
    bin_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    src = bin_dir / f".wrapper-{tag}.c"
    tmp = bin_dir / f".lichen-wrap-{tag}"
    try:
        src.write_bytes(source)
        result = subprocess.run(
            [compiler, "-O2", "-o", str(tmp), str(src)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise LaunchError(f"compiling the task wrapper failed: {result.stderr.strip()}")
        os.replace(tmp, target)
    except OSError as e:
        raise LaunchError(f"cannot build the task wrapper in {bin_dir}: {e}") from e
    finally:
        for leftover in (src, tmp):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return target


# -- files and processes ---------------------------------------------------------------------


def _load(container_id: str, sandbox: Path, host: cg.CgroupHost | None) -> _Container | None:
    meta = sandbox / _META
    described = _read_json(meta / "container.json")
    pgid = _read_int(meta / "pid")
    if described is None and pgid is None and not (meta / "status").exists():
        return None
    described = described or {}
    cgroup: cg.ContainerCgroup | None = None
    if isinstance(described.get("cgroup"), dict):
        c = described["cgroup"]
        cgroup = cg.ContainerCgroup(
            c["version"],
            tuple(Path(d) for d in c["dirs"]),
            Path(c["cpu"]) if c.get("cpu") else None,
            Path(c["memory"]) if c.get("memory") else None,
        )
    elif host is not None:
        candidate = host.find(container_id)
        if any(d.exists() for d in candidate.dirs):
            cgroup = candidate
    return _Container(
        container_id, sandbox, described.get("wrapper_pid"), pgid, cgroup, described.get("mem_mb")
    )


def _describe(container: _Container) -> dict[str, object]:
    cgroup = container.cgroup
    return {
        "container_id": container.container_id,
        "wrapper_pid": container.wrapper_pid,
        "mem_mb": container.mem_mb,
        "cgroup": None
        if cgroup is None
        else {
            "version": cgroup.version,
            "dirs": [str(d) for d in cgroup.dirs],
            "cpu": str(cgroup.cpu) if cgroup.cpu else None,
            "memory": str(cgroup.memory) if cgroup.memory else None,
        },
    }


def _termination(status: int | None, container: _Container) -> Termination:
    oom = container.cgroup is not None and container.cgroup.oom_killed()
    exit_code: int | None = None
    sig: int | None = None
    if status is None:
        message = _NO_STATUS
    elif os.WIFEXITED(status):
        exit_code = os.WEXITSTATUS(status)
        message = f"Command exited with status {exit_code}"
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        message = f"Command terminated with signal {_signal_name(sig)}"
    else:
        message = f"Command ended with wait status {status}"
    if oom:
        message = "Memory limit exceeded: " + _memory_report(container)
    return Termination(exit_code=exit_code, signal=sig, oom_killed=oom, message=message)


def _memory_report(container: _Container) -> str:
    parts = []
    if container.mem_mb is not None:
        parts.append(f"Requested: {container.mem_mb:g}MB")
    peak = container.cgroup.memory_peak() if container.cgroup is not None else None
    if peak is not None:
        parts.append(f"Maximum Used: {peak // (1024 * 1024)}MB")
    return " ".join(parts) or "the task was killed by the kernel's OOM killer"


def _signal_name(sig: int) -> str:
    # Mesos uses strsignal(3): "Terminated", "Killed".
    try:
        return signal.strsignal(sig) or f"Unknown signal {sig}"
    except ValueError:
        return f"Unknown signal {sig}"


def _recorded_termination(meta: Path) -> Termination | None:
    data = _read_json(meta / "termination.json")
    if data is None:
        return None
    try:
        return Termination(
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            oom_killed=bool(data.get("oom_killed", False)),
            message=str(data.get("message", "")),
        )
    except (TypeError, AttributeError):
        return None


def _wrapper_alive(container: _Container) -> bool:
    if container.popen is not None:
        return container.popen.poll() is None
    if container.wrapper_pid is not None:
        return _is_our_wrapper(container.wrapper_pid, container.sandbox)
    # Recovered without container.json (the agent died mid-launch): go by the task's group.
    if container.pgid is None:
        container.pgid = _read_int(container.meta / "pid")
    return container.pgid is not None and any(g == container.pgid for _, g, _ in _processes())


def _is_our_wrapper(pid: int, sandbox: Path) -> bool:
    """Whether `pid` is a live (not zombie) lichen-wrap for this sandbox: pids get reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat[stat.rfind(")") + 2 :].startswith("Z"):
        return False
    return (
        len(cmdline) > 1
        and os.path.basename(cmdline[0]).startswith(b"lichen-wrap")
        and os.path.realpath(cmdline[1]) == os.path.realpath(os.fsencode(str(sandbox)))
    )


def _signal_group(container: _Container, sig: signal.Signals) -> None:
    if container.pgid is None:
        container.pgid = _read_int(container.meta / "pid")
    if container.pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(container.pgid, sig)


def _kill_everything(container: _Container) -> None:
    """Blocking: SIGKILL the task's process group, the rest of its session and its cgroups.

    Process and session ids are matched with care: a group or session id may be reused
    once all its members are gone, so a session match counts only while our wrapper is
    alive, and a group match only together with our session when we know it.
    """
    if container.pgid is None:
        container.pgid = _read_int(container.meta / "pid")
    pgid, sid = container.pgid, container.wrapper_pid
    wrapper_alive = sid is not None and _is_our_wrapper(sid, container.sandbox)
    for pid, member_pgid, member_sid in _processes():
        if pid == sid:
            continue                        # the wrapper must live to record the status
        in_group = pgid is not None and member_pgid == pgid and (sid is None or member_sid == sid)
        in_session = wrapper_alive and member_sid == sid
        if in_group or in_session:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if container.cgroup is not None:
        container.cgroup.kill_all()


def _processes() -> list[tuple[int, int, int]]:
    """(pid, process group id, session id) of every live process, from /proc."""
    found: list[tuple[int, int, int]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 4 or fields[0] == "Z":
            continue
        found.append((int(entry.name), int(fields[2]), int(fields[3])))
    return found


def _effective_user(user: str | None) -> pwd.struct_passwd | None:
    """The user to switch to: only when asked and only when we are root."""
    if user is None:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LaunchError(f"unknown user '{user}'") from None
    if os.geteuid() != 0:
        if entry.pw_uid != os.geteuid():
            log.debug("not root: running as %s instead of '%s'", os.geteuid(), user)
        return None
    return entry


def _chown_sandbox(sandbox: Path, user: pwd.struct_passwd) -> None:
    try:
        for root, dirs, files in os.walk(sandbox):
            if Path(root) == sandbox:
                dirs[:] = [d for d in dirs if d != _META]
            os.chown(root, user.pw_uid, user.pw_gid)
            for name in files:
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)
    except OSError as e:
        raise LaunchError(f"cannot give sandbox {sandbox} to user '{user.pw_name}': {e}") from e


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
