"""`lichen app ...`: Marathon apps through the v2 REST API, in the dcos CLI's spirit.

Each verb is one or two HTTP calls (see client.py). Verbs that start a deployment
(`add`, `update`, `scale`, `restart`, `remove`) then wait for it with a live display,
unless `--no-wait`, and exit 1 if it failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from lichen.cli.client import (
    app_path,
    endpoint_options,
    endpoints_from,
    fail,
    finish_change,
    json_option,
    marathon_api,
    normalize_id,
    print_fields,
    print_json,
    print_table,
    wait_options,
)
from lichen.cli.main import cli

force_option = click.option("--force", is_flag=True, help="Override a running deployment of the app.")


@cli.group()
@endpoint_options
@click.pass_context
def app(ctx: click.Context, master: str | None, marathon: str | None, chronos: str | None) -> None:
    """Manage Marathon apps."""
    endpoints_from(ctx, master, marathon, chronos)


# --- pure parts -----------------------------------------------------------------------


def parse_assignments(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs as a JSON object: each value as JSON when it parses, else a string.

    Raises click.BadParameter for a pair without `=` or with an empty key.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{pair}' is not key=value", param_hint="PROPERTIES")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def read_json_object(text: str, source: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError as e:
        fail(f"{source} is not JSON: {e}")
    if not isinstance(body, dict):
        fail(f"{source} must hold one JSON object (an app definition)")
    return body


def _command_of(a: Mapping[str, Any]) -> str:
    if a.get("cmd"):
        return str(a["cmd"])
    if a.get("args"):
        return " ".join(str(x) for x in a["args"])
    image = ((a.get("container") or {}).get("docker") or {}).get("image")
    return f"image {image}" if image else "-"


def _deployments_of(a: Mapping[str, Any]) -> str:
    ids = [str(d.get("id")) for d in a.get("deployments") or [] if isinstance(d, dict)]
    return ", ".join(ids) if ids else "-"


def app_rows(apps: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for a in apps:
        instances = a.get("instances", 0)
        rows.append([
            a.get("id"),
            f"{a.get('tasksRunning', 0)}/{instances}",
            f"{a.get('tasksHealthy', 0)}/{instances}" if a.get("healthChecks") else "-",
            f"{a.get('cpus', '-')}",
            f"{a.get('mem', '-')}",
            _deployments_of(a),
            _command_of(a),
        ])
    return rows


def task_rows(tasks: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for t in tasks:
        results = t.get("healthCheckResults") or []
        health = "-" if not results else ("healthy" if all(r.get("alive") for r in results) else "unhealthy")
        rows.append([
            t.get("id"), t.get("appId"), t.get("state"), health, t.get("host"),
            ",".join(str(p) for p in t.get("ports") or []) or "-", t.get("startedAt") or t.get("stagedAt"),
        ])
    return rows


TASK_COLUMNS = ("TASK", "APP", "STATE", "HEALTH", "HOST", "PORTS", "STARTED")


# --- verbs ----------------------------------------------------------------------------


@app.command("add")
@click.argument("file", type=click.File("r"), default="-")
@force_option
@wait_options
@json_option
def add(file: Any, force: bool, no_wait: bool, timeout: float | None, as_json: bool) -> None:
    """Create an app from a JSON definition in FILE (`-` or nothing: stdin)."""
    name = "stdin" if file is sys.stdin or getattr(file, "name", "") == "<stdin>" else repr(file.name)
    definition = read_json_object(file.read(), name)
    api = marathon_api()
    resp = api.request("POST", "/v2/apps", {"force": True if force else None}, body=definition)
    body = resp.body if isinstance(resp.body, dict) else {}
    app_id = str(body.get("id") or normalize_id(str(definition.get("id", ""))))
    finish_change(api, resp, [app_id], as_json=as_json, no_wait=no_wait, timeout=timeout,
                  summary=f"created app {app_id}")


@app.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the apps, with running/healthy tasks against instances."""
    body = marathon_api().get("/v2/apps").body
    if as_json:
        print_json(body)
        return
    apps = (body or {}).get("apps") or []
    if not apps:
        click.echo("no apps")
        return
    print_table(("ID", "RUNNING", "HEALTHY", "CPUS", "MEM", "DEPLOYMENTS", "CMD"), app_rows(apps))


