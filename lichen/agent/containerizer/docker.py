"""The `docker` containerizer: tasks from Docker images, run by a Docker Engine.

Theory of operation. `launch` pulls the image when the engine lacks it (or always, with
`force_pull_image`), creates a container from the task's ContainerInfo (`create_args`,
pure), starts it, and starts a log pump: an owned asyncio task that follows the
container's stdout and stderr (two engine log streams, each read in a thread) and appends
them to the sandbox's `stdout`/`stderr`. The engine keeps the container and its exit
status; we keep in `<sandbox>/.lichen/`:

    docker.json               written at launch: the engine's container id, name, image
    docker-logs.json          the timestamp of the last log line copied, per stream
    docker-termination.json   the container's Termination once known (it outlives the
                              container, which `destroy` removes)

Every container carries the labels `lichen.container_id` and `lichen.sandbox`, so after
an agent restart `recover` finds them with one label query, and resumes the log pumps
from the recorded timestamps (the engine's `since` is whole seconds here; lines at or
before the recorded timestamp are skipped, so nothing is copied twice).

`wait` polls the engine's view of the container (cheap, and cancellable, unlike the
engine's blocking wait call), lets the log pump drain, and turns `State` into a
Termination: the exit code, or `oom_killed` when `State.OOMKilled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import Ulimit

from lichen.agent.containerizer import oci_bundle as ob
from lichen.agent.containerizer.base import LaunchError, LaunchSpec, Termination

log = logging.getLogger(__name__)

SANDBOX_PATH = ob.SANDBOX_PATH           # /mnt/mesos/sandbox
LABEL_CONTAINER = "lichen.container_id"
LABEL_SANDBOX = "lichen.sandbox"
PULL_TIMEOUT = 300.0             # bound on pulling one image
API_TIMEOUT = 60.0               # the SDK's socket timeout for one engine call
LOG_DRAIN_TIMEOUT = 5.0          # how long `wait` lets the log pump catch up after the end
POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 0.5
_META = ".lichen"
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


# -- from a LaunchSpec to the engine's create arguments (pure) -----------------------------


def create_args(spec: LaunchSpec, *, allow_privileged: bool, host_env: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of the SDK's `containers.create` for `spec`. Raises LaunchError."""
    container = spec.container or {}
    try:
        image = ob.image_name(container)
        network = ob.network_mode(container)
        volumes = ob.volumes(container, str(spec.sandbox))
    except ob.BundleError as e:
        raise LaunchError(str(e)) from e
    if not image:
        raise LaunchError(f"container '{spec.container_id}' names no image")
    docker_info = container.get("docker") or {}
    if ob.privileged(container) and not allow_privileged:
        raise LaunchError("privileged containers are not allowed on this agent (--allow-privileged)")

    env = ob.task_only_env(spec.env, host_env)
    env["MESOS_SANDBOX"] = SANDBOX_PATH
    labels = {LABEL_CONTAINER: spec.container_id, LABEL_SANDBOX: str(spec.sandbox)}
    binds = [_bind(str(spec.sandbox), SANDBOX_PATH, read_only=False)]
    binds += [_bind(v.host_path, v.container_path, read_only=v.readonly) for v in volumes]
    args: dict[str, Any] = {
        "image": image,
        "name": container_name(spec.container_id, spec.sandbox),
        "detach": True,
        "environment": env,
        "labels": labels,
        "volumes": binds,
        # Our own files stay out of the task's reach, as under the oci containerizer.
        "tmpfs": {f"{SANDBOX_PATH}/{_META}": "ro,size=4k"},
        "privileged": ob.privileged(container),
        "log_config": {"type": "json-file", "config": {}},   # we read the logs back
    }
    args.update(_command(spec))
    args.update(_limits(spec))
    args.update(_network(network, docker_info.get("port_mappings") or [], container))
    _apply_parameters(args, docker_info.get("parameters") or [], allow_privileged=allow_privileged)
    return args


def container_name(container_id: str, sandbox: Path) -> str:
    """An engine-legal name, unique per sandbox (a relaunch of an id gets a new sandbox)."""
    digest = hashlib.sha256(str(sandbox).encode()).hexdigest()[:10]
    return f"lichen-{_NAME_UNSAFE.sub('_', container_id)[:100]}-{digest}"


