"""Marathon's event bus payloads and their Server-Sent Events framing (pure).

Every builder returns a JSON-ready dict with `eventType` and `timestamp` (marathon-python's
event constructor requires both) plus the fields Marathon 1.4-1.10 sends for that type.
The service calls the builders with its clock's `now`; the API frames them for
`GET /v2/events` with `sse_frame` and delivers them to callback URLs as they are.

marathon-python ends its stream on any event type it does not know, so `CLIENT_TYPES`
lists the types sent to a stream that did not ask for specific ones; the scheduler_*
events go only to streams naming them.
"""

from __future__ import annotations

import json
from typing import Any

from lichen.frameworks.marathon.appdef import plan_json, timestamp
from lichen.frameworks.marathon.model import Action, DeploymentPlan, Instance

__all__ = [
    "CLIENT_TYPES",
    "add_health_check_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_failed",
    "deployment_info",
    "deployment_step_failure",
    "deployment_step_success",
    "deployment_success",
    "event_stream_attached",
    "event_stream_detached",
    "failed_health_check_event",
    "framework_message_event",
    "group_change_failed",
    "group_change_success",
    "health_status_changed_event",
    "heartbeat_frame",
    "instance_changed_event",
    "instance_health_changed_event",
    "light",
    "remove_health_check_event",
    "scheduler_disconnected_event",
    "scheduler_registered_event",
    "scheduler_reregistered_event",
    "sse_frame",
    "status_update_event",
    "subscribe_event",
    "unhealthy_instance_kill_event",
    "unknown_instance_terminated_event",
    "unsubscribe_event",
    "wanted",
]

# The event types marathon-python 0.13.0 can parse; anything else ends its stream.
CLIENT_TYPES = frozenset(
    {
        "api_post_event",
        "status_update_event",
        "framework_message_event",
        "subscribe_event",
        "unsubscribe_event",
        "add_health_check_event",
        "remove_health_check_event",
        "failed_health_check_event",
        "health_status_changed_event",
        "unhealthy_task_kill_event",
        "unhealthy_instance_kill_event",
        "group_change_success",
        "group_change_failed",
        "deployment_info",
        "deployment_success",
        "deployment_failed",
        "deployment_step_success",
        "deployment_step_failure",
        "event_stream_attached",
        "event_stream_detached",
        "app_terminated_event",
        "instance_changed_event",
        "instance_health_changed_event",
        "unknown_instance_terminated_event",
        "pod_created_event",
        "pod_updated_event",
        "pod_deleted_event",
    }
)

# Mesos task state -> Marathon instance condition.
_CONDITIONS = {
    "TASK_STAGING": "Staging",
    "TASK_STARTING": "Starting",
    "TASK_RUNNING": "Running",
    "TASK_KILLING": "Killing",
    "TASK_KILLED": "Killed",
    "TASK_FINISHED": "Finished",
    "TASK_FAILED": "Failed",
    "TASK_ERROR": "Error",
    "TASK_DROPPED": "Dropped",
    "TASK_GONE": "Gone",
    "TASK_GONE_BY_OPERATOR": "Gone",
    "TASK_LOST": "Unreachable",
    "TASK_UNREACHABLE": "Unreachable",
    "TASK_UNKNOWN": "Unknown",
}


def _event(event_type: str, now: float, **fields: Any) -> dict[str, Any]:
    return {"eventType": event_type, "timestamp": timestamp(now), **fields}


# ---------------------------------------------------------------- API and subscriptions


def api_post_event(
    client_ip: str, uri: str, app_json: dict[str, Any], *, now: float
) -> dict[str, Any]:
    """An app was created, changed, restarted or deleted through the API."""
    return _event("api_post_event", now, clientIp=client_ip, uri=uri, appDefinition=app_json)


def subscribe_event(client_ip: str, callback_url: str, *, now: float) -> dict[str, Any]:
    return _event("subscribe_event", now, clientIp=client_ip, callbackUrl=callback_url)


def unsubscribe_event(client_ip: str, callback_url: str, *, now: float) -> dict[str, Any]:
    return _event("unsubscribe_event", now, clientIp=client_ip, callbackUrl=callback_url)


