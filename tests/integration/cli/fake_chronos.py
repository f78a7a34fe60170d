"""A small second implementation of the Chronos endpoints `lichen job` calls, for the CLI tests.

Jobs live in a dict; POST `/iso8601` and `/dependency` upsert them (Chronos's rules:
a dependent job needs known parents, an unknown job name is a 400, never a 404). The
graph endpoints are derived from the jobs' `parents`. Errors have Chronos's shape,
`{"status": "Bad Request", "message": ...}`. Every request is recorded as in
`fake_servers.ThreadedServer`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.cli.fake_servers import ThreadedServer

P = "/v1/scheduler"
EMPTY_STATS: dict[str, Any] = {
    "histogram": {"median": 0.0, "98thPercentile": 0.0, "75thPercentile": 0.0, "95thPercentile": 0.0,
                  "99thPercentile": 0.0, "count": 0, "mean": 0.0},
    "taskStatHistory": [],
}


def _bad_request(message: str) -> web.Response:
    return web.json_response({"status": "Bad Request", "message": message}, status=400)


class FakeChronos(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.stats: dict[str, dict[str, Any]] = {}
        self.runs: list[tuple[str, str | None]] = []     # (name, arguments) of manual runs
        self.kills: list[str] = []
        self.states: dict[str, str] = {}                 # name -> state in graph/csv (default idle)

    def add_job(self, definition: dict[str, Any]) -> dict[str, Any]:
        job = {
            "name": definition["name"], "command": "", "shell": True, "epsilon": "PT60S", "executor": "",
            "executorFlags": "", "taskInfoData": "", "retries": 2, "owner": "", "ownerName": "",
            "description": "", "successCount": 0, "errorCount": 0, "lastSuccess": "", "lastError": "",
            "cpus": 0.1, "disk": 256.0, "mem": 128.0, "disabled": False, "softError": False,
            "dataProcessingJobType": False, "errorsSinceLastSuccess": 0, "fetch": [], "uris": [],
            "environmentVariables": [], "arguments": [], "highPriority": False, "runAsUser": "root",
            "concurrent": False, "constraints": [],
            **definition,
        }
        if "parents" not in job:
            job.setdefault("schedule", "R1/2024-05-01T12:00:00.000Z/PT24H")
            job.setdefault("scheduleTimeZone", "")
        self.jobs[job["name"]] = job
        return job

    def routes(self, app: web.Application) -> None:
        app.router.add_get(P + "/jobs", self.list_jobs)
        app.router.add_post(P + "/iso8601", self.post_scheduled)
        app.router.add_post(P + "/dependency", self.post_dependent)
        app.router.add_get(P + "/job/{name}", self.get_job)
        app.router.add_put(P + "/job/{name}", self.run_job)
        app.router.add_delete(P + "/job/{name}", self.delete_job)
        app.router.add_delete(P + "/task/kill/{name}", self.kill_job)
        app.router.add_get(P + "/job/stat/{name}", self.job_stat)
        app.router.add_get(P + "/graph/dot", self.graph_dot)
        app.router.add_get(P + "/graph/csv", self.graph_csv)

    def _known(self, request: web.Request) -> str | web.Response:
        name = request.match_info["name"]
        if name not in self.jobs:
            return _bad_request(f"requirement failed: Job '{name}' not found")
        return name

    async def list_jobs(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.jobs.values()))

    async def _upsert(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("cannot parse the job")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name, re.ASCII):
            return _bad_request(f"the job's name must match [\\w.-]+, not {name!r}")
        return dict(body)

    async def post_scheduled(self, request: web.Request) -> web.Response:
        body = await self._upsert(request)
        if isinstance(body, web.Response):
            return body
        if str(body.get("schedule", "R//PT1H")).count("/") != 2:
            return _bad_request(f"Cannot parse schedule '{body['schedule']}'")
        self.add_job(body)
        return web.Response(status=204)

    async def post_dependent(self, request: web.Request) -> web.Response:
        body = await self._upsert(request)
        if isinstance(body, web.Response):
            return body
        parents = body.get("parents") or []
        if not parents:
            return _bad_request("a dependent job needs parents")
        for parent in parents:
            if parent not in self.jobs:
                return _bad_request(f"requirement failed: parent job '{parent}' not found")
        self.add_job(body)
        return web.Response(status=204)

    async def get_job(self, request: web.Request) -> web.Response:
        name = self._known(request)
        return name if isinstance(name, web.Response) else web.json_response(self.jobs[name])

    async def run_job(self, request: web.Request) -> web.Response:
        name = self._known(request)
        if isinstance(name, web.Response):
            return name
        self.runs.append((name, request.query.get("arguments")))
        return web.Response(status=204)

    async def delete_job(self, request: web.Request) -> web.Response:
        name = self._known(request)
        if isinstance(name, web.Response):
            return name
        del self.jobs[name]
        return web.Response(status=204)

    async def kill_job(self, request: web.Request) -> web.Response:
        name = self._known(request)
        if isinstance(name, web.Response):
            return name
        self.kills.append(name)
        return web.Response(status=204)

    async def job_stat(self, request: web.Request) -> web.Response:
        name = self._known(request)
        if isinstance(name, web.Response):
            return name
        return web.json_response(self.stats.get(name, EMPTY_STATS))

    def _links(self) -> list[tuple[str, str]]:
        return [(p, j["name"]) for j in self.jobs.values() for p in j.get("parents") or []]

    async def graph_dot(self, request: web.Request) -> web.Response:
        lines = ["digraph G {", "  node [style=filled colorscheme=\"set312\"];"]
        lines += [f'  "{n}" [label="{n}" fillcolor=1];' for n in self.jobs]
        lines += [f'  "{p}" -> "{c}";' for p, c in self._links()]
        lines.append("}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def graph_csv(self, request: web.Request) -> web.Response:
        lines = []
        for j in self.jobs.values():
            success, error = j.get("lastSuccess", ""), j.get("lastError", "")
            last = "fresh" if not (success or error) else ("success" if success >= error else "failure")
            lines.append(f"node,{j['name']},{last},{self.states.get(j['name'], 'idle')}")
        lines += [f"link,{p},{c}" for p, c in self._links()]
        return web.Response(text="".join(line + "\n" for line in lines), content_type="text/plain")


@pytest.fixture
def chronos() -> Iterator[FakeChronos]:
    server = FakeChronos()
    server.start()
    try:
        yield server
    finally:
        server.stop()
