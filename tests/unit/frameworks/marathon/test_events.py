"""Event payloads, SSE framing and filters; the payloads parse into marathon-python's classes."""

from __future__ import annotations

import collections
import collections.abc
import json
from typing import Any

from lichen.frameworks.marathon import appdef, events
from lichen.frameworks.marathon.model import Action, DeploymentPlan, Instance

NOW = 1_700_000_000.25

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from marathon.models.events import EventFactory

APP = {"id": "/web", "cmd": "sleep 1", "instances": 1, "labels": {}}


def _plan() -> DeploymentPlan:
    return DeploymentPlan(
        id="d1",
        version="2023-11-14T22:13:20.250Z",
        steps=((Action("StartApplication", "/web"),), (Action("ScaleApplication", "/web"),)),
        affected_apps=("/web",),
        original={"/web": None},
        target={"/web": APP},
    )


def _instance(state: str = "TASK_RUNNING") -> Instance:
    return Instance(
        instance_id="web.instance-u1",
        task_id="web.instance-u1._app.1",
        app_id="/web",
        version="v1",
        state=state,
        agent_id="a1",
        host="h1",
        ports=(31000,),
    )


def _parse(event: dict[str, Any]) -> Any:
    return EventFactory().process(json.loads(json.dumps(event)))


def test_timestamp_is_utc_with_milliseconds_and_z() -> None:
    assert appdef.timestamp(NOW) == "2023-11-14T22:13:20.250Z"
    assert appdef.timestamp(0.0) == "1970-01-01T00:00:00.000Z"


def test_every_builder_sets_event_type_and_timestamp() -> None:
    built = [
        events.api_post_event("1.2.3.4", "/v2/apps/web", APP, now=NOW),
        events.status_update_event(_instance(), now=NOW),
        events.instance_changed_event(_instance(), now=NOW),
        events.deployment_info(_plan(), 0, now=NOW),
        events.deployment_success(_plan(), now=NOW),
        events.deployment_failed(_plan(), "boom", now=NOW),
        events.deployment_step_success(_plan(), 1, now=NOW),
        events.group_change_success("/", "v1", now=NOW),
        events.health_status_changed_event("/web", "web.instance-u1", "v1", True, now=NOW),
        events.failed_health_check_event("/web", "web.instance-u1", {"protocol": "HTTP"}, now=NOW),
        events.unhealthy_instance_kill_event(
            "/web", "t", "web.instance-u1", "v1", "503", "h1", "a1", now=NOW
        ),
        events.app_terminated_event("/web", now=NOW),
        events.subscribe_event("1.2.3.4", "http://x/cb", now=NOW),
        events.unsubscribe_event("1.2.3.4", "http://x/cb", now=NOW),
        events.event_stream_attached("1.2.3.4", now=NOW),
        events.event_stream_detached("1.2.3.4", now=NOW),
        events.instance_health_changed_event("i", "/web", "v1", True, now=NOW),
        events.unknown_instance_terminated_event("i", "/web", "Killed", now=NOW),
        events.framework_message_event("a1", "e1", "hi", now=NOW),
        events.add_health_check_event("/web", "v1", {"protocol": "HTTP"}, now=NOW),
        events.remove_health_check_event("/web", now=NOW),
        events.group_change_failed("/", "v1", "no", now=NOW),
        events.deployment_step_failure(_plan(), 0, now=NOW),
    ]
    for event in built:
        assert event["timestamp"] == "2023-11-14T22:13:20.250Z"
        assert event["eventType"] in events.CLIENT_TYPES
        _parse(event)  # raises on anything marathon-python cannot take


def test_status_update_event_carries_task_fields() -> None:
    event = events.status_update_event(
        _instance(), message="ok", ip_addresses=[{"ipAddress": "10.0.0.1", "extra": 1}], now=NOW
    )
    assert event["taskId"] == "web.instance-u1._app.1"
    assert event["taskStatus"] == "TASK_RUNNING"
    assert event["slaveId"] == "a1" and event["host"] == "h1" and event["ports"] == [31000]
    assert event["ipAddresses"] == [{"ipAddress": "10.0.0.1", "protocol": "IPv4"}]
    parsed = _parse(event)
    assert parsed.task_status == "TASK_RUNNING"


def test_instance_changed_event_maps_states_to_conditions() -> None:
    assert (
        events.instance_changed_event(_instance("TASK_STAGING"), now=NOW)["condition"] == "Staging"
    )
    assert (
        events.instance_changed_event(_instance("TASK_LOST"), now=NOW)["condition"] == "Unreachable"
    )
    explicit = events.instance_changed_event(_instance(), "UnreachableInactive", now=NOW)
    assert explicit["condition"] == "UnreachableInactive"


def test_deployment_info_has_plan_with_original_target_and_current_step() -> None:
    event = events.deployment_info(_plan(), 1, now=NOW)
    assert event["currentStep"] == {"actions": [{"action": "ScaleApplication", "app": "/web"}]}
    plan = event["plan"]
    assert set(plan) == {"id", "version", "steps", "original", "target"}
    assert plan["original"]["apps"] == []
    assert plan["target"]["apps"] == [APP]
    assert set(plan["target"]) == {"id", "apps", "groups", "pods", "dependencies", "version"}
    parsed = _parse(event)
    assert parsed.plan.steps[0].actions[0].action == "StartApplication"


def test_light_drops_original_and_target_only() -> None:
    event = events.deployment_success(_plan(), now=NOW)
    slim = events.light(event)
    assert set(slim["plan"]) == {"id", "version", "steps"}
    assert "original" in event["plan"]  # not mutated
    other = events.app_terminated_event("/web", now=NOW)
    assert events.light(other) is other


def test_sse_frame_is_event_and_one_data_line() -> None:
    event = events.app_terminated_event("/web", now=NOW)
    frame = events.sse_frame(event)
    assert frame.startswith(b"event: app_terminated_event\r\ndata: {")
    assert frame.endswith(b"}\r\n\r\n")
    assert frame.count(b"\n") == 3
    data = frame.split(b"\r\n")[1][len(b"data: ") :]
    assert json.loads(data) == event


def test_wanted_filters_by_type_and_hides_scheduler_events_by_default() -> None:
    registered = events.scheduler_registered_event("f1", "m:5050", now=NOW)
    post = events.api_post_event("ip", "/v2/apps", APP, now=NOW)
    assert not events.wanted(registered, frozenset())
    assert events.wanted(registered, frozenset({"scheduler_registered_event"}))
    assert events.wanted(post, frozenset())
    assert not events.wanted(post, frozenset({"status_update_event"}))
