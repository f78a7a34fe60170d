"""`lichen task ...`: Marathon's tasks, and their logs read from the agents' sandboxes.

`task log` finds a task's output the way the Mesos web UI does: the master's
`/master/tasks?task_id=` names the agent, `/master/slaves` gives the agent's address
(its `pid`, `slave(1)@ip:port`), the agent's `/state` gives the sandbox `directory` of
the executor that ran the task, and the agent's files API (`/files/read`, offset -1 =
the file's size) serves `stdout` / `stderr` from there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import click

from lichen.cli.app import TASK_COLUMNS, task_rows
from lichen.cli.client import (
    Api,
    app_path,
    endpoint_options,
    endpoints_from,
    fail,
    json_option,
    marathon_api,
    master_api,
    print_json,
    print_table,
)
from lichen.cli.main import cli

FOLLOW_INTERVAL = 1.0      # seconds between polls for new output with --follow
READ_CHUNK = 64 * 1024     # bytes per /files/read call


@cli.group()
@endpoint_options
@click.pass_context
def task(ctx: click.Context, master: str | None, marathon: str | None, chronos: str | None) -> None:
    """List Marathon tasks and read their logs."""
    endpoints_from(ctx, master, marathon, chronos)


@task.command("list")
@click.argument("app_id", metavar="[APP]", required=False)
@json_option
def list_(app_id: str | None, as_json: bool) -> None:
    """List the tasks of every app, or of APP."""
    api = marathon_api()
    body = api.get(app_path(app_id) + "/tasks" if app_id else "/v2/tasks").body
    if as_json:
        print_json(body)
        return
    tasks = (body or {}).get("tasks") or []
    if not tasks:
        click.echo("no tasks")
        return
    print_table(TASK_COLUMNS, task_rows(sorted(tasks, key=lambda t: (t.get("appId", ""), t.get("id", "")))))


# --- finding the sandbox --------------------------------------------------------------


def agent_url_from_pid(pid: str) -> str:
    """`slave(1)@10.0.0.1:5051` -> `http://10.0.0.1:5051`."""
    _, at, address = pid.rpartition("@")
    if not at or ":" not in address:
        fail(f"cannot tell the agent's address from its pid '{pid}'")
    return "http://" + address


def executor_directory(state: Mapping[str, Any], task_id: str) -> str | None:
    """The sandbox of the executor that runs (or ran) `task_id`, from an agent's /state.

    An executor holds the task when the task is in its tasks, queued_tasks or
    completed_tasks, or (a command task) when its id is the task id.
    """
    frameworks = [*(state.get("frameworks") or []), *(state.get("completed_frameworks") or [])]
    fallback: str | None = None
    for fw in frameworks:
        for ex in [*(fw.get("executors") or []), *(fw.get("completed_executors") or [])]:
            held = [*(ex.get("tasks") or []), *(ex.get("queued_tasks") or []), *(ex.get("completed_tasks") or [])]
            if any(t.get("id") == task_id for t in held if isinstance(t, dict)):
                return str(ex.get("directory"))
            if ex.get("id") == task_id and ex.get("directory") and fallback is None:
                fallback = str(ex["directory"])
    return fallback


def locate_sandbox(master: Api, task_id: str) -> tuple[Api, str]:
    """The agent serving the task's sandbox, and the sandbox directory on it."""
    tasks = (master.get("/master/tasks", {"task_id": task_id}).body or {}).get("tasks") or []
    match = [t for t in tasks if t.get("id") == task_id]
    if not match:
        fail(f"no task '{task_id}' known to the Mesos master at {master.url}")
    agent_id = match[0].get("slave_id") or match[0].get("agent_id")
    agents = (master.get("/master/slaves").body or {}).get("slaves") or []
    agent = next((a for a in agents if a.get("id") == agent_id), None)
    if agent is None or not agent.get("pid"):
        fail(f"task '{task_id}' ran on agent '{agent_id}', which the master no longer knows")
    api = Api(agent_url_from_pid(str(agent["pid"])), f"agent {agent_id}")
    directory = executor_directory(api.get("/state").body or {}, task_id)
    if directory is None:
        fail(f"agent {agent_id} has no sandbox for task '{task_id}' (garbage-collected?)")
    return api, directory


# --- reading a file ---------------------------------------------------------------------


class SandboxFile:
    """A file in an agent's sandbox, read through the Mesos files API."""

    def __init__(self, agent: Api, path: str) -> None:
        self.agent = agent
        self.path = path

    def size(self) -> int:
        return int(self._read(-1, None)["offset"])

    def read(self, offset: int, length: int) -> str:
        return str(self._read(offset, length).get("data", ""))

    def _read(self, offset: int, length: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"path": self.path, "offset": offset}
        if length is not None:
            params["length"] = length
        body = self.agent.get("/files/read", params).body
        if not isinstance(body, dict):
            fail(f"{self.agent.url}/files/read answered no JSON object")
        return body


def tail_offset(file: SandboxFile, size: int, lines: int) -> int:
    """Where the last `lines` lines of the file start (reading backwards in chunks)."""
    if lines <= 0:
        return size
    start = size
    seen = b""
    while start > 0:
        chunk_start = max(0, start - READ_CHUNK)
        seen = file.read(chunk_start, start - chunk_start).encode() + seen
        start = chunk_start
        # A final newline ends the last line; it does not start another.
        body = seen[:-1] if seen.endswith(b"\n") else seen
        if body.count(b"\n") >= lines:
            cut = len(body)
            for _ in range(lines):
                cut = body.rindex(b"\n", 0, cut)
            return start + cut + 1
    return 0


def read_from(file: SandboxFile, offset: int, end: int) -> Iterator[tuple[str, int]]:
    """Chunks of the file from `offset` up to `end`, each with the offset after it."""
    while offset < end:
        data = file.read(offset, min(READ_CHUNK, end - offset))
        if not data:
            return
        offset += len(data.encode())
        yield data, offset


@task.command("log")
@click.argument("task_id", metavar="TASK")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until Ctrl-C.")
@click.option("--stderr", "use_stderr", is_flag=True, help="Read stderr instead of stdout.")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the last lines to print first.")
def log(task_id: str, follow: bool, use_stderr: bool, lines: int) -> None:
    """Print the last lines of a task's stdout (or stderr) from its sandbox."""
    agent, directory = locate_sandbox(master_api(), task_id)
    file = SandboxFile(agent, directory.rstrip("/") + ("/stderr" if use_stderr else "/stdout"))
    size = file.size()
    offset = tail_offset(file, size, lines)
    try:
        while True:
            for data, after in read_from(file, offset, size):
                click.echo(data, nl=False)
                offset = after
            if not follow:
                return
            time.sleep(FOLLOW_INTERVAL)
            size = file.size()
            if size < offset:     # the file was truncated or rotated: start over
                offset = 0
    except KeyboardInterrupt:
        return
