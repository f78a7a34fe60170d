"""What the REST API (`api.py`) may ask of the Chronos service (`service.py`).

Jobs cross this boundary as `job.Job` values (validated, defaults filled). Methods that
change state persist the change before they return. Errors: `lichen.errors.InvalidRequest`
(400: Chronos answers 400 for unknown job names too), `lichen.errors.NotFound` (404, unknown
paths only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a job, as history and stats show it."""

    task_id: str            # ct:<dueMillis>:<attempt>:<job>:<args>
    job_name: str
    agent_id: str
    start: float            # epoch seconds (0.0 = not started)
    end: float | None       # epoch seconds, None while running
    status: str             # "running" | "success" | "failure" | "killed"
    exit_message: str = ""


class ChronosServiceApi(Protocol):
    def jobs(self) -> list[Any]:
        """Every job (job.Job), sorted by name."""

    def get_job(self, name: str) -> Any | None:
        """A job.Job, or None."""

    def job_state(self, name: str) -> str:
        """"idle", "queued" or "<n> running"."""

    def last_status(self, name: str) -> str:
        """"success", "failure" or "fresh" (never ran)."""

    def history(self, name: str) -> list[RunRecord]:
        """The job's runs, oldest first (bounded)."""

    def leader(self) -> str:
        """host:port of this (the leading) instance."""

    async def put_job(self, job: Any) -> None:
        """Create or replace (by name). InvalidRequest for unknown parents or a cycle."""

    async def delete_job(self, name: str) -> None:
        """Remove the job (children re-parented or made scheduled, §5.6); kill its tasks.
        InvalidRequest "Job '<name>' not found" if unknown."""

    async def run_job(self, name: str, arguments: str | None = None) -> None:
        """Start a run now (attempt 0). InvalidRequest if unknown."""

    async def kill_tasks(self, name: str) -> None:
        """Kill the job's running tasks and drop its queued runs. InvalidRequest if unknown."""

    async def mark_success(self, name: str) -> bool:
        """Count a success without a task and fire the dependents."""

    async def task_finished(self, task_id: str, status_code: int) -> None:
        """2.x async completion callback (PUT /scheduler/task/{taskId})."""

    async def progress(self, name: str, task_id: str, elements: int) -> None:
        """dataProcessingJobType progress; InvalidRequest if the job is not a data job."""