def _bind(host: str, target: str, *, read_only: bool) -> str:
    if ":" in host or ":" in target:
        raise LaunchError(f"volume '{host}' -> '{target}': paths with ':' are not supported by Docker")
    return f"{host}:{target}:{'ro' if read_only else 'rw'}"


def _command(spec: LaunchSpec) -> dict[str, Any]:
    """Docker's merge of the task's command with the image's entrypoint/cmd (see ob.process_args)."""
    argv = spec.argv
    if spec.shell:
        if len(argv) >= 3 and argv[2]:
            return {"entrypoint": [], "command": list(argv)}
        return {}                                  # an empty shell command: the image's own
    if argv and argv[0]:
        return {"entrypoint": [argv[0]], "command": list(argv[1:])}
    return {"command": list(argv[1:])} if argv[1:] else {}


def _limits(spec: LaunchSpec) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if spec.cpus is not None and spec.cpus > 0:
        limits["nano_cpus"] = int(spec.cpus * 1e9)
        limits["cpu_shares"] = max(2, int(spec.cpus * 1024))
    if spec.mem_mb is not None and spec.mem_mb > 0:
        limit = int(spec.mem_mb * 1024 * 1024)
        limits["mem_limit"] = limit
        limits["memswap_limit"] = limit           # no swap: the limit is the task's memory
    return limits


def _network(mode: str, port_mappings: Sequence[Mapping[str, Any]], container: Mapping[str, Any]) -> dict[str, Any]:
    if port_mappings and mode not in ("BRIDGE", "USER"):
        raise LaunchError(f"port mappings need network BRIDGE or USER, not {mode}")
    if mode == "HOST":
        return {"network_mode": "host"}
    if mode == "NONE":
        return {"network_mode": "none"}
    if mode == "USER":
        infos = container.get("network_infos") or []
        name = (infos[0].get("name") if infos else None) or ""
        if not name:
            raise LaunchError("network USER needs a network name in network_infos")
        network = str(name)
    else:
        network = "bridge"
    ports: dict[str, list[int]] = {}
    for i, mapping in enumerate(port_mappings):
        try:
            host_port = int(mapping["host_port"])
            container_port = int(mapping["container_port"])
        except (KeyError, TypeError, ValueError):
            raise LaunchError(f"port mapping {i} needs integer host_port and container_port") from None
        for protocol in str(mapping.get("protocol") or "tcp").split(","):
            protocol = protocol.strip().lower()
            if protocol not in ("tcp", "udp", "sctp"):
                raise LaunchError(f"port mapping {i} has unknown protocol '{protocol}'")
            ports.setdefault(f"{container_port}/{protocol}", []).append(host_port)
    return {"network_mode": network, "ports": ports}


# `docker run` flags a task may pass as `parameters` (key without the dashes), mapped to the
# SDK's create arguments. Flags that widen the container's privilege are allowed only
# where privileged containers are; the rest (name, network, log driver, ...) we set ourselves.
_PRIVILEGED_PARAMETERS = frozenset({"cap-add", "security-opt", "device"})


def _apply_parameters(args: dict[str, Any], parameters: Sequence[Mapping[str, Any]], *, allow_privileged: bool) -> None:
    unknown: list[str] = []
    refused: list[str] = []
    for p in parameters:
        key = str(p.get("key", "")).lstrip("-")
        value = str(p.get("value", ""))
        if key in _PRIVILEGED_PARAMETERS and not allow_privileged:
            refused.append(key)
            continue
        apply = _PARAMETERS.get(key)
        if apply is None:
            unknown.append(key)
            continue
        try:
            apply(args, value)
        except ValueError as e:
            raise LaunchError(f"docker parameter '{key}={value}': {e}") from None
    if unknown:
        raise LaunchError("unsupported docker parameters: " + ", ".join(f"'{k}'" for k in unknown))
    if refused:
        raise LaunchError("docker parameters " + ", ".join(f"'{k}'" for k in refused)
                          + " are not allowed on this agent (--allow-privileged)")


