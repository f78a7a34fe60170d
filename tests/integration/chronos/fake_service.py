"""An in-memory `ChronosServiceApi` for testing the REST API without Mesos.

Jobs live in a dict. A run happens at once: `run_job` records a finished run (it lasts
`duration` seconds, default 1.5, and succeeds unless the job's name is in `failing`)
and updates the job's counters as a real run would. Dependents are not fired; the
calls the API made are kept in `calls` so tests can check what reached the service.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from lichen.api.server import make_app, serve
from lichen.errors import InvalidRequest
from lichen.frameworks.chronos import api
from lichen.frameworks.chronos import job as jobs
from lichen.frameworks.chronos.service_api import RunRecord

START = 1_700_000_000.0


class FakeChronosService:
    def __init__(self) -> None:
        self._jobs: dict[str, Any] = {}
        self.runs: dict[str, list[RunRecord]] = {}
        self.states: dict[str, str] = {}           # job_state overrides ("queued", "2 running")
        self.failing: set[str] = set()
        self.durations: dict[str, float] = {}
        self.calls: list[tuple[str, ...]] = []
        self.address = "127.0.0.1:4400"
        self._now = START

    def now(self) -> float:
        self._now += 10.0
        return self._now

    # ------------------------------------------------------------ reads
    def jobs(self) -> list[Any]:
        return [self._jobs[n] for n in sorted(self._jobs)]

    def get_job(self, name: str) -> Any | None:
        return self._jobs.get(name)

    def job_state(self, name: str) -> str:
        return self.states.get(name, "idle")

    def last_status(self, name: str) -> str:
        job = self._jobs.get(name)
        if job is None or (not job.last_success and not job.last_error):
            return "fresh"
        return "failure" if job.last_error > job.last_success else "success"

    def history(self, name: str) -> list[RunRecord]:
        return list(self.runs.get(name, ()))

    def leader(self) -> str:
        return self.address

    def _require(self, name: str) -> Any:
        job = self._jobs.get(name)
        if job is None:
            raise InvalidRequest(f"Job '{name}' not found")
        return job

    # ------------------------------------------------------------ changes
    def _cycle(self, name: str, parents: set[str]) -> bool:
        seen: set[str] = set()
        todo = list(parents)
        while todo:
            current = todo.pop()
            if current == name:
                return True
            if current in seen:
                continue
            seen.add(current)
            job = self._jobs.get(current)
            if job is not None:
                todo.extend(job.parents or ())
        return False

    async def put_job(self, job: Any) -> None:
        parents = set(job.parents or ())
        missing = sorted(p for p in parents if p not in self._jobs)
        if missing:
            raise InvalidRequest(f"Parent job(s) not found: {', '.join(missing)}", field="parents")
        if self._cycle(job.name, parents):
            raise InvalidRequest(f"Job '{job.name}' would form a dependency cycle", field="parents")
        self.calls.append(("put_job", job.name))
        self._jobs[job.name] = job

    async def delete_job(self, name: str) -> None:
        job = self._require(name)
        self.calls.append(("delete_job", name))
        del self._jobs[name]
        for child in [j for j in self._jobs.values() if name in (j.parents or ())]:
            parents = (set(child.parents) - {name}) | set(job.parents or ())
            if parents:
                child = jobs.with_parents(child, sorted(parents))
            else:
                child = jobs.with_schedule(child, job.schedule or "", job.schedule_time_zone)
            self._jobs[child.name] = child

    async def run_job(self, name: str, arguments: str | None = None) -> None:
        job = self._require(name)
        self.calls.append(("run_job", name, arguments or ""))
        if job.disabled:
            return
        start = self.now()
        end = start + self.durations.get(name, 1.5)
        args = (arguments if arguments is not None else " ".join(job.arguments)).replace(";", "")
        ok = name not in self.failing
        self.runs.setdefault(name, []).append(RunRecord(
            task_id=jobs.task_id(round(start * 1000), 0, name, args), job_name=name,
            agent_id="agent-1", start=start, end=end, status="success" if ok else "failure",
        ))
        if ok:
            self._jobs[name] = jobs.with_counters(
                job, success_count=job.success_count + 1, errors_since_last_success=0,
                last_success=jobs.timestamp(end))
        else:
            self._jobs[name] = jobs.with_counters(
                job, error_count=job.error_count + 1,
                errors_since_last_success=job.errors_since_last_success + 1,
                last_error=jobs.timestamp(end))

    async def kill_tasks(self, name: str) -> None:
        self._require(name)
        self.calls.append(("kill_tasks", name))

    async def mark_success(self, name: str) -> bool:
        job = self._jobs.get(name)
        self.calls.append(("mark_success", name))
        if job is None:
            return False
        self._jobs[name] = jobs.with_counters(
            job, success_count=job.success_count + 1, errors_since_last_success=0,
            last_success=jobs.timestamp(self.now()))
        return True

    async def task_finished(self, task_id: str, status_code: int) -> None:
        parsed = jobs.parse_task_id(task_id)
        if parsed is None or parsed[2] not in self._jobs:
            raise InvalidRequest(f"Unknown task '{task_id}'")
        self.calls.append(("task_finished", task_id, str(status_code)))

    async def progress(self, name: str, task_id: str, elements: int) -> None:
        job = self._require(name)
        if not job.data_job:
            raise InvalidRequest(f"Job '{name}' is not a data processing job")
        self.calls.append(("progress", name, task_id, str(elements)))


class ServedFake:
    """The fake behind the real API on 127.0.0.1:<port 0>, in a thread of its own
    (chronos-python and requests are synchronous)."""

    def __init__(self) -> None:
        self.service = FakeChronosService()
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.address = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServedFake:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        app = make_app()
        api.setup(app, self.service, defaults=jobs.JobDefaults())
        self._runner, host, port = await serve(app, "127.0.0.1", 0, None, "chronos")
        self.address = f"{host}:{port}"
        self.url = f"http://{self.address}"

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[ServedFake]:
    fake = ServedFake().start()
    try:
        yield fake
    finally:
        fake.stop()
