"""The `lichen` command line.

Daemons (`master`, `agent`, `up`) and `bench` live here; client verbs join later.
Errors: a `LichenError` becomes a message on stderr and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from lichen import __version__


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
@click.version_option(__version__, prog_name="lichen")
def cli() -> None:
    """lichen: the Mesosphere datacenter stack in Python."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5050, show_default=True, type=int, help="Port to bind (0: any free port).")
@click.option("--work-dir", required=True, type=click.Path(path_type=Path), help="Where the registry lives.")
@click.option("--hostname", default=None, help="Hostname to advertise (default: the bound address).")
@click.option("--allocation-interval", default=1.0, show_default=True, type=float, help="Seconds between allocation cycles.")
@click.option("--offer-timeout", default=None, type=float, help="Rescind offers after this many seconds (default: never).")
@click.option("--agent-ping-timeout", default=15.0, show_default=True, type=float, help="Seconds an agent has to answer a ping.")
@click.option("--max-agent-ping-timeouts", default=5, show_default=True, type=int, help="Missed pings before an agent is unreachable.")
@click.option("--weights", default="", help="Role weights, e.g. ops=2,batch=1.")
@click.option("--max-completed-tasks-per-framework", default=1000, show_default=True, type=int)
@click.option("--max-completed-frameworks", default=50, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
def master(**opts: object) -> None:
    """Run a Mesos-compatible master."""
    from lichen.master.flags import MasterFlags, parse_weights
    from lichen.master.main import run

    _setup_logging(str(opts.pop("log_level")))
    try:
        weights = parse_weights(str(opts.pop("weights")))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--weights") from None
    run(MasterFlags(weights=weights, **opts))  # type: ignore[arg-type]


@cli.command()
@click.option("--master", "master_addr", required=True, help="The master's host:port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5051, show_default=True, type=int, help="Port to bind (0: any free port).")
@click.option("--work-dir", required=True, type=click.Path(path_type=Path), help="Sandboxes and checkpoints.")
@click.option("--hostname", default=None, help="Hostname to advertise.")
@click.option("--resources", default=None, help='e.g. "cpus:4;mem:4096;disk:10000;ports:[31000-32000];cpus(ops):2".')
@click.option("--attributes", default=None, help='e.g. "rack:a;zone:1".')
@click.option("--containerizers", default="process,oci", show_default=True, help="Any of process, oci, docker.")
@click.option("--oci-runtime", default="runc", show_default=True, help="The OCI runtime binary of the oci containerizer.")
@click.option("--image-store-budget", default=None, type=int, help="Bytes of unpacked image layers to keep (default: no limit).")
@click.option("--allow-privileged", is_flag=True, default=False, help="Allow containers with docker.privileged.")
@click.option("--seccomp-profile", default="default", show_default=True,
              help="Seccomp of oci containers: default, unconfined, or a JSON profile file (OCI or Docker format).")
@click.option("--registry-config", default=None, type=click.Path(path_type=Path), help="Docker-style config.json with registry credentials.")
@click.option("--insecure-registries", default="", help="Comma-separated host:port registries spoken to over plain HTTP.")
@click.option("--docker-socket", default=None, help="Docker Engine socket for the docker containerizer (default: DOCKER_HOST).")
@click.option("--executor-shutdown-grace-period", default=5.0, show_default=True, type=float)
@click.option("--executor-registration-timeout", default=60.0, show_default=True, type=float)
@click.option("--status-update-retry-interval", default=10.0, show_default=True, type=float)
@click.option("--gc-delay", default=604800.0, show_default=True, type=float, help="Seconds a finished sandbox is kept at most.")
@click.option("--gc-disk-headroom", default=0.1, show_default=True, type=float)
@click.option("--cgroups-root", default="lichen", show_default=True)
@click.option("--log-level", default="info", show_default=True)
def agent(master_addr: str, **opts: object) -> None:
    """Run a Mesos-compatible agent."""
    from lichen.agent.flags import AgentFlags
    from lichen.agent.main import run

    _setup_logging(str(opts.pop("log_level")))
    run(AgentFlags(master=master_addr, **opts))  # type: ignore[arg-type]


@cli.command()
@click.option("--master", "master_addr", required=True, help="The master's host:port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to bind (0: any free port).")
@click.option("--work-dir", required=True, type=click.Path(path_type=Path), help="Where the state lives.")
@click.option("--hostname", default=None, help="Hostname to advertise.")
@click.option("--framework-name", default="marathon", show_default=True)
@click.option("--failover-timeout", default=604800.0, show_default=True, type=float,
              help="Seconds the master keeps the tasks while Marathon is away.")
@click.option("--mesos-role", default="*", show_default=True)
@click.option("--mesos-user", default="root", show_default=True)
@click.option("--decline-offer-duration", default=120.0, show_default=True, type=float)
@click.option("--local-port-min", default=10000, show_default=True, type=int)
@click.option("--local-port-max", default=20000, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
def marathon(master_addr: str, **opts: object) -> None:
    """Run the Marathon-compatible service scheduler."""
    from lichen.frameworks.marathon.main import run
    from lichen.frameworks.marathon.service import MarathonFlags

    _setup_logging(str(opts.pop("log_level")))
    run(MarathonFlags(master=master_addr, **opts))  # type: ignore[arg-type]


@cli.command()
@click.option("--master", "master_addr", required=True, help="The master's host:port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=4400, show_default=True, type=int, help="Port to bind (0: any free port).")
@click.option("--work-dir", required=True, type=click.Path(path_type=Path), help="Where the state lives.")
@click.option("--hostname", default=None, help="Hostname to advertise.")
@click.option("--framework-name", default="chronos", show_default=True)
@click.option("--mesos-role", default="*", show_default=True)
@click.option("--user", default="root", show_default=True, help="Default runAsUser of jobs.")
@click.option("--task-cpu", default=0.1, show_default=True, type=float, help="Default cpus of a job.")
@click.option("--task-mem", default=128.0, show_default=True, type=float, help="Default mem (MB) of a job.")
@click.option("--task-disk", default=256.0, show_default=True, type=float, help="Default disk (MB) of a job.")
@click.option("--task-epsilon", default=60.0, show_default=True, type=float,
              help="Default seconds a run may start late before it is skipped.")
@click.option("--failure-retry", default=60.0, show_default=True, type=float,
              help="Seconds between a failed run and its retry.")
@click.option("--disable-after-failures", default=0, show_default=True, type=int,
              help="Disable a job after this many failures in a row (0: never).")
@click.option("--max-history", default=100, show_default=True, type=int, help="Runs kept per job.")
@click.option("--log-level", default="info", show_default=True)
def chronos(master_addr: str, **opts: object) -> None:
    """Run the Chronos-compatible job scheduler."""
    from lichen.frameworks.chronos.main import run
    from lichen.frameworks.chronos.service import ChronosFlags

    _setup_logging(str(opts.pop("log_level")))
    run(ChronosFlags(master=master_addr, **opts))  # type: ignore[arg-type]


COMMAND_MODULES = ("up", "bench", "app", "task", "deployment", "job")


def main() -> None:
    import importlib

    for name in COMMAND_MODULES:  # each registers its commands on `cli` when imported
        importlib.import_module(f"lichen.cli.{name}")
    cli(prog_name="lichen")


if __name__ == "__main__":
    # `python -m` runs this file as __main__, a second copy of the module; the command
    # modules register on lichen.cli.main.cli, so run that copy's main().
    from lichen.cli.main import main as _main

    _main()
