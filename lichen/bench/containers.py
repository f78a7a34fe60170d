"""`lichen bench containers`: container launch latency on the oci containerizer.

Everything runs for real, side by side in one run:

- a busybox image (built here from the host's static busybox) is pushed with skopeo to
  Debian's `docker-registry` on loopback;
- a real `lichen master` and a real `lichen agent --containerizers process,oci` run as
  child processes with their own work dirs; one warm-up launch pulls the image onto the
  agent (its time is reported as `cold_busybox_ms`);
- a minimal v1 scheduler launches N tasks `sleep 3600` in that image one at a time,
  timing ACCEPT -> TASK_RUNNING (`oci_p50_ms`, `oci_p99_ms`) and ACCEPT -> the agent's
  `runc state` saying the container runs (`oci_started_p50_ms`: the agent sends
  TASK_RUNNING once `runc run` is spawned, before the container is up), then N in one ACCEPT
  (`launches_per_s`: N over the time from that ACCEPT to the last TASK_RUNNING);
- the bare baseline: the image's layers unpacked once into a bundle rootfs (`runc spec`,
  args `sleep 3600`, host network), then N x `runc run -d` timed until `runc state` says
  running (each deleted with `runc delete -f` before the next);
- `docker run -d` of the same image, loaded from the same OCI layout (skopeo to a
  docker-archive, loaded through the API: nothing is pulled), on the engine at
  `docker_socket` (or DOCKER_HOST) when one answers, else on a private engine started here
  (`lichen.bench.dockerd`, after the oci and runc runs, stopped at the end); one untimed
  warm-up, then N x the `docker` CLI's `run -d --network host ... sleep 3600` (what a
  docker user waits for: it returns once the engine has started the container, checked
  untimed with inspect), each removed before the next (`docker_p50_ms`, `docker_p99_ms`,
  `docker_over_oci`: docker p50 over oci p50). `no_docker` skips it (all null);
- a cold pull-and-run of a 5-layer image from the same registry (`cold_5_layers_ms`).

Everything started is stopped at the end, failure or not: tasks killed, runc containers
deleted, overlays unmounted (`lichen.cli.up.kill_tasks`), processes terminated, the
private engine stopped with its containerd and containers (it never creates docker0).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from lichen.bench.dockerd import convert_layout, dockerd_available, load_archive, start_dockerd
from lichen.bench.launch import V1Scheduler
from lichen.bench.marathon import _percentile, _start, _stop
from lichen.errors import InvalidRequest

TASK_CPUS = 0.01
TASK_MEM = 32.0
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "true", "echo", "cat", "ls")
_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
             "TASK_GONE", "TASK_GONE_BY_OPERATOR"}


# --- the image ------------------------------------------------------------------------

def _tar(entries: list[tuple[str, bytes | None, str | None, int]]) -> bytes:
    """An uncompressed, deterministic layer tar of (name, content or None, symlink target, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, link, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 0
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def busybox_layers(extra: int = 0) -> list[bytes]:
    """The busybox layer, plus `extra` small layers of one file each."""
    base: list[tuple[str, bytes | None, str | None, int]] = [
        ("bin", None, None, 0o755), ("etc", None, None, 0o755), ("tmp", None, None, 0o1777),
        ("bin/busybox", BUSYBOX.read_bytes(), None, 0o755),
        *((f"bin/{a}", None, "busybox", 0o777) for a in APPLETS),
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", None, 0o644),
        ("etc/group", b"root:x:0:\n", None, 0o644),
    ]
    layers = [_tar(base)]
    for i in range(extra):
        layers.append(_tar([("opt", None, None, 0o755), (f"opt/layer{i}", os.urandom(64 * 1024), None, 0o644)]))
    return layers


def write_layout(layout: Path, tag: str, layers: list[bytes]) -> None:
    """An OCI image layout dir holding one image of `layers` (lowest first) tagged `tag`."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def put(blob: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(blob).hexdigest()
        (blobs / digest).write_bytes(blob)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(blob)}

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = {"architecture": arch, "os": "linux",
              "config": {"Cmd": ["sh"], "Env": [_PATH_ENV]},
              "rootfs": {"type": "layers",
                         "diff_ids": [f"sha256:{hashlib.sha256(t).hexdigest()}" for t in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": put(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
                "layers": [put(gzip.compress(t, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
                           for t in layers]}
    descriptor = put(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))


# --- the registry ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_registry(work_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    work_dir.mkdir(parents=True)
    addr = f"127.0.0.1:{_free_port()}"
    config = work_dir / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {work_dir / 'storage'}\nhttp:\n  addr: {addr}\n")
    with open(work_dir / "registry.log", "ab") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited; see {work_dir}/registry.log")
        with contextlib.suppress(OSError), socket.create_connection(addr.split(":"), timeout=1):  # type: ignore[arg-type]
            return proc, addr
        time.sleep(0.05)
    _stop_group(proc)
    raise RuntimeError("docker-registry did not start within 20 s")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _push(layout: Path, tag: str, dest: str) -> None:
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:{tag}", f"docker://{dest}"], check=True, capture_output=True, timeout=120)


# --- the scheduler --------------------------------------------------------------------

class _Scheduler(V1Scheduler):
    """Offers to a queue, TASK_RUNNING times per task id."""

    def __init__(self, master: str, session: aiohttp.ClientSession) -> None:
        super().__init__(master, session, {"user": "root", "name": "bench-containers"})
        self.subscribed = asyncio.Event()
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.running: dict[str, float] = {}
        self.ended: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "SUBSCRIBED":
            self.subscribed.set()
        elif kind == "OFFERS":
            for offer in event["offers"]["offers"]:
                self.offers.put_nowait(offer)
        elif kind == "UPDATE":
            status = event["update"]["status"]
            task_id = status["task_id"]["value"]
            if status["state"] == "TASK_RUNNING":
                self.running.setdefault(task_id, time.perf_counter())
            elif status["state"] in _TERMINAL:
                self.ended[task_id] = f"{status['state']}: {status.get('message', '')}"
            if "uuid" in status:
                asyncio.get_running_loop().create_task(self._ack(status))
            self.changed.set()

    async def _ack(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):        # after TEARDOWN the master knows us no more
            await self.acknowledge(status)

    async def wait_for(self, done: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    async def launch(self, image: str, task_ids: list[str]) -> float:
        """ACCEPT the next offer with `task_ids` in `image`; returns when the ACCEPT was sent."""
        offer = await asyncio.wait_for(self.offers.get(), 60)
        res = {"cpus": TASK_CPUS, "mem": TASK_MEM}
        task_res = [{"name": k, "type": "SCALAR", "scalar": {"value": v}} for k, v in res.items()]
        container = {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": image}}}}
        infos = [{"name": t, "task_id": {"value": t}, "agent_id": offer["agent_id"], "resources": task_res,
                  "command": {"value": "sleep 3600"}, "container": container} for t in task_ids]
        sent = time.perf_counter()
        await self.launch_tasks(offer, infos)
        return sent

    async def run_until_running(self, image: str, task_ids: list[str], timeout: float) -> float:
        """Launch `task_ids` in one ACCEPT; seconds from the ACCEPT to the last TASK_RUNNING."""
        sent = await self.launch(image, task_ids)

        def done() -> bool:
            failed = [f"{t}: {self.ended[t]}" for t in task_ids if t in self.ended]
            if failed:
                raise RuntimeError(f"task did not run: {failed[0]}")
            return all(t in self.running for t in task_ids)

        await self.wait_for(done, timeout)
        return max(self.running[t] for t in task_ids) - sent

    async def run_until_started(self, image: str, task_id: str, state_root: Path) -> tuple[float, float]:
        """Launch one task; seconds from the ACCEPT to its TASK_RUNNING, and to `runc state`
        (in the agent's runtime state dir) saying its container is running."""
        before = set(_listdir(state_root))
        elapsed = await self.run_until_running(image, [task_id], 60)
        sent = self.running[task_id] - elapsed
        deadline = time.monotonic() + 30
        while True:
            new = set(_listdir(state_root)) - before
            if len(new) == 1 and await _runc_status(state_root, new.pop()) == "running":
                return elapsed, time.perf_counter() - sent
            if time.monotonic() > deadline:
                raise RuntimeError(f"the container of {task_id} is not running 30 s after TASK_RUNNING")
            await asyncio.sleep(0.001)

    async def kill_all(self) -> None:
        live = [t for t in self.running if t not in self.ended]
        for t in live:
            with contextlib.suppress(Exception):
                await self.call({"type": "KILL", "kill": {"task_id": {"value": t}}})
        with contextlib.suppress(TimeoutError):
            await self.wait_for(lambda: all(t in self.ended for t in live), 60)
        with contextlib.suppress(Exception):
            await self.call({"type": "TEARDOWN"})


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


async def _runc_status(state_root: Path, runtime_id: str) -> str | None:
    """`runc state`'s status of one container under `state_root`, None while it has none."""
    proc = await asyncio.create_subprocess_exec("runc", "--root", str(state_root), "state", runtime_id,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return str(json.loads(out)["status"]) if proc.returncode == 0 and out else None


async def _oci(master: str, busybox: str, five_layers: str, launches: int, state_root: Path) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        sched = _Scheduler(master, session)
        runner = asyncio.get_running_loop().create_task(sched.run())
        try:
            await asyncio.wait_for(sched.subscribed.wait(), 30)
            cold_busybox = await sched.run_until_running(busybox, ["warm-up"], 300)
            pairs = [await sched.run_until_started(busybox, f"one-{i}", state_root) for i in range(launches)]
            latencies = [p[0] for p in pairs]
            started = [p[1] for p in pairs]
            burst = await sched.run_until_running(busybox, [f"burst-{i}" for i in range(launches)], 600)
            cold_five = await sched.run_until_running(five_layers, ["cold-5-layers"], 300)
            return {"cold_busybox_ms": round(cold_busybox * 1000, 1),
                    "oci_p50_ms": round(_percentile(latencies, 50) * 1000, 1),
                    "oci_p99_ms": round(_percentile(latencies, 99) * 1000, 1),
                    "oci_started_p50_ms": round(_percentile(started, 50) * 1000, 1),
                    "oci_started_p99_ms": round(_percentile(started, 99) * 1000, 1),
                    "launches_per_s": round(launches / burst, 1),
                    "cold_5_layers_ms": round(cold_five * 1000, 1)}
        finally:
            await sched.kill_all()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner


# --- bare runc and docker -------------------------------------------------------------

def _bare_runc(work_dir: Path, layers: list[bytes], launches: int,
               cgroups_root: str) -> tuple[list[float], list[float]]:
    """Seconds of each `runc run -d` until `runc state` says running, and of the run alone."""
    bundle = work_dir / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            tar.extractall(rootfs)  # our own layer
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sleep", "3600"]
    config["process"]["env"] = [_PATH_ENV]
    config["root"] = {"path": str(rootfs), "readonly": False}
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
    state = work_dir / "state"
    timings: list[float] = []
    run_only: list[float] = []
    for i in range(launches):
        cid = f"lichen-bench-bare-{os.getpid()}-{i}"
        config["linux"]["cgroupsPath"] = f"/{cgroups_root}/{cid}"
        (bundle / "config.json").write_text(json.dumps(config))
        started = time.perf_counter()
        try:
            subprocess.run(["runc", "--root", str(state), "run", "-d", "--bundle", str(bundle), cid],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            run_only.append(time.perf_counter() - started)
            while True:
                out = subprocess.run(["runc", "--root", str(state), "state", cid], check=True,
                                     capture_output=True, timeout=30).stdout
                if json.loads(out)["status"] == "running":
                    break
            timings.append(time.perf_counter() - started)
        finally:
            subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], check=False, capture_output=True, timeout=30)
    return timings, run_only


def _remove_cgroups(name: str) -> None:
    """Remove the (empty) cgroup dirs `name` and below, in every hierarchy (v1 and v2)."""
    base = Path("/sys/fs/cgroup")
    for top in [base / name, *(h / name for h in base.iterdir() if h.is_dir())]:
        if not top.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _docker_answers(host: str) -> bool:
    probe = subprocess.run(["docker", "-H", host, "version", "--format", "{{.Server.Version}}"],
                           check=False, capture_output=True, timeout=10)
    return probe.returncode == 0


def _docker_engine(docker_socket: str | None, no_docker: bool, cgroups_root: str,
                   stack: contextlib.ExitStack) -> tuple[str | None, str | None]:
    """The engine to time `docker run` on, and whether it is "external" or "private".

    An explicit `docker_socket` must answer (InvalidRequest otherwise). DOCKER_HOST is used
    when it answers; else a private engine is started (stopped by `stack`) when dockerd is
    installed and we are root, its containers' cgroups under `cgroups_root` (removed with
    the rest). (None, None) when docker is not timed; why goes to stderr.
    """
    if no_docker:
        return None, None
    if shutil.which("docker") is None:
        _note("no docker CLI on PATH: docker run is not timed")
        return None, None
    if docker_socket:
        host = f"unix://{docker_socket}" if docker_socket.startswith("/") else docker_socket
        if not _docker_answers(host):
            raise InvalidRequest(f"no Docker Engine answers on --docker-socket {docker_socket!r}",
                                 field="docker-socket")
        return host, "external"
    env_host = os.environ.get("DOCKER_HOST")
    if env_host and _docker_answers(env_host):
        return env_host, "external"
    if not dockerd_available():
        _note("no dockerd installed (or not root): docker run is not timed")
        return None, None
    # Its own short dir: the engine's unix sockets live under it. No bridge: the runs use
    # host networking, and a docker0 of another engine on this host is left alone.
    root = Path(tempfile.mkdtemp(prefix="lichen-bench-dockerd-", dir="/tmp"))
    engine = start_dockerd(root, bridge=False, args=["--cgroup-parent", f"/{cgroups_root}/docker"])
    stack.callback(engine.stop)
    return engine.socket, "private"


def _note(message: str) -> None:
    print(f"lichen bench containers: {message}", file=sys.stderr)


def _docker_run(host: str, layout: Path, tag: str, work_dir: Path, launches: int) -> list[float]:
    """Seconds of each `docker run -d` CLI call, after one untimed warm-up run.

    `docker run -d` returns once the engine has started the container (its start call
    answers after the container's process runs); each run is then checked, untimed, to be
    running per `docker inspect`, and removed before the next.
    """
    import docker

    work_dir.mkdir(parents=True, exist_ok=True)
    archive = work_dir / "busybox.tar"
    name = f"lichen-bench/busybox:{tag}"
    convert_layout(layout, tag, name, archive)
    load_archive(host, archive)
    client = docker.DockerClient(base_url=host, version="auto", timeout=60)
    timings: list[float] = []
    try:
        for i in range(launches + 1):
            cname = f"lichen-bench-{os.getpid()}-{i}"
            started = time.perf_counter()
            try:
                ran = subprocess.run(["docker", "-H", host, "run", "-d", "--network", "host", "--name", cname,
                                      name, "sleep", "3600"], check=False, capture_output=True, timeout=60)
                elapsed = time.perf_counter() - started
                if ran.returncode != 0:
                    raise RuntimeError(f"docker run -d {name} failed: {ran.stderr.decode(errors='replace').strip()}")
                if not client.api.inspect_container(cname)["State"]["Running"]:
                    raise RuntimeError(f"docker run -d returned but container {cname} is not running")
                if i > 0:  # the first run warms the engine up
                    timings.append(elapsed)
            finally:
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_container(cname, force=True, v=True)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(name, force=True)
        client.close()
    return timings


# --- the whole run --------------------------------------------------------------------

def run(launches: int = 30, docker_socket: str | None = None, no_docker: bool = False) -> dict[str, Any]:
    from lichen.cli.up import kill_tasks

    if os.geteuid() != 0 or shutil.which("runc") is None:
        raise RuntimeError("the containers benchmark needs root and runc")
    if docker_socket and no_docker:
        raise InvalidRequest("--docker-socket and --no-docker exclude each other", field="docker-socket")
    tag = "latest"
    cgroups_root = f"lichen-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="lichen-bench-") as tmp_name:
        tmp = Path(tmp_name)
        layers = busybox_layers()
        write_layout(tmp / "busybox", tag, layers)
        write_layout(tmp / "five", tag, busybox_layers(extra=4))
        registry, reg_addr = _start_registry(tmp / "registry")
        agent_dir = tmp / "agent"
        try:
            busybox = f"{reg_addr}/bench/busybox:{tag}"
            five = f"{reg_addr}/bench/five-layers:{tag}"
            _push(tmp / "busybox", tag, busybox)
            _push(tmp / "five", tag, five)
            if docker_socket:  # fail before the long part, not after it
                _docker_engine(docker_socket, False, cgroups_root, contextlib.ExitStack())
            master, master_addr = _start("master", tmp / "master", "--allocation-interval", "0.02")
            try:
                tasks = 2 * launches + 4
                agent, _ = _start(
                    "agent", agent_dir, "--master", master_addr, "--containerizers", "process,oci",
                    "--insecure-registries", reg_addr, "--cgroups-root", cgroups_root,
                    "--resources", f"cpus:{tasks * TASK_CPUS + 1:.2f};mem:{tasks * TASK_MEM + 256:.0f};disk:10000")
                try:
                    result = asyncio.run(_oci(master_addr, busybox, five, launches, agent_dir / "oci-state"))
                finally:
                    _stop(agent)
                    kill_tasks(agent_dir, grace=2.0)
            finally:
                _stop(master)
            bare, bare_run_only = _bare_runc(tmp / "runc", layers, launches, cgroups_root)
            # The engine runs only now, so that it takes no CPU from the runs above.
            with contextlib.ExitStack() as engine_stack:
                host, engine = _docker_engine(docker_socket, no_docker, cgroups_root, engine_stack)
                docker = _docker_run(host, tmp / "busybox", tag, tmp / "docker", launches) if host else None
        finally:
            _stop_group(registry)
            with contextlib.suppress(Exception):
                kill_tasks(agent_dir, grace=2.0)
            _remove_cgroups(cgroups_root)
    runc_p50 = round(_percentile(bare, 50) * 1000, 1)
    docker_p50 = round(_percentile(docker, 50) * 1000, 1) if docker else None
    return {"bench": "containers", "launches": launches,
            "oci_p50_ms": result["oci_p50_ms"], "oci_p99_ms": result["oci_p99_ms"],
            "runc_p50_ms": runc_p50, "runc_p99_ms": round(_percentile(bare, 99) * 1000, 1),
            "runc_run_only_p50_ms": round(_percentile(bare_run_only, 50) * 1000, 1),
            "overhead_p50_ms": round(result["oci_p50_ms"] - runc_p50, 1),
            "oci_started_p50_ms": result["oci_started_p50_ms"], "oci_started_p99_ms": result["oci_started_p99_ms"],
            "started_overhead_p50_ms": round(result["oci_started_p50_ms"] - runc_p50, 1),
            "docker_engine": engine,
            "docker_p50_ms": docker_p50,
            "docker_p99_ms": round(_percentile(docker, 99) * 1000, 1) if docker else None,
            "docker_over_oci": round(docker_p50 / result["oci_p50_ms"], 2) if docker_p50 else None,
            "launches_per_s": result["launches_per_s"],
            "cold_busybox_ms": result["cold_busybox_ms"], "cold_5_layers_ms": result["cold_5_layers_ms"]}


if __name__ == "__main__":
    print(json.dumps(run(int(os.environ.get("LAUNCHES", "30")))))
