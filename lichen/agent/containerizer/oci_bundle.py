"""The OCI bundle's `config.json` for a task run from an image (pure).

Everything here is a function from values to values: which image a Mesos ContainerInfo
names, how the image's entrypoint/cmd/env/workdir/user merge with the task's command as
Docker merges them, and the runtime spec itself (mounts, namespaces, capabilities,
masked paths, cgroup limits). `oci.py` gathers the inputs (the image, the sandbox, the
mounted rootfs, `/etc/passwd` of the image) and writes what `build_config` returns.

Privilege defaults follow Docker's: its default capability set, `noNewPrivileges`,
its masked and read-only kernel paths, devices denied but for the runtime's defaults, and
a seccomp filter (`seccomp.py`) rendered for the container's capabilities. A privileged
container gets none of these, as in Docker.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lichen.agent.containerizer.seccomp import Policy

SANDBOX_PATH = "/mnt/mesos/sandbox"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PIDS_LIMIT = 4096

# Docker's default capability set (moby's oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
ALL_CAPABILITIES = DEFAULT_CAPABILITIES + (
    "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE", "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
# capabilities(7) numbers, for reading a CapBnd mask.
CAPABILITY_NUMBERS = {name: number for number, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
))}
# Docker's defaults (moby's oci/defaults.go).
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

NETWORK_MODES = ("HOST", "BRIDGE", "NONE", "USER")


class BundleError(ValueError):
    """The ContainerInfo or the image asks for something we cannot build; says what."""


@dataclass(frozen=True, slots=True)
class ImageRunConfig:
    """The parts of an image's config that decide how its process starts."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()            # "NAME=value"
    working_dir: str = ""
    user: str = ""                       # "", "name", "uid", "name:group", "uid:gid"


@dataclass(frozen=True, slots=True)
class Volume:
    host_path: str                       # absolute on the host
    container_path: str                  # absolute in the container
    readonly: bool


@dataclass(frozen=True, slots=True)
class UserIds:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class BundleSpec:
    """Everything `build_config` needs; paths are host paths unless named otherwise."""

    rootfs: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str                             # in the container
    user: UserIds
    sandbox: str
    cgroups_path: str
    network: str = "HOST"
    network_namespace: str | None = None  # a namespace to join (BRIDGE), else a new one
    hostname: str | None = None
    volumes: tuple[Volume, ...] = ()
    extra_binds: tuple[Volume, ...] = ()  # /etc/resolv.conf, /etc/hosts, ...
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    privileged: bool = False
    # The capabilities the runtime can grant (the agent's bounding set); None: any.
    available_capabilities: frozenset[str] | None = None
    seccomp: Policy | None = None        # None: unconfined (privileged containers always are)
    mask_paths_in_sandbox: tuple[str, ...] = field(default=(".lichen",))


# -- reading the ContainerInfo -------------------------------------------------------------


def image_name(container: Mapping[str, Any] | None) -> str | None:
    """The Docker image a Mesos ContainerInfo names, or None when it names none."""
    if not container:
        return None
    kind = container.get("type", "MESOS")
    if kind == "DOCKER":
        name = (container.get("docker") or {}).get("image")
    else:
        image = (container.get("mesos") or {}).get("image") or {}
        if image.get("type", "DOCKER") != "DOCKER":
            raise BundleError(f"image type '{image.get('type')}' is not supported (only DOCKER)")
        name = (image.get("docker") or {}).get("name")
    return str(name) if name else None


def force_pull(container: Mapping[str, Any]) -> bool:
    if container.get("type") == "DOCKER":
        return bool((container.get("docker") or {}).get("force_pull_image", False))
    image = (container.get("mesos") or {}).get("image") or {}
    return image.get("cached", True) is False


def network_mode(container: Mapping[str, Any]) -> str:
    """HOST, BRIDGE, NONE or USER. Mesos's default is HOST for both container types."""
    docker = container.get("docker") or {}
    mode = str(docker.get("network") or "HOST")
    if mode not in NETWORK_MODES:
        raise BundleError(f"unknown network mode '{mode}'")
    if container.get("type") != "DOCKER":
        # A MESOS container joins named networks through network_infos; without a CNI
        # plugin we have none to join, so it shares the host's (as Mesos does without).
        mode = "HOST"
    return mode


def privileged(container: Mapping[str, Any]) -> bool:
    return bool((container.get("docker") or {}).get("privileged", False))