@app.command("show")
@click.argument("app_id", metavar="ID")
@json_option
def show(app_id: str, as_json: bool) -> None:
    """Show one app and its tasks."""
    body = marathon_api().get(app_path(app_id), {"embed": "app.taskStats"}).body
    if as_json:
        print_json(body)
        return
    a = (body or {}).get("app") or {}
    instances = a.get("instances", 0)
    print_fields([
        ("id", a.get("id")),
        ("cmd", _command_of(a)),
        ("instances", instances),
        ("running", f"{a.get('tasksRunning', 0)}/{instances}"),
        ("healthy", f"{a.get('tasksHealthy', 0)}/{instances}"),
        ("staged", a.get("tasksStaged", 0)),
        ("cpus / mem / disk", f"{a.get('cpus')} / {a.get('mem')} / {a.get('disk')}"),
        ("version", a.get("version")),
        ("deployments", _deployments_of(a)),
        ("labels", a.get("labels") or "-"),
        ("last failure", (a.get("lastTaskFailure") or {}).get("message", "-")),
    ])
    tasks = a.get("tasks") or []
    if tasks:
        click.echo()
        print_table(TASK_COLUMNS, task_rows(tasks))


@app.command("update")
@click.argument("app_id", metavar="ID")
@click.argument("properties", nargs=-1, metavar="[KEY=VALUE]...")
@force_option
@wait_options
@json_option
def update(app_id: str, properties: tuple[str, ...], force: bool, no_wait: bool, timeout: float | None,
           as_json: bool) -> None:
    """Change some fields of an app (a partial update).

    Each VALUE is read as JSON when it parses, else as a string:
    `lichen app update /web instances=3 cmd="sleep 10" env='{"A":"b"}'`.
    With no KEY=VALUE, a JSON object is read from stdin.
    """
    if properties:
        changes = parse_assignments(properties)
    else:
        changes = read_json_object(sys.stdin.read(), "stdin")
    api = marathon_api()
    resp = api.request("PUT", app_path(app_id), {"partialUpdate": True, "force": True if force else None},
                       body=changes)
    finish_change(api, resp, [normalize_id(app_id)], as_json=as_json, no_wait=no_wait, timeout=timeout,
                  summary=f"updating app {normalize_id(app_id)}")


@app.command("scale")
@click.argument("app_id", metavar="ID")
@click.argument("instances", type=click.IntRange(min=0))
@force_option
@wait_options
@json_option
def scale(app_id: str, instances: int, force: bool, no_wait: bool, timeout: float | None,
          as_json: bool) -> None:
    """Set the number of instances of an app."""
    api = marathon_api()
    resp = api.request("PUT", app_path(app_id), {"partialUpdate": True, "force": True if force else None},
                       body={"instances": instances})
    finish_change(api, resp, [normalize_id(app_id)], as_json=as_json, no_wait=no_wait, timeout=timeout,
                  summary=f"scaling app {normalize_id(app_id)} to {instances}")


@app.command("restart")
@click.argument("app_id", metavar="ID")
@force_option
@wait_options
@json_option
def restart(app_id: str, force: bool, no_wait: bool, timeout: float | None, as_json: bool) -> None:
    """Replace every task of an app (a rolling restart)."""
    api = marathon_api()
    resp = api.request("POST", app_path(app_id) + "/restart", {"force": True if force else None})
    finish_change(api, resp, [normalize_id(app_id)], as_json=as_json, no_wait=no_wait, timeout=timeout,
                  summary=f"restarting app {normalize_id(app_id)}")


@app.command("remove")
@click.argument("app_id", metavar="ID")
@wait_options
@json_option
def remove(app_id: str, no_wait: bool, timeout: float | None, as_json: bool) -> None:
    """Stop an app's tasks and delete it."""
    api = marathon_api()
    resp = api.request("DELETE", app_path(app_id))
    finish_change(api, resp, [normalize_id(app_id)], as_json=as_json, no_wait=no_wait, timeout=timeout,
                  summary=f"removing app {normalize_id(app_id)}")


@app.command("versions")
@click.argument("app_id", metavar="ID")
@json_option
def versions(app_id: str, as_json: bool) -> None:
    """List the stored versions of an app, newest first."""
    body = marathon_api().get(app_path(app_id) + "/versions").body
    if as_json:
        print_json(body)
        return
    found = sorted(((body or {}).get("versions") or []), reverse=True)
    print_table(("VERSION",), [[v] for v in found])
