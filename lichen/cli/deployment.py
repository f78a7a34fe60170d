"""`lichen deployment ...`: Marathon's running deployments: list, watch, roll back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from lichen.cli.client import (
    describe_step,
    endpoint_options,
    endpoints_from,
    fail,
    find_deployment,
    json_option,
    marathon_api,
    normalize_id,
    print_json,
    print_table,
    wait_for_deployment,
)
from lichen.cli.main import cli


@cli.group()
@endpoint_options
@click.pass_context
def deployment(ctx: click.Context, master: str | None, marathon: str | None, chronos: str | None) -> None:
    """Follow and roll back Marathon deployments."""
    endpoints_from(ctx, master, marathon, chronos)


def deployment_rows(deployments: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [d.get("id"), ", ".join(str(a) for a in d.get("affectedApps") or []) or "-", describe_step(d),
         d.get("version")]
        for d in deployments
    ]


@deployment.command("list")
@click.argument("app_id", metavar="[APP]", required=False)
@json_option
def list_(app_id: str | None, as_json: bool) -> None:
    """List the running deployments (of APP only, if given)."""
    body = marathon_api().get("/v2/deployments").body
    found = [d for d in body if isinstance(d, dict)] if isinstance(body, list) else []
    if app_id:
        wanted = normalize_id(app_id)
        found = [d for d in found if wanted in (normalize_id(str(a)) for a in d.get("affectedApps") or [])]
    if as_json:
        print_json(found if app_id else body)
        return
    if not found:
        click.echo("no deployments")
        return
    print_table(("ID", "APPS", "PROGRESS", "VERSION"), deployment_rows(found))


@deployment.command("watch")
@click.argument("deployment_id", metavar="[ID]", required=False)
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Give up after this long (default: until it ends).")
def watch(deployment_id: str | None, timeout: float | None) -> None:
    """Show a deployment's progress until it ends (every running one without ID).

    Exits 1 if a deployment failed or was cancelled.
    """
    api = marathon_api()
    running = api.get("/v2/deployments").body or []
    if deployment_id is not None:
        d = find_deployment(running, deployment_id)
        if d is None:
            fail(f"no deployment {deployment_id} is running")
        targets = [d]
    else:
        targets = [d for d in running if isinstance(d, dict)]
        if not targets:
            click.echo("no deployments")
            return
    for d in targets:
        apps = [str(a) for a in d.get("affectedApps") or []]
        wait_for_deployment(api, str(d.get("id")), apps, timeout=timeout)


@deployment.command("rollback")
@click.argument("deployment_id", metavar="ID")
@click.option("--force", is_flag=True, help="Cancel it where it stands instead of rolling it back.")
@json_option
def rollback(deployment_id: str, force: bool, as_json: bool) -> None:
    """Roll a running deployment back (a new deployment undoes it); --force just cancels it."""
    resp = marathon_api().request("DELETE", f"/v2/deployments/{deployment_id}",
                                  {"force": True if force else None})
    if as_json:
        print_json(resp.body)
        return
    body = resp.body if isinstance(resp.body, dict) else {}
    if force or not body.get("deploymentId"):
        click.echo(f"cancelled deployment {deployment_id}")
    else:
        click.echo(f"rolling back deployment {deployment_id} (deployment {body['deploymentId']})")
