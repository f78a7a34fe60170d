"""What the v2 REST API (`api.py`) may ask of the Marathon service (`service.py`).

The API parses and validates requests (appdef.parse_app / merge_app / parse_group),
then calls these methods; it renders their results with appdef's JSON builders. Every
method that changes state persists the change before it returns, so whatever the API
answered survives a kill -9.

Errors: `lichen.errors.NotFound` (404, message as Marathon's, e.g. "App '/x' does not
exist"), `lichen.errors.Conflict` (409, e.g. "An app with id [/x] already exists."),
`AppLocked` (409 with the locking deployments), `appdef.ValidationFailed` (422),
`lichen.errors.InvalidRequest` (400).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from lichen.errors import Conflict
from lichen.frameworks.marathon.model import DeploymentPlan, Instance


class AppLocked(Conflict):
    """An app is part of a running deployment and `force` was not given."""

    def __init__(self, deployment_ids: list[str]) -> None:
        first = deployment_ids[0] if deployment_ids else ""
        super().__init__(
            "App is locked by one or more deployments. Override with the option '?force=true'. "
            f"View details at '/v2/deployments/{first}'."
        )
        self.deployment_ids = deployment_ids


@dataclass(frozen=True, slots=True)
class QueueEntry:
    app_id: str
    count: int            # instances waiting to be launched
    delay_left: float     # seconds of launch backoff left
    overdue: bool
    since: float          # epoch seconds the app has been waiting since


class MarathonServiceApi(Protocol):
    # ---------------------------------------------------------------- reads (sync, in memory)
    def list_apps(self) -> list[Any]:
        """Current AppDefinitions, sorted by id."""

    def get_app(self, app_id: str) -> Any | None:
        """The current AppDefinition, or None."""

    def app_versions(self, app_id: str) -> list[str]:
        """Stored versions of the app, newest first (NotFound if the app is unknown)."""

    def app_version(self, app_id: str, version: str) -> Any | None:
        """The AppDefinition as it was at `version`, or None."""

    def instances(self, app_id: str | None = None) -> list[Instance]:
        """Live instances (not yet expunged), of one app or all."""

    def last_task_failure(self, app_id: str) -> dict[str, Any] | None:
        """Marathon's lastTaskFailure object for the app, or None."""

    def deployments(self) -> list[DeploymentPlan]:
        """Running deployments, oldest first."""

    def deployment_ids_for(self, app_id: str) -> list[str]:
        """Ids of running deployments that affect the app."""

    def root_group(self) -> Any:
        """The whole tree as an appdef.GroupDefinition (id "/")."""

    def get_group(self, group_id: str) -> Any | None:
        """A GroupDefinition, or None."""

    def group_versions(self, group_id: str) -> list[str]:
        """Versions of a group, newest first."""

    def queue(self) -> list[QueueEntry]:
        """Apps waiting for launches."""

    def info(self) -> dict[str, Any]:
        """framework_id, master, leader (host:port of this Marathon), elected, version, http_port."""

    # ---------------------------------------------------------------- changes (persisted on return)
    async def put_apps(self, apps: list[Any], *, force: bool) -> DeploymentPlan:
        """Create or replace these complete AppDefinitions (already parsed/merged) in one
        deployment. Assigns service ports and versions. AppLocked unless force."""

    async def create_app(self, app: Any, *, force: bool) -> tuple[Any, DeploymentPlan]:
        """Create one app (Conflict if it exists); returns the stored definition and the plan."""

    async def rollback_app(self, app_id: str, version: str, *, force: bool) -> DeploymentPlan:
        """Go back to a stored version (NotFound "App '/x' does not exist in version v")."""

    async def delete_app(self, app_id: str, *, force: bool) -> DeploymentPlan:
        """Stop and remove the app (NotFound "App '/x' does not exist")."""

    async def restart_app(self, app_id: str, *, force: bool) -> DeploymentPlan:
        """Rolling restart with the same definition (a new version)."""

    async def kill_instances(
        self, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
    ) -> tuple[list[Instance], DeploymentPlan | None]:
        """Kill these tasks. With scale, lower the apps' instances by as many (a deployment).
        Without, the instances are replaced. Unknown task ids are ignored (the API checks
        them first where Marathon answers 404)."""

    async def put_group(self, group: Any, *, force: bool) -> DeploymentPlan:
        """Create or update a group (GroupDefinition) and everything in it."""

    async def create_group(self, group: Any, *, force: bool) -> DeploymentPlan:
        """Conflict "Group /x is already created. Use PUT to change this group." if it exists."""

    async def delete_group(self, group_id: str, *, force: bool) -> DeploymentPlan:
        """Stop and remove everything in the group (NotFound "Group '/x' does not exist")."""

    async def cancel_deployment(self, deployment_id: str, *, force: bool) -> DeploymentPlan | None:
        """force: just stop it (None). Otherwise roll back: returns the rollback deployment.
        NotFound "DeploymentPlan <id> does not exist"."""

    async def reset_delay(self, app_id: str) -> None:
        """Clear the app's launch backoff (NotFound "Application /x not found in tasks queue.")."""

    # ---------------------------------------------------------------- events
    def subscribe_events(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every event (dicts with eventType and timestamp)."""

    def unsubscribe_events(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering to that queue."""

    def publish(self, event: dict[str, Any]) -> None:
        """Emit an event to every subscriber and callback (the API emits api_post_event,
        event_stream_attached/detached and (un)subscribe_event through this)."""

    async def add_callback(self, url: str) -> None:
        """Persisted HTTP callback subscription."""

    async def remove_callback(self, url: str) -> None:
        """Remove a callback subscription (no error if absent)."""

    def callbacks(self) -> list[str]:
        """Callback URLs."""