def event_stream_attached(remote_address: str, *, now: float) -> dict[str, Any]:
    return _event("event_stream_attached", now, remoteAddress=remote_address)


def event_stream_detached(remote_address: str, *, now: float) -> dict[str, Any]:
    return _event("event_stream_detached", now, remoteAddress=remote_address)


# ---------------------------------------------------------------- tasks and instances


def _ip_addresses(addresses: list[dict[str, Any]] | None, host: str) -> list[dict[str, str]]:
    # marathon-python accepts only ipAddress/protocol in these objects.
    if addresses is None:
        return []
    return [
        {"ipAddress": str(a.get("ipAddress", host)), "protocol": str(a.get("protocol", "IPv4"))}
        for a in addresses
    ]


def status_update_event(
    instance: Instance,
    *,
    message: str = "",
    ip_addresses: list[dict[str, Any]] | None = None,
    now: float,
) -> dict[str, Any]:
    """A Mesos status update for one of the instance's tasks (its state is `instance.state`)."""
    return _event(
        "status_update_event",
        now,
        slaveId=instance.agent_id,
        taskId=instance.task_id,
        taskStatus=instance.state,
        message=message,
        appId=instance.app_id,
        host=instance.host,
        ipAddresses=_ip_addresses(ip_addresses, instance.host),
        ports=list(instance.ports),
        version=instance.version,
    )


def condition_of(state: str) -> str:
    """The instance condition Marathon reports for a Mesos task state."""
    return _CONDITIONS.get(state, "Unknown")


def instance_changed_event(
    instance: Instance, condition: str | None = None, *, now: float
) -> dict[str, Any]:
    """The instance's condition changed (default: derived from its task state)."""
    return _event(
        "instance_changed_event",
        now,
        instanceId=instance.instance_id,
        condition=condition or condition_of(instance.state),
        runSpecId=instance.app_id,
        agentId=instance.agent_id,
        host=instance.host,
        runSpecVersion=instance.version,
    )


def instance_health_changed_event(
    instance_id: str, run_spec_id: str, run_spec_version: str, healthy: bool | None, *, now: float
) -> dict[str, Any]:
    return _event(
        "instance_health_changed_event",
        now,
        instanceId=instance_id,
        runSpecId=run_spec_id,
        runSpecVersion=run_spec_version,
        healthy=healthy,
    )


def unknown_instance_terminated_event(
    instance_id: str, run_spec_id: str, condition: str, *, now: float
) -> dict[str, Any]:
    return _event(
        "unknown_instance_terminated_event",
        now,
        instanceId=instance_id,
        runSpecId=run_spec_id,
        condition=condition,
    )


def framework_message_event(
    slave_id: str, executor_id: str, message: str, *, now: float
) -> dict[str, Any]:
    return _event(
        "framework_message_event", now, slaveId=slave_id, executorId=executor_id, message=message
    )


def app_terminated_event(app_id: str, *, now: float) -> dict[str, Any]:
    return _event("app_terminated_event", now, appId=app_id)


# ---------------------------------------------------------------- health


def add_health_check_event(
    app_id: str, version: str, health_check: dict[str, Any], *, now: float
) -> dict[str, Any]:
    return _event(
        "add_health_check_event", now, appId=app_id, version=version, healthCheck=health_check
    )


def remove_health_check_event(app_id: str, *, now: float) -> dict[str, Any]:
    return _event("remove_health_check_event", now, appId=app_id)


def failed_health_check_event(
    app_id: str, instance_id: str, health_check: dict[str, Any], *, now: float
) -> dict[str, Any]:
    """One failed check. Marathon puts the instance id in `taskId`; clients read it there."""
    return _event(
        "failed_health_check_event",
        now,
        appId=app_id,
        taskId=instance_id,
        instanceId=instance_id,
        healthCheck=health_check,
    )


def health_status_changed_event(
    app_id: str, instance_id: str, version: str, alive: bool, *, now: float
) -> dict[str, Any]:
    """The first health result of an instance, and every change of `alive`."""
    return _event(
        "health_status_changed_event",
        now,
        appId=app_id,
        instanceId=instance_id,
        version=version,
        alive=alive,
    )


