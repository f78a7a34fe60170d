"""`lichen job ...`: Chronos jobs through the `/v1/scheduler` REST API.

Each verb is one HTTP call (see client.py for finding the API and rendering errors).
Chronos answers 400 `{"status": "Bad Request", "message": ...}` for an unknown job or bad
input; the message is printed and the command exits 1.

`job add` sends a job with a `parents` key to `/dependency` and any other to `/iso8601`,
as chronos-python does. `job graph` draws the dependency DAG as a tree from
`/graph/csv` (a `node,<name>,<lastState>,<state>` line per job, a `link,<parent>,<child>`
line per edge), which carries each job's last outcome; `--dot` prints `/graph/dot` as is.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

from lichen.cli.client import (
    chronos_api,
    endpoint_options,
    endpoints_from,
    fail,
    json_option,
    print_fields,
    print_json,
    print_table,
    stdout_console,
)
from lichen.cli.main import cli

PREFIX = "/v1/scheduler"


@cli.group()
@endpoint_options
@click.pass_context
def job(ctx: click.Context, master: str | None, marathon: str | None, chronos: str | None) -> None:
    """Manage Chronos jobs."""
    endpoints_from(ctx, master, marathon, chronos)


# --- pure parts -----------------------------------------------------------------------


def read_job(text: str, source: str) -> dict[str, Any]:
    """One job definition (a JSON object with a `name`) read from `source`."""
    try:
        body = json.loads(text)
    except ValueError as e:
        fail(f"{source} is not JSON: {e}")
    if not isinstance(body, dict):
        fail(f"{source} must hold one JSON object (a job definition)")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        fail(f'{source}: a job needs a "name"')
    return body


def job_path(name: str) -> str:
    """`/job/<name>` with the name quoted as one path segment."""
    return "/" + urllib.parse.quote(name, safe="")


def last_status(j: Mapping[str, Any]) -> str:
    """success, failure or fresh, from `lastSuccess` / `lastError`.

    The timestamps are fixed-width UTC strings, so comparing them as strings is
    comparing times (chronos-nagios does the same).
    """
    success = str(j.get("lastSuccess") or "")
    error = str(j.get("lastError") or "")
    if not success and not error:
        return "fresh"
    return "success" if success >= error else "failure"


def trigger_of(j: Mapping[str, Any]) -> str:
    """What starts a job: its schedule (and zone), or `after A, B` for a dependent job."""
    if "parents" in j and j.get("parents") is not None:
        return "after " + ", ".join(str(p) for p in j["parents"])
    schedule = str(j.get("schedule") or "-")
    zone = j.get("scheduleTimeZone")
    return f"{schedule} ({zone})" if zone else schedule


def job_rows(jobs: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [j.get("name"), trigger_of(j), last_status(j), j.get("successCount", 0), j.get("errorCount", 0),
         "yes" if j.get("disabled") else "no"]
        for j in sorted(jobs, key=lambda j: str(j.get("name", "")))
    ]


JOB_COLUMNS = ("NAME", "SCHEDULE / PARENTS", "LAST", "SUCCESSES", "ERRORS", "DISABLED")

# The fields `job show` puts first, in this order; the rest follow as the API sent them.
_SHOWN_FIRST = (
    "name", "command", "shell", "arguments", "schedule", "scheduleTimeZone", "parents", "disabled",
    "successCount", "errorCount", "errorsSinceLastSuccess", "lastSuccess", "lastError", "retries",
    "cpus", "mem", "disk", "owner", "ownerName", "description", "runAsUser", "container",
)


def show_pairs(j: Mapping[str, Any]) -> list[tuple[str, Any]]:
    keys = [k for k in _SHOWN_FIRST if k in j] + [k for k in j if k not in _SHOWN_FIRST]
    pairs: list[tuple[str, Any]] = [("status", last_status(j))]
    for key in keys:
        pairs.append((key, _shown(key, j[key])))
    return pairs


def _shown(key: str, value: Any) -> Any:
    """A field as `job show` prints it: JSON words for booleans, `-` for nothing."""
    if value == "" or value == [] or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if key == "parents" and isinstance(value, list):
        return ", ".join(str(p) for p in value)
    return value


HISTORY_COLUMNS = ("TASK", "AGENT", "START", "END", "DURATION", "STATUS")


def history_rows(history: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [t.get("taskId"), t.get("slaveId"), t.get("startTime"), t.get("endTime"), t.get("duration"),
         t.get("status")]
        for t in history
    ]


_PERCENTILES = (("median", "median"), ("mean", "mean"), ("75th", "75thPercentile"),
                ("95th", "95thPercentile"), ("98th", "98thPercentile"), ("99th", "99thPercentile"))


def histogram_line(histogram: Mapping[str, Any]) -> str:
    """`runs 3: median 1200 ms, mean 1200 ms, 75th ...` (Chronos's histogram is in ms)."""
    parts = []
    for label, key in _PERCENTILES:
        value = histogram.get(key)
        parts.append(f"{label} {_ms(value)}")
    return f"runs {histogram.get('count', 0)}: " + ", ".join(parts)


def _ms(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g} ms"
    return "-"


# --- the graph ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobGraph:
    """Jobs (name -> (lastState, state)) and parent -> child edges."""

    nodes: dict[str, tuple[str, str]]
    links: tuple[tuple[str, str], ...]

    def parents(self, name: str) -> list[str]:
        return sorted({p for p, c in self.links if c == name})

    def children(self, name: str) -> list[str]:
        return sorted({c for p, c in self.links if p == name})

    def roots(self) -> list[str]:
        """Jobs without parents, then (defensively: the API forbids cycles) one job of
        each part of the graph no root reaches."""
        roots = sorted(n for n in self.nodes if not self.parents(n))
        seen = self._reachable(roots)
        for n in sorted(self.nodes):
            if n not in seen:
                roots.append(n)
                seen |= self._reachable([n])
        return roots

    def _reachable(self, start: Sequence[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(start)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.children(n))
        return seen


def parse_graph_csv(text: str) -> JobGraph:
    """Chronos's `/graph/csv`. Unknown line kinds are skipped; a job only named in a link
    is added with unknown states."""
    nodes: dict[str, tuple[str, str]] = {}
    links: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if fields[0] == "node" and len(fields) >= 2 and fields[1]:
            nodes[fields[1]] = (fields[2] if len(fields) > 2 else "?", fields[3] if len(fields) > 3 else "?")
        elif fields[0] == "link" and len(fields) >= 3 and fields[1] and fields[2]:
            links.append((fields[1], fields[2]))
    for parent, child in links:
        nodes.setdefault(parent, ("?", "?"))
        nodes.setdefault(child, ("?", "?"))
    return JobGraph(nodes, tuple(links))


_STATE_STYLE = {"success": "green", "failure": "red", "fresh": "dim"}


def _label(graph: JobGraph, name: str, *, repeated: bool) -> Text:
    last, state = graph.nodes.get(name, ("?", "?"))
    text = Text(name, style="bold")
    text.append(f"  {last}", style=_STATE_STYLE.get(last, ""))
    if state not in ("idle", "?", ""):
        text.append(f", {state}", style="yellow")
    parents = graph.parents(name)
    if len(parents) > 1:
        text.append(f"  (after {' and '.join(parents)})", style="cyan")
    if repeated and graph.children(name):
        text.append("  (children shown above)", style="dim")
    return text


def graph_tree(graph: JobGraph) -> Tree:
    """Roots are jobs without parents; each child sits under each of its parents.

    A child with several parents says so; its own subtree is drawn only the first
    time it appears, so a wide DAG does not blow up.
    """
    tree = Tree(Text("jobs", style="bold"), guide_style="dim")
    expanded: set[str] = set()

    def add(branch: Tree, name: str, path: frozenset[str]) -> None:
        repeated = name in expanded
        node = branch.add(_label(graph, name, repeated=repeated))
        if repeated or name in path:
            return
        expanded.add(name)
        for child in graph.children(name):
            add(node, child, path | {name})

    for root in graph.roots():
        add(tree, root, frozenset())
    return tree


# --- verbs ----------------------------------------------------------------------------


@job.command("add")
@click.argument("file", type=click.File("r"))
def add(file: Any) -> None:
    """Add or replace a job from a JSON definition in FILE (`-`: stdin).

    A job with `parents` is dependent (POST /dependency); any other is scheduled
    (POST /iso8601).
    """
    source = "stdin" if file is sys.stdin or getattr(file, "name", "") == "<stdin>" else repr(file.name)
    definition = read_job(file.read(), source)
    name = definition["name"]
    kind = "/dependency" if "parents" in definition else "/iso8601"
    chronos_api().request("POST", PREFIX + kind, body=definition)
    click.echo(f"added job {name}")


@job.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the jobs: what starts them, their last outcome and counts."""
    body = chronos_api().get(PREFIX + "/jobs").body
    if as_json:
        print_json(body)
        return
    jobs = [j for j in body or [] if isinstance(j, dict)] if isinstance(body, list) else []
    if not jobs:
        click.echo("no jobs")
        return
    print_table(JOB_COLUMNS, job_rows(jobs))


@job.command("show")
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """Show one job's definition and counts."""
    body = chronos_api().get(PREFIX + "/job" + job_path(name)).body
    if as_json:
        print_json(body)
        return
    if not isinstance(body, dict):
        fail(f"Chronos answered no job object for {name!r}")
    print_fields(show_pairs(body))


@job.command("run")
@click.argument("name")
@click.option("--arguments", default=None, metavar="S",
              help="Appended to the command for this run (and put in the task id).")
def run(name: str, arguments: str | None) -> None:
    """Start a job now, whatever its schedule."""
    chronos_api().request("PUT", PREFIX + "/job" + job_path(name), {"arguments": arguments})
    click.echo(f"started job {name}")


@job.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Delete a job.

    Its running tasks are killed; its children get its parents (or its schedule).
    """
    chronos_api().request("DELETE", PREFIX + "/job" + job_path(name))
    click.echo(f"removed job {name}")


@job.command("kill")
@click.argument("name")
def kill(name: str) -> None:
    """Kill a job's running tasks and drop its queued ones."""
    chronos_api().request("DELETE", PREFIX + "/task/kill" + job_path(name))
    click.echo(f"killed the tasks of job {name}")


@job.command("history")
@click.argument("name")
@json_option
def history(name: str, as_json: bool) -> None:
    """A job's recorded runs and the distribution of their durations."""
    body = chronos_api().get(PREFIX + "/job/stat" + job_path(name)).body
    if as_json:
        print_json(body)
        return
    stats = body if isinstance(body, dict) else {}
    runs = [t for t in stats.get("taskStatHistory") or [] if isinstance(t, dict)]
    if runs:
        print_table(HISTORY_COLUMNS, history_rows(runs))
    else:
        click.echo("no runs recorded")
    click.echo(histogram_line(stats.get("histogram") or {}))


@job.command("graph")
@click.option("--dot", is_flag=True, help="Print the graph in DOT (for graphviz) instead of a tree.")
def graph(dot: bool) -> None:
    """Draw the jobs' dependencies as a tree.

    Jobs without parents are at the top, each child under each of its parents.
    """
    api = chronos_api()
    if dot:
        text = api.get_text(PREFIX + "/graph/dot")
        click.echo(text, nl=not text.endswith("\n"))
        return
    jobs = parse_graph_csv(api.get_text(PREFIX + "/graph/csv"))
    if not jobs.nodes:
        click.echo("no jobs")
        return
    stdout_console().print(graph_tree(jobs))
