"""`lichen bench`: the benchmarks, each printing exactly one JSON line on stdout.

The benchmark modules are imported inside each command: they pull in the whole master,
which `lichen --help` has no reason to load.
"""

from __future__ import annotations

import json
from typing import Any

import click

from lichen.cli.main import cli


def _print_result(result: dict[str, Any]) -> None:
    click.echo(json.dumps(result, sort_keys=True))


@cli.group()
def bench() -> None:
    """Measure the allocator and the master."""


@bench.command()
@click.option("--agents", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--frameworks", default=1_000, show_default=True, type=click.IntRange(min=1))
@click.option("--roles", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--cycles", default=5, show_default=True, type=click.IntRange(min=1))
def allocator(agents: int, frameworks: int, roles: int, cycles: int) -> None:
    """Time allocation cycles over many agents and frameworks (no processes, no sockets)."""
    from lichen.bench import allocator as allocator_bench

    _print_result(allocator_bench.run(agents, frameworks, roles, cycles))


@bench.command()
@click.option("--tasks", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--agents", default=10, show_default=True, type=click.IntRange(min=1))
def launch(tasks: int, agents: int) -> None:
    """Time launching tasks through a real master onto simulated agents."""
    from lichen.bench import launch as launch_bench

    _print_result(launch_bench.run(tasks=tasks, agents=agents))


@bench.command("marathon-scale")
@click.option("--instances", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--agents", default=100, show_default=True, type=click.IntRange(min=1))
def marathon_scale(instances: int, agents: int) -> None:
    """Time scaling one Marathon app from 0 to N instances on simulated agents."""
    from lichen.bench import marathon as marathon_bench

    _print_result(marathon_bench.run_scale(instances=instances, agents=agents))


@bench.command("marathon-apps")
@click.option("--apps", default=1_000, show_default=True, type=click.IntRange(min=1))
@click.option("--tasks", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--requests", default=50, show_default=True, type=click.IntRange(min=1))
def marathon_apps(apps: int, tasks: int, requests: int) -> None:
    """Time GET /v2/apps?embed=apps.tasks with many apps and tasks."""
    from lichen.bench import marathon as marathon_bench

    _print_result(marathon_bench.run_apps(apps=apps, tasks=tasks, requests=requests))


@bench.command("chronos")
@click.option("--jobs", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--window", default=60.0, show_default=True, type=float, help="Seconds the first runs are spread over.")
@click.option("--agents", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--allocation-interval", default=1.0, show_default=True, type=float)
def chronos_bench(jobs: int, window: float, agents: int, allocation_interval: float) -> None:
    """Time how late scheduled Chronos runs start, and the scheduling work per due run."""
    from lichen.bench import chronos as chronos_bench_module

    _print_result(chronos_bench_module.run(jobs=jobs, window=window, agents=agents,
                                           allocation_interval=allocation_interval))


@bench.command("containers")
@click.option("--launches", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--docker-socket", default=None,
              help="A running Docker Engine to time `docker run` on (default: DOCKER_HOST when it "
                   "answers, else a private dockerd started for the run).")
@click.option("--no-docker", is_flag=True, help="Do not time `docker run` (docker figures null).")
def containers(launches: int, docker_socket: str | None, no_docker: bool) -> None:
    """Time oci container launches (ACCEPT -> TASK_RUNNING) against bare runc and docker run."""
    from lichen.bench import containers as containers_bench
    from lichen.errors import LichenError

    if docker_socket and no_docker:
        raise click.UsageError("--docker-socket and --no-docker exclude each other")
    try:
        result = containers_bench.run(launches=launches, docker_socket=docker_socket, no_docker=no_docker)
    except LichenError as e:  # a --docker-socket where no engine answers
        raise click.ClickException(e.message) from None
    _print_result(result)
