"""Per-container cgroups: cpu and memory limits, process tracking, OOM detection.

`detect(root_name)` looks at the host once and returns a `CgroupHost` (v1 controllers,
or a pure v2 unified hierarchy), or None when neither is there or writable; the
containerizer then runs plain processes. Each container gets
`<controller mount>/<root_name>/<container_id>` in every controller used. The paths are
a function of the container id, so an agent restarted with the same `cgroups_root` finds
them again with `CgroupHost.find`.

Everything here blocks (small file writes, a kill loop); callers run it in a thread.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger(__name__)
_warned = False             # the "no cgroups" warning is logged once per process

CGROUP_MOUNT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2

# The v1 controllers a container joins, and the one whose cgroup.procs lists its processes.
_V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
_V2_CONTROLLERS = ("cpu", "memory", "pids")


@dataclass(frozen=True, slots=True)
class ContainerCgroup:
    """One container's cgroups (one directory per v1 hierarchy, one under v2)."""

    version: Literal[1, 2]
    dirs: tuple[Path, ...]
    cpu: Path | None
    memory: Path | None

    def procs_files(self) -> list[Path]:
        """The cgroup.procs files the container's first process writes its pid to."""
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            found |= _read_pids(d / "cgroup.procs")
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this container."""
        if self.memory is None:
            return False
        if self.version == 2:
            return _read_keyed(self.memory / "memory.events").get("oom_kill", 0) > 0
        control = _read_keyed(self.memory / "memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        # Kernels before 4.13 have no count; a hit limit is the best sign there is.
        return _read_int(self.memory / "memory.failcnt") not in (None, 0)

    def memory_peak(self) -> int | None:
        """Most memory the container used, in bytes, when the kernel tracks it."""
        if self.memory is None:
            return None
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return _read_int(self.memory / name)

    def memory_limit(self) -> int | None:
        if self.memory is None:
            return None
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        return _read_int(self.memory / name)

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroups until they are empty (or `timeout` passes)."""
        if self.version == 2 and self.dirs:
            try:
                (self.dirs[0] / "cgroup.kill").write_text("1\n")
            except OSError:
                pass  # before 5.14: fall back to the loop below
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                log.warning("processes %s survive SIGKILL in %s", sorted(pids), self.dirs)
                return
            time.sleep(0.01)

    def limit_cpu(self, cpus: float) -> None:
        """Shares (weight) and a CFS quota for `cpus`. Raises OSError."""
        if self.cpu is None:
            return
        if self.version == 1:
            _write(self.cpu / "cpu.shares", cpu_shares(cpus))
            _write(self.cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
            _write(self.cpu / "cpu.cfs_quota_us", cfs_quota_us(cpus))
        else:
            _write(self.cpu / "cpu.weight", cpu_weight(cpu_shares(cpus)))
            (self.cpu / "cpu.max").write_text(f"{cfs_quota_us(cpus)} {CFS_PERIOD_US}\n")

    def destroy(self) -> None:
        """Kill what is left in the cgroups and remove them. Safe to call twice."""
        existing = [d for d in self.dirs if d.exists()]
        if not existing:
            return
        self.kill_all()
        for d in existing:
            _rmdir_retrying(d)


class CgroupHost(Protocol):
    version: Literal[1, 2]

    def create(self, container_id: str, *, cpus: float | None, mem_mb: float | None) -> ContainerCgroup:
        """Create the container's cgroups and apply the limits. Raises OSError; leaves
        nothing behind when it does."""

    def find(self, container_id: str) -> ContainerCgroup:
        """The container's cgroups (whether or not they still exist)."""


def cpu_shares(cpus: float) -> int:
    return max(MIN_CPU_SHARES, int(cpus * CPU_SHARES_PER_CPU))


def cpu_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for a v1 cpu.shares value (the kernel's and systemd's mapping)."""
    return max(1, min(10_000, 1 + ((shares - 2) * 9999) // 262142))


def cfs_quota_us(cpus: float) -> int:
    # The kernel refuses quotas under 1 ms.
    return max(1000, int(cpus * CFS_PERIOD_US))


def mem_bytes(mem_mb: float) -> int:
    return int(mem_mb * 1024 * 1024)


class CgroupsV1:
    version: Literal[1, 2] = 1

    def __init__(self, mounts: dict[str, Path], root_name: str) -> None:
        self.mounts = mounts              # controller -> mount point
        self.root_name = root_name

    def _dirs(self, container_id: str) -> dict[str, Path]:
        return {c: m / self.root_name / container_id for c, m in self.mounts.items()}

    def find(self, container_id: str) -> ContainerCgroup:
        dirs = self._dirs(container_id)
        unique = tuple(dict.fromkeys(dirs.values()))
        return ContainerCgroup(1, unique, dirs.get("cpu"), dirs.get("memory"))

    def create(self, container_id: str, *, cpus: float | None, mem_mb: float | None) -> ContainerCgroup:
        cgroup = self.find(container_id)
        try:
            for d in cgroup.dirs:
                d.mkdir(parents=True, exist_ok=True)
            if cpus is not None:
                cgroup.limit_cpu(cpus)
            if mem_mb is not None and cgroup.memory is not None:
                limit = mem_bytes(mem_mb)
                _write(cgroup.memory / "memory.limit_in_bytes", limit)
                memsw = cgroup.memory / "memory.memsw.limit_in_bytes"
                if memsw.exists():        # only with swap accounting
                    _write(memsw, limit)
        except OSError:
            cgroup.destroy()
            raise
        return cgroup


class CgroupsV2:
    version: Literal[1, 2] = 2

    def __init__(self, mount: Path, root_name: str) -> None:
        self.mount = mount
        self.root_name = root_name
        self._enabled = False

    def find(self, container_id: str) -> ContainerCgroup:
        d = self.mount / self.root_name / container_id
        controllers = _available_v2(self.mount)
        return ContainerCgroup(
            2, (d,), d if "cpu" in controllers else None, d if "memory" in controllers else None
        )

    def _enable_controllers(self) -> None:
        # Controllers must be enabled in every ancestor's subtree_control; our root
        # holds no processes itself, as v2 requires.
        if self._enabled:
            return
        root = self.mount / self.root_name
        root.mkdir(exist_ok=True)
        wanted = [c for c in _V2_CONTROLLERS if c in _available_v2(self.mount)]
        for parent in (self.mount, root):
            enabled = set(_read_words(parent / "cgroup.subtree_control"))
            missing = [c for c in wanted if c not in enabled]
            if missing:
                (parent / "cgroup.subtree_control").write_text(" ".join("+" + c for c in missing))
        self._enabled = True

    def create(self, container_id: str, *, cpus: float | None, mem_mb: float | None) -> ContainerCgroup:
        self._enable_controllers()
        cgroup = self.find(container_id)
        try:
            cgroup.dirs[0].mkdir(exist_ok=True)
            if cpus is not None:
                cgroup.limit_cpu(cpus)
            if mem_mb is not None and cgroup.memory is not None:
                _write(cgroup.memory / "memory.max", mem_bytes(mem_mb))
                swap = cgroup.memory / "memory.swap.max"
                if swap.exists():
                    _write(swap, 0)
        except OSError:
            cgroup.destroy()
            raise
        return cgroup


def detect(root_name: str, mount: Path = CGROUP_MOUNT) -> CgroupHost | None:
    """The host's cgroups if we can use them (v1 preferred where mounted), else None."""
    global _warned
    host: CgroupHost | None = None
    v1 = _v1_mounts()
    if "memory" in v1 or "cpu" in v1:
        host = CgroupsV1(v1, root_name)
    elif (mount / "cgroup.controllers").exists():
        host = CgroupsV2(mount, root_name)
    reason = "no cgroups on this host"
    if host is not None:
        try:
            _probe(host, root_name)
            return host
        except OSError as e:
            reason = f"cgroups not writable ({e})"
    if not _warned:
        log.warning("%s: containers run as plain processes, without cpu/memory limits", reason)
        _warned = True
    return None


def remove_root(root_name: str, mount: Path = CGROUP_MOUNT) -> None:
    """Kill everything under `<mount>/<root_name>` in every hierarchy and remove it.

    For test teardown and operators: an agent never calls it (agents may share a root).
    """
    mounts = list(_v1_mounts().values())
    for unified in (mount, mount / "unified"):
        if (unified / "cgroup.controllers").exists():
            mounts.append(unified)
    for m in dict.fromkeys(mounts):
        base = m / root_name
        if not base.is_dir():
            continue
        for child in base.iterdir():
            if child.is_dir():
                ContainerCgroup(1, (child,), None, None).destroy()
        _rmdir_retrying(base)


def _probe(host: CgroupHost, root_name: str) -> None:
    if isinstance(host, CgroupsV1):
        for m in host.mounts.values():
            (m / root_name).mkdir(exist_ok=True)
            if not os.access(m / root_name, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable", str(m / root_name))
    elif isinstance(host, CgroupsV2):
        host._enable_controllers()


def _v1_mounts() -> dict[str, Path]:
    mounts: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return mounts
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[2] != "cgroup":
            continue
        options = set(fields[3].split(","))
        for c in _V1_CONTROLLERS:
            if c in options and c not in mounts:
                mounts[c] = Path(fields[1])
    return mounts


def _available_v2(mount: Path) -> set[str]:
    return set(_read_words(mount / "cgroup.controllers"))


def _write(path: Path, value: int) -> None:
    path.write_text(f"{value}\n")


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _read_pids(path: Path) -> set[int]:
    return {int(w) for w in _read_words(path) if w.isdigit()}


def _rmdir_retrying(d: Path, timeout: float = 2.0) -> None:
    # A just-killed process may take a moment to leave the cgroup (EBUSY).
    deadline = time.monotonic() + timeout
    while True:
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("cannot remove cgroup %s: %s", d, e)
                return
            time.sleep(0.01)
