"""`lichen agent`: wire the agent together and run it until SIGTERM/SIGINT.

Stopping leaves every task running (as Mesos does): a restarted agent with the same
work dir recovers them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from lichen.agent.agent import Agent
from lichen.agent.containerizer.base import Containerizer
from lichen.agent.containerizer.composite import CompositeContainerizer
from lichen.agent.containerizer.process import ProcessContainerizer
from lichen.agent.detect import detect_resource_text, parse_attributes
from lichen.agent.flags import AgentFlags
from lichen.agent.http import build_app
from lichen.api.server import serve
from lichen.resources import Resources

log = logging.getLogger(__name__)


async def _serve_on_remembered_port(
    agent: Agent, flags: AgentFlags, work_dir: Path
) -> tuple[web.AppRunner, str, int]:
    """Bind `--port`; with `--port 0`, first try the port the last run in this work dir had.

    Executors (pymesos's among them) reconnect to the MESOS_AGENT_ENDPOINT they were
    started with, so an agent restarted with `--port 0` (as `lichen up` runs them) must
    come back on the same port for its recovered executors to find it.
    """
    remembered = work_dir / "meta" / "last_port"
    if flags.port == 0:
        try:
            last = int(remembered.read_text())
        except (OSError, ValueError):
            last = 0
        if last:
            try:
                return await serve(build_app(agent), flags.host, last, None, "agent")
            except OSError:
                log.info("port %d of the last run is taken; binding a free one", last)
    bound = await serve(build_app(agent), flags.host, flags.port, None, "agent")
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(str(bound[2]))
    return bound


def build_containerizer(flags: AgentFlags, work_dir: Path) -> CompositeContainerizer:
    """The containerizers `--containerizers` names, behind one that routes each container."""
    names = [n.strip() for n in flags.containerizers.split(",") if n.strip()]
    unknown = sorted(set(names) - {"process", "oci", "docker"})
    if unknown:
        raise SystemExit(f"unknown containerizers {unknown} (known: process, oci, docker)")
    chosen: dict[str, Containerizer] = {}
    if "process" in names:
        chosen["process"] = ProcessContainerizer(work_dir, cgroups_root=flags.cgroups_root)
    if "oci" in names:
        from lichen.agent.containerizer.oci import OciContainerizer
        from lichen.agent.images.store import ImageStore

        store = ImageStore(
            work_dir / "images",
            budget_bytes=flags.image_store_budget,
            registry_config=flags.registry_config,
            insecure_registries=[r.strip() for r in flags.insecure_registries.split(",") if r.strip()],
        )
        from lichen.agent.containerizer.seccomp import SeccompError

        try:
            chosen["oci"] = OciContainerizer(
                work_dir, store, runtime=flags.oci_runtime, cgroups_root=flags.cgroups_root,
                allow_privileged=flags.allow_privileged, seccomp_profile=flags.seccomp_profile,
            )
        except SeccompError as e:
            raise SystemExit(f"--seccomp-profile: {e}") from None
    if "docker" in names:
        try:
            docker = importlib.import_module("lichen.agent.containerizer.docker")
        except ImportError:
            log.warning("the docker containerizer is not available in this build; skipping it")
        else:
            chosen["docker"] = docker.DockerContainerizer(
                work_dir, socket=flags.docker_socket, allow_privileged=flags.allow_privileged,
            )
    if not chosen:
        raise SystemExit("no containerizer to run (--containerizers)")
    return CompositeContainerizer(chosen)


def run(flags: AgentFlags) -> None:
    """The CLI's entry point: blocks until the agent is told to stop."""
    try:
        asyncio.run(serve_agent(flags))
    except OSError as e:  # the port is taken, the work dir is not writable, ...
        log.error("lichen agent cannot start: %s", e)
        raise SystemExit(1) from None


async def serve_agent(flags: AgentFlags, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    work_dir = Path(flags.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    containerizer = build_containerizer(flags, work_dir)
    agent = Agent(flags, containerizer)
    agent.resources = Resources.parse(detect_resource_text(flags.resources, work_dir))
    agent.attributes = parse_attributes(flags.attributes)
    runner, host, port = await _serve_on_remembered_port(agent, flags, work_dir)
    try:
        agent.host, agent.port = host, port
        agent.hostname = flags.hostname or host
        await agent.start()
        from lichen.api.server import write_addr

        write_addr(work_dir, "agent", f"{host}:{port}")
        log.info("agent serving on %s:%d, master %s", host, port, flags.master)
        await stop.wait()
        log.info("agent stopping (tasks keep running)")
    finally:
        await agent.stop()
        await runner.cleanup()