def unhealthy_instance_kill_event(
    app_id: str,
    task_id: str,
    instance_id: str,
    version: str,
    reason: str,
    host: str,
    slave_id: str,
    *,
    now: float,
) -> dict[str, Any]:
    """An instance is killed for failing `maxConsecutiveFailures` checks in a row."""
    return _event(
        "unhealthy_instance_kill_event",
        now,
        appId=app_id,
        taskId=task_id,
        instanceId=instance_id,
        version=version,
        reason=reason,
        host=host,
        slaveId=slave_id,
    )


# ---------------------------------------------------------------- groups and deployments


def group_change_success(group_id: str, version: str, *, now: float) -> dict[str, Any]:
    return _event("group_change_success", now, groupId=group_id, version=version)


def group_change_failed(group_id: str, version: str, reason: str, *, now: float) -> dict[str, Any]:
    return _event("group_change_failed", now, groupId=group_id, version=version, reason=reason)


def _actions(actions: tuple[Action, ...]) -> list[dict[str, str]]:
    return [{"action": a.action, "app": a.app} for a in actions]


def _current_step(plan: DeploymentPlan, step: int) -> dict[str, Any]:
    actions = plan.steps[step] if 0 <= step < len(plan.steps) else ()
    return {"actions": _actions(actions)}


def deployment_info(plan: DeploymentPlan, step: int, *, now: float) -> dict[str, Any]:
    """The plan started its `step`-th step (0-based)."""
    return _event(
        "deployment_info", now, plan=plan_json(plan), currentStep=_current_step(plan, step)
    )


def deployment_step_success(plan: DeploymentPlan, step: int, *, now: float) -> dict[str, Any]:
    return _event(
        "deployment_step_success", now, plan=plan_json(plan), currentStep=_current_step(plan, step)
    )


def deployment_step_failure(plan: DeploymentPlan, step: int, *, now: float) -> dict[str, Any]:
    return _event(
        "deployment_step_failure", now, plan=plan_json(plan), currentStep=_current_step(plan, step)
    )


def deployment_success(plan: DeploymentPlan, *, now: float) -> dict[str, Any]:
    return _event("deployment_success", now, id=plan.id, plan=plan_json(plan))


def deployment_failed(plan: DeploymentPlan, reason: str, *, now: float) -> dict[str, Any]:
    return _event("deployment_failed", now, id=plan.id, plan=plan_json(plan), reason=reason)


# ---------------------------------------------------------------- scheduler (only on request)


def scheduler_registered_event(framework_id: str, master: str, *, now: float) -> dict[str, Any]:
    return _event("scheduler_registered_event", now, frameworkId=framework_id, master=master)


def scheduler_reregistered_event(master: str, *, now: float) -> dict[str, Any]:
    return _event("scheduler_reregistered_event", now, master=master)


def scheduler_disconnected_event(*, now: float) -> dict[str, Any]:
    return _event("scheduler_disconnected_event", now)


# ---------------------------------------------------------------- SSE


def wanted(event: dict[str, Any], types: frozenset[str]) -> bool:
    """Whether a stream asking for `types` (empty = all it can parse) gets `event`."""
    event_type = str(event.get("eventType", ""))
    if types:
        return event_type in types
    return event_type in CLIENT_TYPES


def light(event: dict[str, Any]) -> dict[str, Any]:
    """`plan-format=light`: the event without the plan's original and target states."""
    plan = event.get("plan")
    if not isinstance(plan, dict) or ("original" not in plan and "target" not in plan):
        return event
    slim = {k: v for k, v in plan.items() if k not in ("original", "target")}
    return {**event, "plan": slim}


def sse_frame(event: dict[str, Any]) -> bytes:
    """`event: <type>\\r\\ndata: <one-line JSON>\\r\\n\\r\\n` (marathon-lb checks the `data: ` prefix)."""
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event.get('eventType', '')}\r\ndata: {data}\r\n\r\n".encode()


def heartbeat_frame() -> bytes:
    """Sent on idle streams so proxies and marathon-lb's 300 s watchdog see bytes."""
    return b"\r\n"