def volumes(container: Mapping[str, Any], sandbox: str) -> tuple[Volume, ...]:
    """Host-path volumes; a relative host path is relative to the sandbox (Mesos)."""
    found: list[Volume] = []
    for i, v in enumerate(container.get("volumes") or []):
        target = str(v.get("container_path") or "")
        if not target:
            raise BundleError(f"volume {i} has no container_path")
        source = v.get("host_path")
        if source is None and v.get("source"):
            source_info = v["source"]
            if source_info.get("type") == "SANDBOX_PATH":
                source = (source_info.get("sandbox_path") or {}).get("path")
        if not source:
            raise BundleError(f"volume '{target}' has no host_path (image volumes are not supported)")
        source = str(source)
        if not source.startswith("/"):
            source = _within(sandbox, source, what=f"volume '{target}'")
        if not target.startswith("/"):
            # Mesos mounts relative container paths inside the sandbox.
            target = _within(SANDBOX_PATH, target, what=f"volume '{target}'")
        mode = str(v.get("mode", "RW"))
        if mode not in ("RO", "RW"):
            raise BundleError(f"volume '{target}' has unknown mode '{mode}'")
        found.append(Volume(source, posixpath.normpath(target), mode == "RO"))
    return tuple(found)


def _within(base: str, relative: str, *, what: str) -> str:
    joined = posixpath.normpath(posixpath.join(base, relative))
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise BundleError(f"{what}: path '{relative}' leaves the sandbox")
    return joined


# -- Docker's merge of image and task --------------------------------------------------------


def process_args(image: ImageRunConfig, argv: Sequence[str], shell: bool) -> tuple[str, ...]:
    """The container's argv, as Docker (and Mesos's docker runtime) merge them.

    A shell command runs as `/bin/sh -c CMD` in the image, replacing its entrypoint. With
    `shell: false` the task's value (argv[0]), when set, replaces the entrypoint and the
    arguments follow it; without a value the arguments (argv[1:]) replace the image's cmd
    after its entrypoint, and with neither the image's entrypoint + cmd run.
    """
    if shell:
        if len(argv) >= 3 and argv[2]:
            return tuple(argv)
        merged = image.entrypoint + image.cmd     # an empty shell command: the image's own
    elif argv and argv[0]:
        merged = tuple(argv)
    else:
        arguments = tuple(argv[1:])
        merged = image.entrypoint + (arguments or image.cmd)
    if not merged:
        raise BundleError("the task has no command and the image has neither entrypoint nor cmd")
    return merged


def process_env(image_env: Sequence[str], task_env: Mapping[str, str]) -> tuple[str, ...]:
    """The image's env, then the task's over it, MESOS_SANDBOX last; PATH if none set one."""
    merged: dict[str, str] = {}
    for entry in image_env:
        name, _, value = entry.partition("=")
        if name:
            merged[name] = value
    merged.update(task_env)
    merged["MESOS_SANDBOX"] = SANDBOX_PATH
    merged.setdefault("PATH", DEFAULT_PATH)
    return tuple(f"{k}={v}" for k, v in merged.items())


def task_only_env(env: Mapping[str, str], host_env: Mapping[str, str]) -> dict[str, str]:
    """Drop what the agent inherited from its own environment: it is not the task's.

    The agent hands containerizers the complete environment (its own plus the task's);
    in an image only the task's part belongs. MESOS_* variables naming host paths are
    rewritten by `process_env` (MESOS_SANDBOX) or dropped (MESOS_DIRECTORY).
    """
    kept = {k: v for k, v in env.items() if host_env.get(k) != v}
    kept.pop("MESOS_DIRECTORY", None)
    return kept


def working_dir(image: ImageRunConfig) -> str:
    cwd = image.working_dir or SANDBOX_PATH
    if not cwd.startswith("/"):
        raise BundleError(f"the image's working dir '{cwd}' is not absolute")
    # runc CVE-2024-21626: a cwd through /proc/self/fd reaches the host.
    if posixpath.normpath(cwd).startswith("/proc"):
        raise BundleError(f"the image's working dir '{cwd}' is under /proc")
    return posixpath.normpath(cwd)


def resolve_user(user: str, passwd: str, group: str) -> UserIds:
    """uid/gid for an image's `User` ("", "name", "uid", "name:group", "uid:gid"), reading the
    image's /etc/passwd and /etc/group text. Numeric ids need no entry, as in Docker."""
    if not user:
        user = "0"
    name, _, group_name = user.partition(":")
    users = _table(passwd)
    groups = _table(group)
    uid: int
    gid: int | None = None
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in users.values() if e[1] == name), None)
        if entry is not None and len(entry) > 2 and entry[2].isdigit():
            gid = int(entry[2])
        login = entry[0] if entry is not None else None
    elif name in users and len(users[name]) > 2 and users[name][1].isdigit():
        uid = int(users[name][1])
        gid = int(users[name][2]) if users[name][2].isdigit() else None
        login = name
    else:
        raise BundleError(f"user '{name}' is not in the image's /etc/passwd")
    if group_name:
        if group_name.isdigit():
            gid = int(group_name)
        elif group_name in groups and len(groups[group_name]) > 1 and groups[group_name][1].isdigit():
            gid = int(groups[group_name][1])
        else:
            raise BundleError(f"group '{group_name}' is not in the image's /etc/group")
    extra: list[int] = []
    if login is not None and not group_name:
        for g in groups.values():
            if len(g) > 2 and login in g[2].split(",") and g[1].isdigit() and int(g[1]) != gid:
                extra.append(int(g[1]))
    return UserIds(uid, gid if gid is not None else 0, tuple(extra))


