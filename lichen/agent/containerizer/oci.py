"""The `oci` containerizer: tasks from Docker images, run by an OCI runtime (runc).

Theory of operation. `launch` gets the image from the image store, mounts an overlayfs
rootfs (the image's layers as lowerdirs, the upper and work dirs in the sandbox's
`.lichen/oci/`), creates the container's parent cgroup holding its memory limit, writes
the bundle's `config.json` (built by `oci_bundle.py`) and runs

    <runtime> --root <work_dir>/oci-state run --bundle <sandbox>/.lichen/oci/bundle <id>

under the process containerizer's wrapper (`lichen-wrap`): the runtime stays in the
foreground and its exit status is the container's, which the wrapper records in the
sandbox, so the status survives an agent restart exactly as for plain processes.

Files in `<sandbox>/.lichen/` (besides the wrapper's `pid`, `status`, ...):

    oci.json              written at launch: runtime id, image, rootfs, cgroup, mem_mb
    oci-network.json      BRIDGE only: the container's NetworkPlan (oci_network.py), read
                          back by `recover` to re-open its port proxies
    oci-termination.json  the container's Termination once known (with OOM), before
                          `destroy` removes the cgroup the OOM count lives in
    oci/                  upper/ work/ rootfs/ (the overlay mount point) bundle/

The memory limit sits on `<cgroups_root>/<container_id>`, the parent of the runtime's
cgroup (`.../ctr`): the runtime removes its own cgroup when the container ends, and the
kernel counts an OOM kill in the cgroup whose limit was hit, so the count survives until
`destroy`. The runtime binary runs from the host and is never mounted into the container;
the sandbox's `.lichen/` is hidden in the container under a read-only tmpfs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import inspect
import logging
import os
import re
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from lichen.agent.containerizer import cgroups as cg
from lichen.agent.containerizer import oci_bundle as ob
from lichen.agent.containerizer import oci_network as on
from lichen.agent.containerizer import seccomp as sc
from lichen.agent.containerizer.base import LaunchError, LaunchSpec, Termination
from lichen.agent.containerizer.process import ProcessContainerizer, _read_json, _write_json_atomic

log = logging.getLogger(__name__)

CREATE_TIMEOUT = 60.0   # seconds runc may take to create a container

RUNTIME_TIMEOUT = 30.0          # bound on one `runc kill/delete/state` call
KILL_SETTLE_TIMEOUT = 10.0
_META = ".lichen"
_RUNTIME_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
_PEAK_SLACK = 256 * 1024
_RUNTIME_ID = re.compile(r"^[\w+.-]{1,128}$")
_LIBC = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2
_AGENT_CAPABILITIES = ob.bounding_set(Path("/proc/self/status").read_text())


class ImageLike(Protocol):
    @property
    def layers(self) -> tuple[Path, ...]: ...

    @property
    def config(self) -> Any: ...            # entrypoint, cmd, env, working_dir, user


class ImageSource(Protocol):
    """The image store's surface this containerizer uses (lichen/agent/images/store.py)."""

    async def get(self, reference: str, *, force_pull: bool = False) -> Any:
        """The image, pulled or loaded when needed. Raises ImageError with a message."""

    def acquire(self, image: Any, container_id: str) -> Any:
        """Keep the image's layers while the container uses them (may be a coroutine)."""

    def release(self, container_id: str) -> Any:
        """The container no longer uses its image (may be a coroutine)."""


@dataclass(slots=True)
class _Oci:
    container_id: str
    runtime_id: str
    sandbox: Path
    rootfs: Path
    cgroup: cg.ContainerCgroup | None
    mem_mb: float | None
    network: on.NetworkPlan | None = None
    image: str = ""          # the image's reference, to hold it in the store after a restart

    @property
    def meta(self) -> Path:
        return self.sandbox / _META