def _key_value(value: str) -> tuple[str, str]:
    name, _, rest = value.partition("=")
    if not name:
        raise ValueError("expected NAME=VALUE")
    return name, rest


def _set_label(args: dict[str, Any], value: str) -> None:
    name, rest = _key_value(value)
    if name in (LABEL_CONTAINER, LABEL_SANDBOX):
        raise ValueError(f"label '{name}' is reserved")
    args["labels"][name] = rest


def _set_env(args: dict[str, Any], value: str) -> None:
    name, rest = _key_value(value)
    args["environment"][name] = rest


def _append(name: str) -> Any:
    def apply(args: dict[str, Any], value: str) -> None:
        args.setdefault(name, []).append(value)
    return apply


def _setter(name: str, convert: Any = str) -> Any:
    def apply(args: dict[str, Any], value: str) -> None:
        args[name] = convert(value)
    return apply


def _bool(value: str) -> bool:
    if value.lower() in ("", "true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def _bytes(value: str) -> int | str:
    if value.strip() == "-1":
        return -1
    if not re.fullmatch(r"\d+[bkmgBKMG]?", value.strip()):
        raise ValueError("expected a size like 512m")
    return value.strip().lower()


def _set_ulimit(args: dict[str, Any], value: str) -> None:
    name, limits = _key_value(value)
    soft, _, hard = limits.partition(":")
    args.setdefault("ulimits", []).append(Ulimit(name=name, soft=int(soft), hard=int(hard or soft)))


def _add_host(args: dict[str, Any], value: str) -> None:
    host, sep, ip = value.partition(":")
    if not sep:
        raise ValueError("expected HOST:IP")
    args.setdefault("extra_hosts", {})[host] = ip


def _set_tmpfs(args: dict[str, Any], value: str) -> None:
    path, _, options = value.partition(":")
    args["tmpfs"][path] = options


_PARAMETERS: dict[str, Any] = {
    "label": _set_label, "l": _set_label,
    "env": _set_env, "e": _set_env,
    "user": _setter("user"), "u": _setter("user"),
    "workdir": _setter("working_dir"), "w": _setter("working_dir"),
    "hostname": _setter("hostname"), "h": _setter("hostname"),
    "memory-swap": _setter("memswap_limit", _bytes),
    "memory-reservation": _setter("mem_reservation", _bytes),
    "shm-size": _setter("shm_size", _bytes),
    "pids-limit": _setter("pids_limit", int),
    "read-only": _setter("read_only", _bool),
    "init": _setter("init", _bool),
    "oom-score-adj": _setter("oom_score_adj", int),
    "stop-signal": _setter("stop_signal"),
    "add-host": _add_host,
    "dns": _append("dns"),
    "dns-search": _append("dns_search"),
    "ulimit": _set_ulimit,
    "tmpfs": _set_tmpfs,
    "cap-add": _append("cap_add"),
    "cap-drop": _append("cap_drop"),
    "security-opt": _append("security_opt"),
    "device": _append("devices"),
}


# -- engine state to Termination (pure) -----------------------------------------------------


def termination_of(state: Mapping[str, Any], mem_mb: float | None) -> Termination:
    """The Termination of an ended container from the engine's `State`."""
    code = int(state.get("ExitCode", -1))
    if state.get("OOMKilled"):
        limit = f" (limit {mem_mb:g} MB)" if mem_mb else ""
        return Termination(exit_code=code, signal=None, oom_killed=True,
                           message=f"Memory limit exceeded{limit}: the container was OOM-killed")
    error = str(state.get("Error") or "")
    message = f"Container exited with status {code}" + (f": {error}" if error else "")
    return Termination(exit_code=code, signal=None, message=message)


def parse_timestamp(text: str) -> tuple[str, int] | None:
    """A log line's RFC 3339 timestamp as (seconds part, nanoseconds), comparable in order."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    return match.group(1), int((match.group(2) or "0").ljust(9, "0"))


# -- the shell ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Container:
    container_id: str
    sandbox: Path
    docker_id: str
    mem_mb: float | None
    termination: Termination | None = None
    pump: asyncio.Task[None] | None = None
    streams: list[Any] = field(default_factory=list)     # open engine log streams

    @property
    def meta(self) -> Path:
        return self.sandbox / _META


class DockerContainerizer:
    """Runs containers on a Docker Engine (`socket`: unix://..., tcp://...; None: DOCKER_HOST)."""

    def __init__(self, work_dir: Path, *, socket: str | None, allow_privileged: bool = False,
                 pull_timeout: float = PULL_TIMEOUT) -> None:
        self.work_dir = Path(work_dir)
        self.socket = socket
        self.allow_privileged = allow_privileged
        self.pull_timeout = pull_timeout
        self._client: docker.DockerClient | None = None
        self._containers: dict[str, _Container] = {}
        self._pulls: dict[str, asyncio.Future[None]] = {}

    # -- the protocol ----------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> None:
        """Pull, create and start the container. Raises LaunchError; leaves nothing behind."""
        known = self._containers.get(spec.container_id)
        if known is not None and known.termination is None:
            raise LaunchError(f"container '{spec.container_id}' is already running")
        spec = dataclasses.replace(spec, sandbox=spec.sandbox.absolute())
        args = create_args(spec, allow_privileged=self.allow_privileged, host_env=os.environ)
        client = await self._connect()
        image = str(args["image"])
        force = ob.force_pull(spec.container or {})
        await self._ensure_image(client, image, force=force)
        sandbox = spec.sandbox
        docker_id = await asyncio.to_thread(self._create_and_start, client, args, image)
        container = _Container(spec.container_id, sandbox, docker_id, spec.mem_mb)
        try:
            await asyncio.to_thread(_write_json, container.meta / "docker.json", {
                "docker_id": docker_id, "name": args["name"], "image": image, "mem_mb": spec.mem_mb})
            (container.meta / "docker-termination.json").unlink(missing_ok=True)
            (container.meta / "docker-logs.json").unlink(missing_ok=True)
        except OSError as e:
            await asyncio.to_thread(_remove, client, docker_id)
            raise LaunchError(f"cannot write the container's state in {sandbox}: {e}") from e
        self._containers[spec.container_id] = container
        self._start_pump(client, container)

    async def wait(self, container_id: str) -> Termination:
        """Wait until the container ends. Raises KeyError for a container we do not know."""
        container = self._containers[container_id]
        interval = POLL_INTERVAL
        while container.termination is None:
            state = await self._state(container)
            if state is None:
                await self._ended(container, Termination(
                    exit_code=None, signal=None, message="the container is gone from the Docker Engine"))
            elif state.get("Status") in ("exited", "dead"):
                await self._ended(container, termination_of(state, container.mem_mb))
            else:
                await asyncio.sleep(interval)
                interval = min(MAX_POLL_INTERVAL, interval * 1.5)
        return container.termination

    async def kill(self, container_id: str, grace_period: float) -> None:
        """`docker stop` with the grace period (SIGTERM, then SIGKILL). Safe to call twice."""
        container = self._containers.get(container_id)
        if container is None or container.termination is not None:
            return
        client = await self._connect()
        grace = max(0, math.ceil(grace_period))
        try:
            await asyncio.to_thread(client.api.stop, container.docker_id, timeout=grace)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            log.warning("cannot stop container %s: %s", container_id, e)

    async def recover(self, sandboxes: dict[str, Path]) -> set[str]:
        """Find our containers by their labels; resume their log pumps."""
        wanted = {cid: Path(s).absolute() for cid, s in sandboxes.items()}
        recorded = {cid: await asyncio.to_thread(_read_json, s / _META / "docker.json") for cid, s in wanted.items()}
        recorded = {cid: r for cid, r in recorded.items() if r is not None}
        if not recorded:
            return set()
        client = await self._connect()
        listed = await asyncio.to_thread(
            client.api.containers, all=True, filters={"label": LABEL_CONTAINER})
        by_label = {(c["Labels"].get(LABEL_CONTAINER), c["Labels"].get(LABEL_SANDBOX)): c["Id"] for c in listed}
        found: set[str] = set()
        for cid, record in recorded.items():
            sandbox = wanted[cid]
            container = _Container(cid, sandbox, str(record.get("docker_id", "")), record.get("mem_mb"))
            ended = await asyncio.to_thread(_read_json, container.meta / "docker-termination.json")
            if ended is not None:
                container.termination = Termination(**ended)
            else:
                docker_id = by_label.get((cid, str(sandbox)))
                if docker_id is None:
                    continue                # neither running nor an end we know of
                container.docker_id = docker_id
                self._start_pump(client, container)
            self._containers[cid] = container
            found.add(cid)
        return found

    async def destroy(self, container_id: str) -> None:
        """Stop the log pump and remove the container. Safe to call twice or for an unknown id."""
        container = self._containers.get(container_id)
        if container is None:
            return
        if container.termination is None:
            await self.kill(container_id, 0.0)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LOG_DRAIN_TIMEOUT + 10):
                    await self.wait(container_id)
        await self._stop_pump(container)
        client = await self._connect()
        await asyncio.to_thread(_remove, client, container.docker_id)

    async def close(self) -> None:
        """Stop every log pump and drop the engine connection; containers keep running."""
        for container in list(self._containers.values()):
            await self._stop_pump(container)
        self._containers.clear()
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    # -- images --------------------------------------------------------------------------

    async def _ensure_image(self, client: docker.DockerClient, image: str, *, force: bool) -> None:
        if not force and await asyncio.to_thread(_has_image, client, image):
            return
        # Concurrent launches of one image share one pull.
        pending = self._pulls.get(image)
        if pending is None:
            pending = asyncio.ensure_future(self._pull(client, image))
            self._pulls[image] = pending
            pending.add_done_callback(lambda _: self._pulls.pop(image, None))
        await asyncio.shield(pending)

    async def _pull(self, client: docker.DockerClient, image: str) -> None:
        try:
            async with asyncio.timeout(self.pull_timeout):
                await asyncio.to_thread(_pull, client, image)
        except TimeoutError:
            raise LaunchError(f"cannot pull image '{image}': no answer within {self.pull_timeout:g}s "
                              "(is its registry reachable?)") from None

    # -- containers ----------------------------------------------------------------------

    def _create_and_start(self, client: docker.DockerClient, args: dict[str, Any], image: str) -> str:
        try:
            created = client.containers.create(**args)
        except docker.errors.ImageNotFound as e:
            raise LaunchError(f"image '{image}' is not on the Docker Engine: {_explain(e)}") from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            raise LaunchError(f"the Docker Engine cannot create the container: {_explain(e)}") from None
        try:
            created.start()
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            _remove(client, str(created.id))
            raise LaunchError(f"the Docker Engine cannot start the container: {_explain(e)}") from None
        return str(created.id)

    async def _state(self, container: _Container) -> dict[str, Any] | None:
        client = await self._connect()
        try:
            info = await asyncio.to_thread(client.api.inspect_container, container.docker_id)
        except docker.errors.NotFound:
            return None
        return dict(info.get("State") or {})

    async def _ended(self, container: _Container, termination: Termination) -> None:
        if container.pump is not None:
            # The engine ends the log streams with the container: let them drain.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOG_DRAIN_TIMEOUT):
                    await asyncio.shield(container.pump)
        await self._stop_pump(container)
        try:
            await asyncio.to_thread(_write_json, container.meta / "docker-termination.json", asdict(termination))
        except OSError as e:
            log.warning("cannot record the termination of %s: %s", container.container_id, e)
        container.termination = termination

    async def _connect(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = await asyncio.to_thread(self._new_client)
            except docker.errors.DockerException as e:
                raise LaunchError(f"cannot reach the Docker Engine at {self.socket or 'DOCKER_HOST'}: {e}") from None
        return self._client

    def _new_client(self) -> docker.DockerClient:
        if self.socket:
            return docker.DockerClient(base_url=self.socket, version="auto", timeout=int(API_TIMEOUT))
        return docker.from_env(version="auto", timeout=int(API_TIMEOUT))

    # -- logs ----------------------------------------------------------------------------

    def _start_pump(self, client: docker.DockerClient, container: _Container) -> None:
        container.pump = asyncio.create_task(self._pump(client, container), name=f"docker-logs-{container.container_id}")

    async def _pump(self, client: docker.DockerClient, container: _Container) -> None:
        since_path = container.meta / "docker-logs.json"
        since: dict[str, Any] = await asyncio.to_thread(_read_json, since_path) or {}
        lock = threading.Lock()             # both streams' threads record into one file

        async def follow(stream: str) -> None:
            last = since.get(stream)
            start = tuple(last) if last else None
            try:
                await asyncio.to_thread(
                    _copy_logs, client, container, stream, start, lambda ts: _note(stream, ts))
            except (docker.errors.APIError, requests.exceptions.RequestException, OSError) as e:
                log.warning("log stream %s of %s ended: %s", stream, container.container_id, e)

        def _note(stream: str, ts: tuple[str, int]) -> None:
            with lock:
                since[stream] = list(ts)
                _write_json(since_path, dict(since))

        await asyncio.gather(follow("stdout"), follow("stderr"))

    async def _stop_pump(self, container: _Container) -> None:
        for stream in list(container.streams):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.close)
        pump, container.pump = container.pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


# -- blocking helpers (run in threads) -------------------------------------------------------


def _copy_logs(client: docker.DockerClient, container: _Container, stream: str,
               start: tuple[str, int] | None, note: Any) -> None:
    """Append the container's `stream` to the sandbox file until the container ends."""
    since = _epoch_seconds(start[0]) if start else None
    logs = client.api.logs(container.docker_id, stdout=stream == "stdout", stderr=stream == "stderr",
                           stream=True, follow=True, timestamps=True, **({"since": since} if since else {}))
    container.streams.append(logs)
    try:
        with open(container.sandbox / stream, "ab") as out:
            for chunk in logs:
                for line in chunk.splitlines(keepends=True):
                    stamp, _, text = line.partition(b" ")
                    ts = parse_timestamp(stamp.decode("ascii", "replace"))
                    if ts is None:          # a continuation of a long line
                        out.write(line)
                        continue
                    if start is not None and ts <= start:
                        continue
                    out.write(text)
                    out.flush()
                    note(ts)
    finally:
        with contextlib.suppress(ValueError):
            container.streams.remove(logs)
        with contextlib.suppress(Exception):
            logs.close()


def _epoch_seconds(seconds_part: str) -> int:
    moment = dt.datetime.strptime(seconds_part, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code == 400:
            raise LaunchError(f"bad image reference '{image}': {_explain(e)}") from None
        raise LaunchError(f"cannot inspect image '{image}': {_explain(e)}") from None
    return True


def _pull(client: docker.DockerClient, image: str) -> None:
    try:
        for message in client.api.pull(image, stream=True, decode=True):
            if isinstance(message, dict) and message.get("error"):
                raise LaunchError(_pull_failure(image, str(message["error"])))
    except docker.errors.APIError as e:
        raise LaunchError(_pull_failure(image, _explain(e), e.status_code)) from None
    except requests.exceptions.RequestException as e:
        raise LaunchError(f"cannot pull image '{image}': the Docker Engine did not answer: {e}") from None
    if not _has_image(client, image):
        raise LaunchError(f"cannot pull image '{image}': the engine reported no error but has no such image")


def _pull_failure(image: str, error: str, status: int | None = None) -> str:
    lower = error.lower()
    if "invalid reference format" in lower or "invalid tag" in lower or status == 400:
        return f"bad image reference '{image}': {error}"
    if ("not found" in lower or "manifest unknown" in lower or "does not exist" in lower
            or "pull access denied" in lower or status == 404):
        return f"image '{image}' not found in its registry: {error}"
    if any(s in lower for s in ("connection refused", "no such host", "timeout", "i/o timeout",
                                "dial tcp", "server misbehaving", "network is unreachable")):
        return f"the registry of image '{image}' is unreachable: {error}"
    if "unauthorized" in lower or "authentication required" in lower:
        return f"the registry refused access to image '{image}': {error}"
    return f"cannot pull image '{image}': {error}"


def _explain(e: Exception) -> str:
    if isinstance(e, docker.errors.APIError) and e.explanation:
        return str(e.explanation)
    return str(e)


def _remove(client: docker.DockerClient, docker_id: str) -> None:
    if not docker_id:
        return
    try:
        client.api.remove_container(docker_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:            # 409: removal already in progress
            log.warning("cannot remove container %s: %s", docker_id, _explain(e))


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