def _table(text: str) -> dict[str, list[str]]:
    """name -> the remaining fields, skipping the password field (passwd and group)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) < 3 or fields[0].startswith("#"):
            continue
        out.setdefault(fields[0], [fields[0], *fields[2:]])
    return out


def capabilities_in(mask: int) -> frozenset[str]:
    """The capability names a CapBnd-style mask holds (bits lichen knows no name for are left out)."""
    return frozenset(name for name, number in CAPABILITY_NUMBERS.items() if mask >> number & 1)


def bounding_set(status: str) -> frozenset[str] | None:
    """The capabilities of a /proc/<pid>/status text's CapBnd line (None without one):
    what a runtime started by that process can grant a container. Docker gives a
    privileged container every capability; where the agent itself runs without some
    (a container host that dropped CAP_SYS_RESOURCE, say), the runtime cannot."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            try:
                return capabilities_in(int(line.split()[1], 16))
            except (IndexError, ValueError):
                return None
    return None


# -- the runtime spec ------------------------------------------------------------------------


def build_config(spec: BundleSpec) -> dict[str, Any]:
    """The OCI runtime spec (config.json) for `spec`."""
    caps = [c for c in (ALL_CAPABILITIES if spec.privileged else DEFAULT_CAPABILITIES)
            if spec.available_capabilities is None or c in spec.available_capabilities]
    process: dict[str, Any] = {
        "terminal": False,
        "user": {
            "uid": spec.user.uid,
            "gid": spec.user.gid,
            **({"additionalGids": list(spec.user.additional_gids)} if spec.user.additional_gids else {}),
        },
        "args": list(spec.args),
        "env": list(spec.env),
        "cwd": spec.cwd,
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": not spec.privileged,
    }
    namespaces = [{"type": t} for t in ("pid", "ipc", "mount")]
    if spec.network != "HOST":
        namespaces.append({"type": "network", **({"path": spec.network_namespace} if spec.network_namespace else {})})
        namespaces.append({"type": "uts"})        # as Docker: --net=host shares the hostname too
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": spec.cgroups_path,
        "resources": _resources(spec),
    }
    if not spec.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if spec.seccomp is not None:
            linux["seccomp"] = spec.seccomp.render(caps)
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": spec.rootfs, "readonly": False},
        "mounts": _mounts(spec),
        "linux": linux,
    }
    if spec.network != "HOST":
        config["hostname"] = spec.hostname or "lichen"
    return config


def _resources(spec: BundleSpec) -> dict[str, Any]:
    devices = [{"allow": spec.privileged, "access": "rwm"}]
    resources: dict[str, Any] = {"devices": devices}
    # cpu and memory are limited on the parent cgroup, not here (see oci.py): the memory
    # limit for OOM detection, the cpu quota once the runtime has created the container
    # (runc's own set-up, seccomp filter included, is not throttled by a small quota).
    if spec.pids_limit is not None:
        resources["pids"] = {"limit": spec.pids_limit}
    return resources


def _mounts(spec: BundleSpec) -> list[dict[str, Any]]:
    sys_options = ["nosuid", "noexec", "nodev", "ro"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        {"destination": SANDBOX_PATH, "type": "bind", "source": spec.sandbox, "options": ["bind", "rw"]},
    ]
    for hidden in spec.mask_paths_in_sandbox:
        # The agent's own files (the wrapper's exit status, the overlay's upper dir) live
        # in the sandbox; the task must neither read nor forge them.
        mounts.append({"destination": posixpath.join(SANDBOX_PATH, hidden), "type": "tmpfs",
                       "source": "tmpfs", "options": ["ro", "nosuid", "noexec", "nodev", "size=4k"]})
    for v in spec.extra_binds + spec.volumes:
        options = ["rbind", "ro" if v.readonly else "rw"]
        mounts.append({"destination": v.container_path, "type": "bind", "source": v.host_path, "options": options})
    return mounts