class OciContainerizer:
    def __init__(
        self,
        work_dir: Path,
        images: ImageSource,
        *,
        runtime: str = "runc",
        cgroups_root: str = "lichen",
        allow_privileged: bool = False,
        pids_limit: int | None = ob.DEFAULT_PIDS_LIMIT,
        bridge: on.BridgeNetwork | None = None,
        seccomp_profile: str = sc.DEFAULT,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.images = images
        self.runtime = runtime
        self.cgroups_root = cgroups_root
        self.allow_privileged = allow_privileged
        self.pids_limit = pids_limit
        self.seccomp = sc.load_policy(seccomp_profile)   # raises SeccompError for a bad profile
        self.state_root = self.work_dir / "oci-state"
        self.bridge = bridge or on.BridgeNetwork()
        self._proxies = on.PortProxies()
        # The wrapper, its files and recovery are the process containerizer's; it runs the
        # runtime as a plain process (the runtime makes the container's cgroups itself).
        self._processes = ProcessContainerizer(self.work_dir, cgroups_root=cgroups_root, cgroups=False)
        self._containers: dict[str, _Oci] = {}
        self._host: cg.CgroupHost | None = None
        self._host_detected = False

    # -- the protocol ----------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> None:
        """Pull (or find) the image, build the bundle, start the runtime. Raises LaunchError;
        leaves nothing behind when it does."""
        try:
            name = ob.image_name(spec.container)
        except ob.BundleError as e:
            raise LaunchError(str(e)) from e
        if name is None:
            raise LaunchError(f"container '{spec.container_id}' names no image")
        runtime = shutil.which(self.runtime)
        if runtime is None:
            raise LaunchError(f"OCI runtime '{self.runtime}' not found")
        assert spec.container is not None
        try:
            image = await self.images.get(name, force_pull=ob.force_pull(spec.container))
        except Exception as e:  # ImageError and what a store may let through
            message = getattr(e, "message", None) or str(e) or type(e).__name__
            raise LaunchError(f"cannot get image '{name}': {message}") from e
        host = await self._cgroup_host()
        oci = await asyncio.to_thread(self._prepare, spec, image, host)
        self._containers[spec.container_id] = oci
        try:
            if oci.network is not None:
                await self._proxies.start(oci.network)
            await _maybe_await(self.images.acquire(image, spec.container_id))
            pid_file = _oci_dir(oci.sandbox) / "container.pid"
            pid_file.unlink(missing_ok=True)
            argv = [runtime, "--root", str(self.state_root), "run", "--pid-file", str(pid_file),
                     "--bundle", str(_oci_dir(oci.sandbox) / "bundle"), oci.runtime_id]
            await self._processes.launch(LaunchSpec(spec.container_id, oci.sandbox, argv, dict(_RUNTIME_ENV)))
            await self._until_created(spec.container_id, pid_file)
            if spec.cpus is not None and oci.cgroup is not None:
                try:
                    oci.cgroup.limit_cpu(spec.cpus)     # see _resources in oci_bundle.py
                except OSError as e:
                    raise LaunchError(f"cannot limit the cpus of '{spec.container_id}': {e}") from e
        except BaseException as e:
            self._containers.pop(spec.container_id, None)
            with contextlib.suppress(Exception):
                await self._processes.kill(spec.container_id, 0.0)   # a runc run that never created it
                await self._runtime("delete", "--force", oci.runtime_id)
            await self._proxies.stop(spec.container_id)
            await asyncio.to_thread(self._teardown, oci)
            with contextlib.suppress(Exception):
                await _maybe_await(self.images.release(spec.container_id))
            if isinstance(e, on.NetworkError):
                raise LaunchError(str(e)) from e
            raise

    async def wait(self, container_id: str) -> Termination:
        """Wait until the container ends. Raises KeyError for a container we do not know."""
        if container_id not in self._containers:
            raise KeyError(f"unknown container '{container_id}'")
        ended = await self._processes.wait(container_id)
        return self._termination(self._containers[container_id], ended)

    async def kill(self, container_id: str, grace_period: float) -> None:
        """`runc kill TERM`, then KILL to every process after `grace_period`. Safe to call twice."""
        oci = self._containers.get(container_id)
        if oci is None:
            return
        if not await self._ended_within(container_id, 0.0):
            await self._runtime("kill", oci.runtime_id, "TERM")
            if await self._ended_within(container_id, grace_period):
                return
            await self._runtime("kill", "--all", oci.runtime_id, "KILL")
            if oci.cgroup is not None:
                await asyncio.to_thread(oci.cgroup.kill_all)
            await self._ended_within(container_id, KILL_SETTLE_TIMEOUT)
        await self._processes.kill(container_id, 0.0)

    async def recover(self, sandboxes: dict[str, Path]) -> set[str]:
        """Re-attach to the containers whose sandboxes hold our `oci.json`."""
        ours: dict[str, Path] = {}
        for container_id, sandbox in sandboxes.items():
            oci = await asyncio.to_thread(_load, container_id, Path(sandbox).absolute())
            if oci is not None:
                self._containers[container_id] = oci
                ours[container_id] = oci.sandbox
        found = await self._processes.recover(ours) if ours else set()
        for container_id in set(ours) - found:
            # Launched, but the wrapper never started: nothing runs; clean up now.
            await self.destroy(container_id)
        for container_id in found:
            self._hold_image(container_id)
            plan = self._containers[container_id].network
            if plan is not None:
                try:
                    await self._proxies.start(plan)
                except on.NetworkError as e:
                    log.warning("cannot re-open the port proxies of %s: %s", container_id, e)
        return found

    def _hold_image(self, container_id: str) -> None:
        """A recovered container holds its image again, so garbage collection keeps its layers."""
        reference = self._containers[container_id].image
        cached = getattr(self.images, "cached", None)
        if not reference or cached is None:
            return
        with contextlib.suppress(Exception):
            image = cached(reference)
            if image is not None:
                self.images.acquire(image, container_id)

    async def destroy(self, container_id: str) -> None:
        """Kill what is left, delete the runtime's container, unmount the rootfs, remove the
        cgroups. Safe to call twice or for an unknown id."""
        oci = self._containers.get(container_id)
        if oci is None:
            await self._processes.destroy(container_id)
            return
        await self._proxies.stop(container_id)
        await self.kill(container_id, 0.0)
        with contextlib.suppress(KeyError):
            if await self._ended_within(container_id, 0.0):
                self._termination(oci, await self._processes.wait(container_id))
        await self._processes.destroy(container_id)
        await self._runtime("delete", "--force", oci.runtime_id)
        await asyncio.to_thread(self._teardown, oci)
        del self._containers[container_id]
        with contextlib.suppress(Exception):
            await _maybe_await(self.images.release(container_id))

    # -- launching -------------------------------------------------------------------------

    async def _cgroup_host(self) -> cg.CgroupHost | None:
        if not self._host_detected:
            self._host = await asyncio.to_thread(cg.detect, self.cgroups_root)
            self._host_detected = True
        return self._host

    def _prepare(self, spec: LaunchSpec, image: Any, host: cg.CgroupHost | None) -> _Oci:
        """Blocking: mount the rootfs, create the parent cgroup, write the bundle."""
        sandbox = Path(spec.sandbox).absolute()
        meta = sandbox / _META
        oci = _Oci(spec.container_id, runtime_id(spec.container_id), sandbox,
                   _oci_dir(sandbox) / "rootfs", None, spec.mem_mb, image=str(getattr(image, "reference", "")))
        container = spec.container or {}
        try:
            network = ob.network_mode(container)
            mappings = on.port_mappings(container) if network == "BRIDGE" else ()
            if network not in ("HOST", "NONE", "BRIDGE"):
                raise LaunchError(f"network mode '{network}' is not supported by the oci containerizer yet")
            wants_privilege = ob.privileged(container)
            if wants_privilege and not self.allow_privileged:
                raise LaunchError("privileged containers are not allowed on this agent (--allow-privileged)")
            volumes = ob.volumes(container, str(sandbox))
            image_config = _run_config(image.config)
            args = ob.process_args(image_config, spec.argv, spec.shell)
            cwd = ob.working_dir(image_config)
        except (ob.BundleError, on.NetworkError) as e:
            raise LaunchError(str(e)) from e
        try:
            meta.mkdir(exist_ok=True)
            for name in ("oci-termination.json", "oci.json", "oci-network.json"):
                with contextlib.suppress(FileNotFoundError):
                    (meta / name).unlink()
            for name in ("upper", "work", "rootfs", "bundle"):
                (_oci_dir(sandbox) / name).mkdir(parents=True, exist_ok=True)
            for name in ("stdout", "stderr"):
                (sandbox / name).touch()
        except OSError as e:
            raise LaunchError(f"cannot prepare sandbox {sandbox}: {e}") from e
        if host is None:
            raise LaunchError("the oci containerizer needs cgroups, and this host has none writable")
        try:
            _write_json_atomic(meta / "oci.json", _describe(oci))
            _mount_overlay(tuple(Path(p) for p in image.layers), _oci_dir(sandbox))
            oci.cgroup = host.create(spec.container_id, cpus=None, mem_mb=spec.mem_mb)
            _write_json_atomic(meta / "oci.json", _describe(oci))
            if network == "BRIDGE":
                oci.network = self.bridge.setup(spec.container_id, mappings)
                on.save_plan(meta / "oci-network.json", oci.network)
            user = ob.resolve_user(image_config.user, _image_file(oci.rootfs, "etc/passwd"),
                                   _image_file(oci.rootfs, "etc/group"))
            bundle = _oci_dir(sandbox) / "bundle"
            config = ob.build_config(ob.BundleSpec(
                rootfs=str(oci.rootfs),
                args=args,
                env=ob.process_env(image_config.env, ob.task_only_env(spec.env, os.environ)),
                cwd=cwd,
                user=user,
                sandbox=str(sandbox),
                cgroups_path=f"/{self.cgroups_root}/{spec.container_id}/ctr",
                network=network,
                network_namespace=oci.network.netns_path if oci.network is not None else None,
                hostname=oci.runtime_id[:12],
                volumes=volumes,
                extra_binds=_name_files(bundle, network, oci.runtime_id[:12],
                                        oci.network.address if oci.network is not None else None),
                pids_limit=self.pids_limit,
                privileged=wants_privilege,
                available_capabilities=_AGENT_CAPABILITIES,
                seccomp=self.seccomp,
            ))
            _write_json_atomic(bundle / "config.json", config)
        except (OSError, ob.BundleError, LaunchError, on.NetworkError) as e:
            self._teardown(oci)
            if isinstance(e, LaunchError):
                raise
            raise LaunchError(f"cannot prepare container '{spec.container_id}': {e}") from e
        return oci

    def _teardown(self, oci: _Oci) -> None:
        """Blocking: unmount the rootfs, remove every cgroup dir and the network of the container."""
        _unmount(oci.rootfs)
        if oci.network is not None:
            self.bridge.teardown(oci.network)
        if oci.cgroup is not None:
            oci.cgroup.destroy()
        _remove_cgroup_dirs(self.cgroups_root, oci.container_id)

    # -- watching --------------------------------------------------------------------------

    def _termination(self, oci: _Oci, ended: Termination) -> Termination:
        """The wrapper saw the runtime's status; add what the container's cgroup says."""
        recorded = _read_json(oci.meta / "oci-termination.json")
        if recorded is not None:
            with contextlib.suppress(TypeError):
                return Termination(**recorded)
        exit_code, sig, message = ended.exit_code, ended.signal, ended.message
        if exit_code is not None and 128 < exit_code < 128 + 65:
            # The runtime exits 128+N when the container's init died of signal N.
            sig = exit_code - 128
            exit_code = None
            message = f"Command terminated with signal {_signal_name(sig)}"
        oom = oci.cgroup is not None and (
            oci.cgroup.oom_killed() or (sig == signal.SIGKILL and _limit_hit(oci.cgroup)))
        if oom:
            parts = [f"Requested: {oci.mem_mb:g}MB"] if oci.mem_mb is not None else []
            peak = oci.cgroup.memory_peak() if oci.cgroup is not None else None
            if peak is not None:
                parts.append(f"Maximum Used: {peak // (1024 * 1024)}MB")
            message = "Memory limit exceeded: " + (" ".join(parts) or "the container was OOM-killed")
        termination = Termination(exit_code=exit_code, signal=sig, oom_killed=oom, message=message)
        with contextlib.suppress(OSError):
            _write_json_atomic(oci.meta / "oci-termination.json", asdict(termination))
        return termination

    async def _until_created(self, container_id: str, pid_file: Path) -> None:
        """Return once runc has created the container (its pid file exists), so that the
        agent's TASK_RUNNING means a running container; or once `runc run` has ended (the
        launch failed: wait() reports how). Woken by inotify, not by polling."""
        try:
            await self._processes.files.wait(pid_file, CREATE_TIMEOUT,
                                             abandon=lambda: self._processes.ended(container_id))
        except TimeoutError:
            raise LaunchError(f"the OCI runtime did not create the container within {CREATE_TIMEOUT:g}s") from None

    async def _ended_within(self, container_id: str, seconds: float) -> bool:
        try:
            async with asyncio.timeout(max(0.0, seconds) + 0.001):
                await self._processes.wait(container_id)
            return True
        except TimeoutError:
            return False
        except KeyError:
            return True

    async def _runtime(self, *args: str) -> None:
        argv = [self.runtime, "--root", str(self.state_root), *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=dict(_RUNTIME_ENV),
            )
        except OSError as e:
            log.warning("cannot run %s: %s", self.runtime, e)
            return
        try:
            async with asyncio.timeout(RUNTIME_TIMEOUT):
                _, err = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            log.warning("%s timed out", " ".join(argv))
            return
        if proc.returncode != 0:
            log.debug("%s: %s", " ".join(argv), err.decode(errors="replace").strip())


def runtime_id(container_id: str) -> str:
    """The runtime's id for a container: ours when the runtime accepts it, else a hash."""
    if _RUNTIME_ID.match(container_id):
        return container_id
    return "lichen-" + hashlib.sha256(container_id.encode()).hexdigest()[:32]


# -- files, mounts, cgroups ------------------------------------------------------------------


def _oci_dir(sandbox: Path) -> Path:
    return sandbox / _META / "oci"


def _run_config(config: Any) -> ob.ImageRunConfig:
    return ob.ImageRunConfig(
        entrypoint=tuple(getattr(config, "entrypoint", ()) or ()),
        cmd=tuple(getattr(config, "cmd", ()) or ()),
        env=tuple(getattr(config, "env", ()) or ()),
        working_dir=str(getattr(config, "working_dir", "") or ""),
        user=str(getattr(config, "user", "") or ""),
    )


def _mount_overlay(layers: tuple[Path, ...], oci_dir: Path) -> None:
    if not layers:
        raise LaunchError("the image has no layers")
    # overlayfs lists lowerdirs top first; the store gives them lowest first.
    lower = ":".join(str(p) for p in reversed(layers))
    options = f"lowerdir={lower},upperdir={oci_dir / 'upper'},workdir={oci_dir / 'work'}"
    # mount(2) itself: the mount(8) binary costs a fork and exec per launch.
    target = os.fsencode(str(oci_dir / "rootfs"))
    if _LIBC.mount(b"overlay", target, b"overlay", 0, os.fsencode(options)) != 0:
        err = ctypes.get_errno()
        raise LaunchError(f"cannot mount the container's rootfs: {os.strerror(err)} ({len(layers)} layers)")


def _is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and fields[4].replace("\\040", " ") == target:
            return True
    return False


def _unmount(path: Path) -> None:
    target = os.fsencode(str(path))
    for _ in range(10):
        if not _is_mounted(path):
            return
        if _LIBC.umount2(target, 0) != 0:
            # Busy: detach it; the kernel frees it once the last user is gone.
            _LIBC.umount2(target, _MNT_DETACH)
    if _is_mounted(path):
        log.warning("cannot unmount %s", path)


def _remove_cgroup_dirs(root: str, container_id: str) -> None:
    """Remove `<root>/<container_id>` (and the runtime's `ctr` below it) in every hierarchy:
    the runtime creates its cgroup in controllers our cgroups module does not use."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        fields = line.split()
        if " - cgroup" not in line or len(fields) < 5:
            continue
        base = Path(fields[4]) / root / container_id
        for d in (base / "ctr", base):
            if d.is_dir():
                cg.ContainerCgroup(1, (d,), None, None).destroy()


def _image_file(rootfs: Path, relative: str) -> str:
    """A file of the image read from the host, refusing symlinks that leave the rootfs."""
    path = rootfs / relative
    real = os.path.realpath(path)
    if not real.startswith(os.path.realpath(rootfs) + os.sep):
        return ""
    try:
        return Path(real).read_text(errors="replace")
    except OSError:
        return ""


def _name_files(bundle: Path, network: str, hostname: str, address: str | None) -> tuple[ob.Volume, ...]:
    """/etc/hosts, /etc/resolv.conf and /etc/hostname for the container, as Docker makes
    them: copies, never the host's files. HOST networking gets the host's hosts and
    resolv.conf; a namespace of its own gets localhost and its own name (and address),
    and the host's resolvers less those on loopback."""
    binds: list[ob.Volume] = []
    files: dict[str, str] = {}
    if network == "HOST":
        for name in ("hosts", "resolv.conf"):
            with contextlib.suppress(OSError):
                files[name] = (Path("/etc") / name).read_text()
    else:
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        files["hosts"] = hosts + (f"{address}\t{hostname}\n" if address else f"127.0.1.1\t{hostname}\n")
        host_resolv = ""
        with contextlib.suppress(OSError):
            host_resolv = Path("/etc/resolv.conf").read_text()
        files["resolv.conf"] = on.resolv_conf(host_resolv)
        files["hostname"] = hostname + "\n"
    for name, text in files.items():
        copy = bundle / name
        copy.write_text(text)
        binds.append(ob.Volume(str(copy), f"/etc/{name}", True))
    return tuple(binds)


def _describe(oci: _Oci) -> dict[str, Any]:
    cgroup = oci.cgroup
    return {
        "container_id": oci.container_id,
        "runtime_id": oci.runtime_id,
        "image": oci.image,
        "rootfs": str(oci.rootfs),
        "mem_mb": oci.mem_mb,
        "cgroup": None if cgroup is None else {
            "version": cgroup.version,
            "dirs": [str(d) for d in cgroup.dirs],
            "cpu": str(cgroup.cpu) if cgroup.cpu else None,
            "memory": str(cgroup.memory) if cgroup.memory else None,
        },
    }


def _load(container_id: str, sandbox: Path) -> _Oci | None:
    data = _read_json(sandbox / _META / "oci.json")
    if data is None:
        return None
    cgroup = None
    if isinstance(data.get("cgroup"), dict):
        c = data["cgroup"]
        cgroup = cg.ContainerCgroup(
            c["version"], tuple(Path(d) for d in c["dirs"]),
            Path(c["cpu"]) if c.get("cpu") else None, Path(c["memory"]) if c.get("memory") else None,
        )
    return _Oci(container_id, str(data.get("runtime_id") or runtime_id(container_id)), sandbox,
                Path(data.get("rootfs") or _oci_dir(sandbox) / "rootfs"), cgroup, data.get("mem_mb"),
                on.load_plan(sandbox / _META / "oci-network.json"), str(data.get("image") or ""))


def _limit_hit(cgroup: cg.ContainerCgroup) -> bool:
    """Whether the memory limit on the container's parent cgroup was hit.

    cgroup v1 counts an OOM kill in the victim's own cgroup, the runtime's, which is gone
    by now; the parent keeps the peak usage. A SIGKILLed container whose limit was hit
    was killed by the OOM killer (the agent's own kills go through `runc kill`, after
    which nothing charges memory any more).
    """
    if cgroup.memory is None or cgroup.version != 1:
        return False
    limit, peak = cgroup.memory_limit(), cgroup.memory_peak()
    if limit is None or peak is None:
        return False
    # Recent kernels keep memory.failcnt at 0 here; the peak reaching the limit tells.
    return peak >= limit - _PEAK_SLACK


def _signal_name(sig: int) -> str:
    try:
        return signal.strsignal(sig) or f"Unknown signal {sig}"
    except ValueError:
        return f"Unknown signal {sig}"


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
