"""App and group definitions: defaults, legacy conversions, validation paths, merges,
service ports, versions and the v2 JSON shapes (checked against marathon-python)."""

from __future__ import annotations

import collections
import collections.abc
import json
import re
from typing import Any

import pytest

from lichen.frameworks.marathon import appdef
from lichen.frameworks.marathon.appdef import AppDefinition, ValidationFailed
from lichen.frameworks.marathon.health import Health
from lichen.frameworks.marathon.model import Action, DeploymentPlan, Instance

# marathon-python 0.13.0 still uses the alias removed in Python 3.10.
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]

APP_KEYS = {
    "acceptedResourceRoles", "args", "backoffFactor", "backoffSeconds", "cmd", "constraints",
    "container", "cpus", "dependencies", "deployments", "disk", "env", "executor", "fetch", "gpus",
    "healthChecks", "id", "instances", "ipAddress", "killSelection", "labels", "lastTaskFailure",
    "maxLaunchDelaySeconds", "mem", "networks", "portDefinitions", "ports", "readinessCheckResults",
    "readinessChecks", "requirePorts", "residency", "role", "secrets", "storeUrls",
    "taskKillGracePeriodSeconds", "taskRateLimit", "taskStats", "tasks", "tasksHealthy",
    "tasksRunning", "tasksStaged", "tasksUnhealthy", "unreachableStrategy", "upgradeStrategy",
    "uris", "user", "version", "versionInfo",
}
TASK_KEYS = {
    "id", "appId", "host", "ports", "servicePorts", "ipAddresses", "stagedAt", "startedAt",
    "version", "slaveId", "state", "healthCheckResults", "localVolumes", "region", "zone", "role",
}
HEALTH_RESULT_KEYS = {
    "alive", "consecutiveFailures", "firstSuccess", "lastSuccess", "lastFailure",
    "lastFailureCause", "instanceId", "taskId",
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

COMPLEX = {
    "id": "/complex",
    "instances": 2,
    "cpus": 0.5,
    "mem": 64,
    "uris": ["http://example.com/a.tgz"],
    "container": {
        "type": "DOCKER",
        "docker": {
            "image": "nginx:1",
            "network": "BRIDGE",
            "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 0, "protocol": "tcp"}],
        },
        "volumes": [{"containerPath": "/etc/x", "hostPath": "/var/x", "mode": "RO"}],
    },
    "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
}


def app(**fields: Any) -> AppDefinition:
    body = {"id": "/web", "cmd": "sleep 100"}
    body.update(fields)
    return appdef.parse_app(body)


def failure(body: Any, **kwargs: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        appdef.parse_app(body, **kwargs)
    return info.value


def paths_of(error: ValidationFailed) -> list[str]:
    return [d["path"] for d in error.details]


def instance(state: str = "TASK_RUNNING", healthy: bool | None = None, **kw: Any) -> Instance:
    fields: dict[str, Any] = {
        "instance_id": "web.instance-1", "task_id": "web.instance-1._app.1", "app_id": "/web",
        "version": "2024-01-01T00:00:00.000Z", "state": state, "agent_id": "a1",
        "host": "127.0.0.1", "ports": (31000,), "staged_at": 1700000000.0,
        "started_at": 1700000001.5, "healthy": healthy,
    }
    fields.update(kw)
    return Instance(**fields)


# --------------------------------------------------------------------------- defaults


def test_minimal_app_gets_every_default() -> None:
    raw = app().raw
    assert raw["id"] == "/web"
    assert raw["instances"] == 1
    assert (raw["cpus"], raw["mem"], raw["disk"], raw["gpus"]) == (1.0, 128.0, 0.0, 0)
    assert raw["env"] == {} and raw["labels"] == {} and raw["secrets"] == {}
    assert raw["constraints"] == [] and raw["fetch"] == [] and raw["dependencies"] == []
    assert raw["healthChecks"] == [] and raw["readinessChecks"] == []
    assert (raw["backoffSeconds"], raw["backoffFactor"], raw["maxLaunchDelaySeconds"]) == (1, 1.15, 300)
    assert raw["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    assert raw["unreachableStrategy"] == {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    assert raw["killSelection"] == "YOUNGEST_FIRST"
    assert raw["networks"] == [{"mode": "host"}]
    assert raw["portDefinitions"] == [{"port": 0, "protocol": "tcp", "name": "default"}]
    assert raw["requirePorts"] is False
    assert raw["role"] == "*"
    assert raw["executor"] == ""
    assert "version" not in raw and "container" not in raw and "args" not in raw


def test_properties_read_the_normalized_definition() -> None:
    a = app(instances=3, cpus=0.25, labels={"A": "b"}, constraints=[["hostname", "UNIQUE"]],
            acceptedResourceRoles=["*"], taskKillGracePeriodSeconds=5)
    assert (a.instances, a.cpus, a.mem, a.disk, a.gpus) == (3, 0.25, 128.0, 0.0, 0)
    assert a.cmd == "sleep 100" and a.args is None and a.user is None
    assert a.constraints == [["hostname", "UNIQUE"]]
    assert a.labels == {"A": "b"}
    assert a.accepted_resource_roles == ["*"]
    assert a.task_kill_grace_period == 5.0
    assert a.network_mode == "host"
    assert a.port_mappings == []
    assert a.service_ports == [0]
    assert a.port_names == ["default"]
    assert (a.min_health_capacity, a.max_over_capacity) == (1.0, 1.0)
    assert (a.backoff_seconds, a.backoff_factor, a.max_launch_delay_seconds) == (1.0, 1.15, 300.0)
    assert a.unreachable_inactive_after == 0.0 and a.unreachable_expunge_after == 0.0
    assert a.kill_selection == "YOUNGEST_FIRST"
    assert a.container is None and a.docker_image is None
    assert a.version is None and a.version_info is None


def test_empty_port_definitions_means_no_ports() -> None:
    a = app(portDefinitions=[])
    assert a.port_definitions == [] and a.service_ports == []


def test_health_check_is_fully_defaulted() -> None:
    a = app(healthChecks=[{}])
    assert a.health_checks == [{
        "protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 300,
        "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3,
        "delaySeconds": 15, "ignoreHttp1xx": False, "ipProtocol": "IPv4",
    }]


def test_health_check_port_wins_over_port_index() -> None:
    check = app(healthChecks=[{"protocol": "TCP", "port": 8080}]).health_checks[0]
    assert check["port"] == 8080 and "portIndex" not in check and "path" not in check


def test_command_health_check_has_no_port() -> None:
    check = app(portDefinitions=[], healthChecks=[
        {"protocol": "COMMAND", "command": {"value": "true"}}]).health_checks[0]
    assert check["command"] == {"value": "true"}
    assert "portIndex" not in check


def test_readiness_check_defaults() -> None:
    a = app(portDefinitions=[{"port": 0, "name": "http-api"}], readinessChecks=[{}])
    assert a.readiness_checks == [{
        "name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http-api",
        "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
        "preserveLastResponse": False,
    }]


def test_more_than_one_readiness_check_is_refused_as_marathon_does() -> None:
    error = failure({"id": "/web", "cmd": "x", "portDefinitions": [{"port": 0, "name": "http-api"}],
                     "readinessChecks": [{}, {"name": "second"}]})
    assert error.details == [{"path": "/readinessChecks", "errors": ["got 2, expected 1 or less"]}]


def test_fetch_entries_are_defaulted() -> None:
    a = app(fetch=[{"uri": "http://x/y", "destPath": "y"}])
    assert a.fetch == [{"uri": "http://x/y", "extract": True, "executable": False,
                        "cache": False, "destPath": "y"}]


def test_unreachable_disabled() -> None:
    a = app(unreachableStrategy="disabled")
    assert a.raw["unreachableStrategy"] == "disabled"
    assert a.unreachable_inactive_after is None and a.unreachable_expunge_after is None


def test_resident_app_defaults() -> None:
    a = app(container={"type": "MESOS", "volumes": [
        {"containerPath": "data", "mode": "RW", "persistent": {"size": 100}}]})
    assert a.raw["residency"] == {"relaunchEscalationTimeoutSeconds": 3600,
                                  "taskLostBehavior": "WAIT_FOREVER"}
    assert a.raw["upgradeStrategy"] == {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}
    assert a.is_resident


def test_relative_id_resolves_against_base() -> None:
    assert appdef.parse_app({"id": "web", "cmd": "x"}, base="/prod").id == "/prod/web"
    assert appdef.parse_app({"id": "//a//b/", "cmd": "x"}).id == "/a/b"


def test_id_from_path_wins() -> None:
    assert appdef.parse_app({"id": "/other", "cmd": "x"}, id_from_path="/web").id == "/web"
    assert appdef.parse_app({"cmd": "x"}, id_from_path="web").id == "/web"


def test_dependencies_resolve_against_the_app_group() -> None:
    a = appdef.parse_app({"id": "/g/web", "cmd": "x", "dependencies": ["db", "/other/x", "../y"]})
    assert a.dependencies == ["/g/db", "/other/x", "/y"]


def test_unknown_and_read_only_input_keys_are_ignored() -> None:
    a = app(tasks=[{"id": "x"}], tasksRunning=3, deployments=[{"id": "d"}], version=None,
            versionInfo={"lastScalingAt": "x"}, lastTaskFailure={}, fooBar=1, storeUrls=["x"])
    for key in ("tasks", "tasksRunning", "deployments", "version", "versionInfo", "fooBar",
                "storeUrls", "lastTaskFailure"):
        assert key not in a.raw


def test_secret_env_reference() -> None:
    a = app(secrets={"pw": {"source": "/db/pw"}}, env={"PW": {"secret": "pw"}, "A": "1"})
    assert a.env == {"PW": {"secret": "pw"}, "A": "1"}
    assert a.raw["secrets"] == {"pw": {"source": "/db/pw"}}


# --------------------------------------------------------------------------- legacy inputs


def test_uris_become_fetch() -> None:
    a = app(uris=["http://a/b.tgz"])
    assert a.fetch == [{"uri": "http://a/b.tgz", "extract": True, "executable": False, "cache": False}]
    assert "uris" not in a.raw


def test_ports_become_port_definitions() -> None:
    a = app(ports=[0, 8080])
    assert a.port_definitions == [{"port": 0, "protocol": "tcp"}, {"port": 8080, "protocol": "tcp"}]
    assert "ports" not in a.raw


def test_complex_legacy_docker_app() -> None:
    a = appdef.parse_app(COMPLEX)
    assert a.raw["networks"] == [{"mode": "container/bridge"}]
    assert a.network_mode == "container/bridge"
    assert "portDefinitions" not in a.raw
    container = a.raw["container"]
    assert container["portMappings"] == [
        {"containerPort": 80, "hostPort": 0, "servicePort": 0, "protocol": "tcp"}]
    assert "portMappings" not in container["docker"] and "network" not in container["docker"]
    assert container["docker"] == {"image": "nginx:1", "privileged": False,
                                   "forcePullImage": False, "parameters": []}
    assert container["volumes"] == [{"containerPath": "/etc/x", "hostPath": "/var/x", "mode": "RO"}]
    assert a.fetch[0]["uri"] == "http://example.com/a.tgz"
    assert a.health_checks[0]["path"] == "/health"
    assert a.health_checks[0]["timeoutSeconds"] == 20
    assert a.docker_image == "nginx:1"


@pytest.mark.parametrize(("legacy", "mode"), [
    ("BRIDGE", "container/bridge"), ("HOST", "host"), ("USER", "container")])
def test_docker_network_conversion(legacy: str, mode: str) -> None:
    a = app(container={"docker": {"image": "x", "network": legacy}})
    assert a.network_mode == mode


def test_bridge_mapping_without_host_port_gets_zero() -> None:
    a = app(networks=[{"mode": "container/bridge"}],
            container={"docker": {"image": "x"}, "portMappings": [{"containerPort": 80}]})
    assert a.port_mappings == [{"containerPort": 80, "hostPort": 0, "servicePort": 0, "protocol": "tcp"}]


def test_container_mode_mapping_without_host_port_has_none() -> None:
    a = app(networks=[{"mode": "container", "name": "dcos"}],
            container={"docker": {"image": "x"}, "portMappings": [{"containerPort": 80}]})
    assert a.port_mappings == [{"containerPort": 80, "servicePort": 0, "protocol": "tcp"}]
    assert a.raw["networks"] == [{"mode": "container", "name": "dcos"}]


def test_container_port_zero_takes_host_port() -> None:
    a = app(networks=[{"mode": "container/bridge"}],
            container={"docker": {"image": "x"}, "portMappings": [{"hostPort": 8080}]})
    assert a.port_mappings[0]["containerPort"] == 8080


@pytest.mark.parametrize(("given", "emitted"), [
    ("tcp", "tcp"), ("udp", "udp"), ("udp,tcp", "udp,tcp"), ("tcp,udp", "udp,tcp"), (None, "tcp")])
def test_protocols_are_emitted_in_client_spelling(given: str | None, emitted: str) -> None:
    a = app(networks=[{"mode": "container/bridge"}],
            container={"docker": {"image": "x"}, "portMappings": [{"containerPort": 1, "protocol": given}]})
    assert a.port_mappings[0]["protocol"] == emitted


def test_ip_address_becomes_container_network() -> None:
    a = app(ipAddress={"networkName": "overlay", "discovery": {"ports": [
        {"number": 80, "name": "http", "protocol": "tcp"}]}})
    assert a.raw["networks"] == [{"mode": "container", "name": "overlay"}]
    assert a.port_mappings == [{"containerPort": 80, "servicePort": 0, "protocol": "tcp", "name": "http"}]
    assert "ipAddress" not in a.raw


def test_non_host_app_without_container_gets_a_mesos_container() -> None:
    a = app(networks=[{"mode": "container/bridge"}])
    assert a.container == {"type": "MESOS", "portMappings": [], "volumes": []}


# --------------------------------------------------------------------------- validation


def test_bad_id_is_422_at_id() -> None:
    e = failure({"id": "Bad_Id", "cmd": "x"})
    assert e.status == 422 and e.message == "Object is not valid"
    assert e.details[0]["path"] == "/id"
    assert e.details[0]["errors"][0].startswith("must fully match regular expression '")


def test_missing_id_on_post() -> None:
    e = failure({"cmd": "x"})
    assert e.details == [{"path": "/id", "errors": ["error.path.missing"]}]


def test_root_id_is_rejected() -> None:
    assert paths_of(failure({"id": "/", "cmd": "x"})) == ["/id"]


@pytest.mark.parametrize("body", [{"id": "/a"}, {"id": "/a", "cmd": "x", "args": ["y"]}])
def test_cmd_args_container_rule(body: dict[str, Any]) -> None:
    e = failure(body)
    assert e.details == [{"path": "/", "errors": [
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]}]


def test_container_alone_is_enough() -> None:
    assert app(cmd=None, container={"docker": {"image": "x"}}).cmd is None


def test_empty_cmd_is_invalid() -> None:
    assert "/cmd" in paths_of(failure({"id": "/a", "cmd": ""}))


@pytest.mark.parametrize(("field", "value", "path"), [
    ("instances", -1, "/instances"),
    ("cpus", 0, "/cpus"),
    ("mem", -1, "/mem"),
    ("disk", -5, "/disk"),
    ("gpus", -1, "/gpus"),
    ("backoffFactor", 0.5, "/backoffFactor"),
    ("backoffSeconds", -1, "/backoffSeconds"),
    ("maxLaunchDelaySeconds", -1, "/maxLaunchDelaySeconds"),
    ("killSelection", "RANDOM", "/killSelection"),
    ("upgradeStrategy", {"minimumHealthCapacity": 1.5}, "/upgradeStrategy/minimumHealthCapacity"),
    ("upgradeStrategy", {"maximumOverCapacity": -0.1}, "/upgradeStrategy/maximumOverCapacity"),
    ("unreachableStrategy", {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 5},
     "/unreachableStrategy/inactiveAfterSeconds"),
    ("constraints", [["hostname", "BOGUS"]], "/constraints(0)"),
    ("constraints", [["hostname", "UNIQUE"], ["rack", "CLUSTER", "a", "b"]], "/constraints(1)"),
    ("networks", [{"mode": "bogus"}], "/networks(0)/mode"),
    ("networks", [{"mode": "host"}, {"mode": "container"}], "/networks"),
    ("portDefinitions", [{"port": 80}, {"port": 80}], "/portDefinitions"),
    ("portDefinitions", [{"name": "a"}, {"name": "a"}], "/portDefinitions"),
    ("portDefinitions", [{"port": 70000}], "/portDefinitions(0)/port"),
    ("portDefinitions", [{"protocol": "sctp"}], "/portDefinitions(0)/protocol"),
    ("healthChecks", [{"portIndex": 1}], "/healthChecks(0)/portIndex"),
    ("healthChecks", [{"protocol": "FOO"}], "/healthChecks(0)/protocol"),
    ("healthChecks", [{"protocol": "COMMAND"}], "/healthChecks(0)/command"),
    ("readinessChecks", [{"portName": "nope"}], "/readinessChecks(0)/portName"),
    ("env", {"PW": {"secret": "missing"}}, "/env/PW"),
    ("dependencies", ["Bad_Dep"], "/dependencies(0)"),
    ("container", {"type": "DOCKER"}, "/container/docker/image"),
    ("container", {"type": "DOCKER", "docker": {"image": ""}}, "/container/docker/image"),
    ("container", {"type": "RKT"}, "/container/type"),
    ("container", {"type": "MESOS", "volumes": [{"containerPath": "/x", "hostPath": "/y",
                                                 "mode": "XX"}]}, "/container/volumes(0)/mode"),
    ("container", {"type": "MESOS", "volumes": [{"hostPath": "/y"}]},
     "/container/volumes(0)/containerPath"),
    ("container", {"docker": {"image": "x", "network": "WEIRD"}}, "/container/docker/network"),
])
def test_validation_rule_reports_marathon_path(field: str, value: Any, path: str) -> None:
    e = failure({"id": "/a", "cmd": "x", field: value})
    assert e.message == "Object is not valid"
    assert path in paths_of(e), e.details


def test_health_check_port_index_addresses_port_mappings() -> None:
    body = dict(COMPLEX, healthChecks=[{"portIndex": 1}])
    assert paths_of(failure(body)) == ["/healthChecks(0)/portIndex"]


def test_more_than_one_mesos_network_health_check_is_rejected() -> None:
    e = failure({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 0}], "healthChecks": [
        {"protocol": "MESOS_HTTP"}, {"protocol": "HTTP"}, {"protocol": "MESOS_TCP"}]})
    assert e.details == [{"path": "/", "errors": ["AppDefinition can contain at most one Mesos health check"]}]


def test_several_command_health_checks_stay_valid_as_in_marathon() -> None:
    a = app(healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"}},
                          {"protocol": "COMMAND", "command": {"value": "true"}}, {"protocol": "MESOS_HTTP"}])
    assert [c["protocol"] for c in a.health_checks] == ["COMMAND", "COMMAND", "MESOS_HTTP"]


def test_uris_and_fetch_together_are_rejected() -> None:
    assert paths_of(failure({"id": "/a", "cmd": "x", "uris": ["u"], "fetch": [{"uri": "u"}]})) == ["/"]


def test_both_port_mapping_locations_are_rejected() -> None:
    body = {"id": "/a", "networks": [{"mode": "container/bridge"}], "container": {
        "docker": {"image": "x", "portMappings": [{"containerPort": 1}]},
        "portMappings": [{"containerPort": 1}]}}
    assert "/container" in paths_of(failure(body))


def test_port_definitions_rejected_on_bridge_network() -> None:
    body = {"id": "/a", "cmd": "x", "networks": [{"mode": "container/bridge"}],
            "portDefinitions": [{"port": 0}]}
    assert paths_of(failure(body)) == ["/portDefinitions"]


def test_port_mappings_rejected_on_host_network() -> None:
    body = {"id": "/a", "container": {"docker": {"image": "x"}, "portMappings": [{"containerPort": 1}]}}
    assert paths_of(failure(body)) == ["/container/portMappings"]


def test_all_problems_are_collected() -> None:
    e = failure({"id": "Bad", "cpus": 0, "mem": -1})
    assert set(paths_of(e)) == {"/id", "/", "/cpus", "/mem"}


@pytest.mark.parametrize(("field", "value", "path", "error"), [
    ("instances", "two", "/instances", "error.expected.jsnumber"),
    ("instances", 1.5, "/instances", "error.expected.int"),
    ("cpus", "1", "/cpus", "error.expected.jsnumber"),
    ("cmd", 5, "/cmd", "error.expected.jsstring"),
    ("args", "x", "/args", "error.expected.jsarray"),
    ("env", [], "/env", "error.expected.jsobject"),
    ("env", {"A": 1}, "/env/A", "error.expected.jsstring"),
    ("labels", {"A": 1}, "/labels/A", "error.expected.jsstring"),
    ("requirePorts", "yes", "/requirePorts", "error.expected.jsboolean"),
    ("healthChecks", [{"portIndex": "0"}], "/healthChecks(0)/portIndex", "error.expected.jsnumber"),
    ("portDefinitions", [{"port": "80"}], "/portDefinitions(0)/port", "error.expected.jsnumber"),
])
def test_wrong_json_types_are_invalid_json(field: str, value: Any, path: str, error: str) -> None:
    e = failure({"id": "/a", "cmd": "x", field: value})
    assert e.message == "Invalid JSON"
    assert {"path": path, "errors": [error]} in e.details


def test_non_object_body_is_invalid_json() -> None:
    e = failure([1, 2])
    assert e.message == "Invalid JSON" and e.details[0]["path"] == "/"


def test_integral_float_counts_as_int() -> None:
    assert app(instances=2.0).instances == 2


# --------------------------------------------------------------------------- rollback


def test_is_rollback() -> None:
    assert appdef.is_rollback({"version": "2024-01-01T00:00:00.000Z"}) == "2024-01-01T00:00:00.000Z"
    assert appdef.is_rollback({"id": "/a", "version": "v1"}) == "v1"
    assert appdef.is_rollback({"id": "/a", "cmd": "x"}) is None
    assert appdef.is_rollback({"cmd": "x", "version": None}) is None


def test_version_mixed_with_other_fields_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as info:
        appdef.is_rollback({"version": "v1", "cmd": "x"})
    assert info.value.details == [{"path": "/", "errors": [
        "The 'version' field may only be combined with the 'id' field."]}]


# --------------------------------------------------------------------------- merge


def test_merge_replaces_given_fields_keeps_the_rest() -> None:
    current = app(instances=3, mem=64, labels={"a": "b"})
    merged = appdef.merge_app(current, {"cmd": "sleep 7200"}, app_id="/web")
    assert merged.cmd == "sleep 7200"
    assert merged.instances == 3 and merged.mem == 64.0 and merged.labels == {"a": "b"}


def test_merge_scale_only_is_not_a_config_change() -> None:
    current = app()
    merged = appdef.merge_app(current, {"instances": 5}, app_id="/web")
    assert merged.instances == 5
    assert not appdef.is_config_change(current, merged)
    assert appdef.is_config_change(current, appdef.merge_app(current, {"mem": 1}, app_id="/web"))


def test_merge_without_current_creates() -> None:
    created = appdef.merge_app(None, {"cmd": "x"}, app_id="/new")
    assert created.id == "/new" and created.cmd == "x"


def test_merge_args_replaces_cmd() -> None:
    merged = appdef.merge_app(app(), {"args": ["sleep", "1"]}, app_id="/web")
    assert merged.args == ["sleep", "1"] and merged.cmd is None


def test_merge_legacy_uris_replace_fetch() -> None:
    current = app(fetch=[{"uri": "old"}])
    merged = appdef.merge_app(current, {"uris": ["new"]}, app_id="/web")
    assert [f["uri"] for f in merged.fetch] == ["new"]


def test_merge_echoed_get_output_is_identity() -> None:
    current = appdef.assign_service_ports(appdef.parse_app(COMPLEX), set(), None)
    current = appdef.with_version(current, "v1", config_change=True, scaling=True)
    echoed = appdef.app_json(current, instances=[], counts={}, deployments=[],
                             last_task_failure=None)
    merged = appdef.merge_app(current, echoed, app_id="/complex")
    assert merged == current


def test_merge_to_bridge_drops_host_port_definitions() -> None:
    current = app(portDefinitions=[{"port": 10001}])
    merged = appdef.merge_app(current, {
        "networks": [{"mode": "container/bridge"}],
        "container": {"docker": {"image": "x"}, "portMappings": [{"containerPort": 80}]}},
        app_id="/web")
    assert merged.network_mode == "container/bridge" and "portDefinitions" not in merged.raw


def test_merge_legacy_docker_network_overrides_current_networks() -> None:
    merged = appdef.merge_app(app(), {"container": {"docker": {"image": "x", "network": "BRIDGE"}}},
                              app_id="/web")
    assert merged.network_mode == "container/bridge"


def test_merge_keeps_versions_and_ignores_nulls() -> None:
    current = appdef.with_version(app(), "v1", config_change=True, scaling=True)
    merged = appdef.merge_app(current, {"version": None, "mem": None, "instances": 2}, app_id="/web")
    assert merged.version == "v1" and merged.mem == 128.0 and merged.instances == 2


def test_merge_is_validated_as_a_whole() -> None:
    with pytest.raises(ValidationFailed):
        appdef.merge_app(app(), {"cpus": -1}, app_id="/web")


# --------------------------------------------------------------------------- service ports


def test_zero_ports_get_free_service_ports_in_range() -> None:
    a = app(portDefinitions=[{"port": 0}, {"port": 0}])
    assigned = appdef.assign_service_ports(a, {10000, 10002}, None)
    assert assigned.service_ports == [10001, 10003]
    assert [p["port"] for p in assigned.raw["portDefinitions"]] == [10001, 10003]


def test_explicit_ports_are_kept_unchecked() -> None:
    a = app(portDefinitions=[{"port": 10000}, {"port": 0}])
    assigned = appdef.assign_service_ports(a, {10000}, None)
    assert assigned.service_ports == [10000, 10001]


def test_update_reuses_previous_ports() -> None:
    previous = appdef.assign_service_ports(app(portDefinitions=[{"port": 0}]), {10000}, None)
    assert previous.service_ports == [10001]
    updated = app(portDefinitions=[{"port": 0}, {"port": 0}])
    again = appdef.assign_service_ports(updated, {10000, 10001}, previous)
    assert again.service_ports == [10001, 10002]


def test_service_ports_for_port_mappings() -> None:
    assigned = appdef.assign_service_ports(appdef.parse_app(COMPLEX), set(), None,
                                           port_min=15000, port_max=15010)
    assert assigned.service_ports == [15000]
    assert assigned.port_mappings[0]["servicePort"] == 15000
    assert assigned.port_mappings[0]["hostPort"] == 0


def test_exhausted_service_port_range_is_422() -> None:
    with pytest.raises(ValidationFailed):
        appdef.assign_service_ports(app(), {1, 2, 3}, None, port_min=1, port_max=3)


def test_assign_without_zero_ports_returns_same_app() -> None:
    a = app(portDefinitions=[])
    assert appdef.assign_service_ports(a, set(), None) is a


# --------------------------------------------------------------------------- versions


def test_versions_for_create_scale_and_restart() -> None:
    created = appdef.with_version(app(), "v1", config_change=True, scaling=True)
    assert created.version == "v1"
    assert created.version_info == {"lastScalingAt": "v1", "lastConfigChangeAt": "v1"}
    scaled = appdef.with_version(created, "v2", config_change=False, scaling=True)
    assert scaled.version_info == {"lastScalingAt": "v2", "lastConfigChangeAt": "v1"}
    restarted = appdef.with_version(scaled, "v3", config_change=True, scaling=False)
    assert restarted.version_info == {"lastScalingAt": "v2", "lastConfigChangeAt": "v3"}
    assert not appdef.is_config_change(created, restarted)


def test_timestamp_format() -> None:
    assert appdef.timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert appdef.timestamp(1700000000.1234) == "2023-11-14T22:13:20.123Z"
    assert appdef.timestamp(1.9999) == "1970-01-01T00:00:02.000Z"
    assert appdef.now_version(1700000000) == "2023-11-14T22:13:20.000Z"


# --------------------------------------------------------------------------- output shapes


def test_counts() -> None:
    checked = app(healthChecks=[{"protocol": "TCP"}])
    instances = [
        instance("TASK_STAGING", None), instance("TASK_STARTING", None),
        instance("TASK_RUNNING", True), instance("TASK_RUNNING", False), instance("TASK_RUNNING", None),
    ]
    assert appdef.counts(checked, instances) == {
        "tasksStaged": 2, "tasksRunning": 3, "tasksHealthy": 1, "tasksUnhealthy": 1}
    assert appdef.counts(app(), instances) == {
        "tasksStaged": 2, "tasksRunning": 3, "tasksHealthy": 0, "tasksUnhealthy": 0}


def test_app_json_adds_only_the_given_read_only_fields() -> None:
    a = appdef.with_version(app(), "v1", config_change=True, scaling=True)
    bare = appdef.app_json(a)
    assert bare == a.raw
    full = appdef.app_json(
        a, instances=[instance()], counts=appdef.counts(a, [instance()]), deployments=["d1"],
        last_task_failure={"appId": "/web", "host": "h", "message": "m", "state": "TASK_FAILED",
                           "taskId": "t", "timestamp": "2024-01-01T00:00:00.000Z",
                           "version": "v1", "slaveId": "a1", "bogus": 1},
        task_stats={}, readiness=[])
    assert full["deployments"] == [{"id": "d1"}]
    assert full["tasksRunning"] == 1
    assert len(full["tasks"]) == 1
    assert "bogus" not in full["lastTaskFailure"]
    assert set(full) <= APP_KEYS
    json.dumps(full)


@pytest.mark.parametrize("body", [
    {"id": "/a", "cmd": "x"},
    COMPLEX,
    {"id": "/b", "args": ["a"], "container": {"type": "MESOS", "docker": {"image": "x"}},
     "networks": [{"mode": "container", "name": "n"}], "unreachableStrategy": "disabled",
     "residency": {}, "acceptedResourceRoles": ["*"], "taskKillGracePeriodSeconds": 3,
     "readinessChecks": [{"portName": "http"}], "user": "nobody",
     "secrets": {"s": {"source": "x"}}, "env": {"S": {"secret": "s"}}},
])
def test_app_json_key_set_is_what_the_client_accepts(body: dict[str, Any]) -> None:
    if body is not COMPLEX and body["id"] == "/b":
        body = dict(body, container=dict(body["container"], portMappings=[{"containerPort": 1, "name": "http"}]))
    out = appdef.app_json(appdef.parse_app(body), instances=[], counts={}, deployments=[],
                          last_task_failure=None)
    assert set(out) <= APP_KEYS


def test_task_json() -> None:
    a = app(healthChecks=[{"protocol": "TCP"}])
    a = appdef.assign_service_ports(a, set(), None)
    out = appdef.task_json(instance(healthy=True), a)
    assert set(out) <= TASK_KEYS
    assert out["servicePorts"] == [10000]
    assert out["ports"] == [31000]
    assert out["ipAddresses"] == [{"ipAddress": "127.0.0.1", "protocol": "IPv4"}]
    assert TS.match(out["stagedAt"]) and TS.match(out["startedAt"])
    assert out["slaveId"] == "a1" and out["state"] == "TASK_RUNNING"
    assert out["localVolumes"] == []
    [result] = out["healthCheckResults"]
    assert set(result) <= HEALTH_RESULT_KEYS
    assert result["alive"] is True and result["instanceId"] == "web.instance-1"


def test_task_json_has_one_health_result_per_check_with_a_result() -> None:
    a = app(portDefinitions=[{"port": 0}, {"port": 0}],
            healthChecks=[{"protocol": "HTTP"}, {"protocol": "TCP", "portIndex": 1}])
    ok = Health(first_success=1700000002.0, last_success=1700000003.0)
    bad = Health(last_failure=1700000003.0, last_failure_cause="refused", consecutive_failures=2)
    out = appdef.task_json(instance(healthy=False, health=(ok, bad)), a)
    first, second = out["healthCheckResults"]
    assert set(first) == set(second) <= HEALTH_RESULT_KEYS
    assert first["alive"] is True and first["consecutiveFailures"] == 0 and first["lastFailure"] is None
    assert first["firstSuccess"] == "2023-11-14T22:13:22.000Z"
    assert second == {"alive": False, "consecutiveFailures": 2, "firstSuccess": None, "lastSuccess": None,
                      "lastFailure": "2023-11-14T22:13:23.000Z", "lastFailureCause": "refused",
                      "instanceId": "web.instance-1"}


def test_task_json_before_running_has_no_started_at() -> None:
    out = appdef.task_json(instance("TASK_STAGING", started_at=None), app())
    assert "startedAt" not in out and out["healthCheckResults"] == []


def test_task_json_pads_service_ports() -> None:
    out = appdef.task_json(instance(ports=(31000, 31001)), app(portDefinitions=[]))
    assert out["servicePorts"] == [0, 0]


def test_task_json_killing_state() -> None:
    assert appdef.task_json(instance(killing=True), app())["state"] == "TASK_KILLING"


def test_queue_item_json() -> None:
    out = appdef.queue_item_json(app(), 2, 3.2, False, 1700000000.0)
    assert out["count"] == 2
    assert out["delay"] == {"timeLeftSeconds": 4, "overdue": False}
    assert TS.match(out["since"])


# --------------------------------------------------------------------------- groups


GROUP = {
    "id": "/g",
    "apps": [
        {"id": "db", "cmd": "x"},
        {"id": "web", "cmd": "x", "dependencies": ["db"], "instances": 3},
    ],
    "groups": [{"id": "sub", "apps": [{"id": "worker", "cmd": "x"}], "dependencies": ["/g/db"]}],
    "dependencies": ["/other"],
}


def test_parse_group_resolves_relative_ids() -> None:
    group = appdef.parse_group(GROUP, group_id="/g")
    assert group.id == "/g"
    assert [a.id for a in group.apps] == ["/g/db", "/g/web"]
    assert group.apps[1].dependencies == ["/g/db"]
    assert group.groups[0].id == "/g/sub"
    assert group.groups[0].apps[0].id == "/g/sub/worker"
    assert group.groups[0].dependencies == ("/g/db",)
    assert group.dependencies == ("/other",)
    assert set(appdef.flatten_apps(group)) == {"/g/db", "/g/web", "/g/sub/worker"}


def test_resolve_group_id() -> None:
    assert appdef.resolve_group_id({"id": "g"}, "/") == "/g"
    assert appdef.resolve_group_id({"id": "b"}, "/a") == "/a/b"
    assert appdef.resolve_group_id({}, "/a//") == "/a"


def test_group_app_errors_carry_nested_paths() -> None:
    body = {"apps": [{"id": "ok", "cmd": "x"}, {"id": "bad", "cmd": "x", "cpus": -1}]}
    with pytest.raises(ValidationFailed) as info:
        appdef.parse_group(body, group_id="/g")
    assert paths_of(info.value) == ["/apps(1)/cpus"]


def test_group_id_collisions_are_422() -> None:
    body = {"apps": [{"id": "x", "cmd": "a"}], "groups": [{"id": "x"}]}
    with pytest.raises(ValidationFailed):
        appdef.parse_group(body, group_id="/g")
    with pytest.raises(ValidationFailed):
        appdef.parse_group({"apps": [{"id": "x", "cmd": "a"}, {"id": "x", "cmd": "b"}]}, group_id="/g")


def test_group_app_outside_the_group_is_422() -> None:
    with pytest.raises(ValidationFailed) as info:
        appdef.parse_group({"apps": [{"id": "/elsewhere/x", "cmd": "a"}]}, group_id="/g")
    assert paths_of(info.value) == ["/apps(0)/id"]


def test_scale_group_rounds_up() -> None:
    scaled = appdef.scale_group(appdef.parse_group(GROUP, group_id="/g"), 1.5)
    flat = appdef.flatten_apps(scaled)
    assert flat["/g/db"].instances == 2 and flat["/g/web"].instances == 5
    assert flat["/g/sub/worker"].instances == 2


def test_group_json_embeds() -> None:
    group = appdef.parse_group(GROUP, group_id="/g")
    out = appdef.group_json(group, set())
    assert set(out) <= {"id", "apps", "groups", "pods", "dependencies", "version"}
    assert [a["id"] for a in out["apps"]] == ["/g/db", "/g/web"]
    assert out["groups"][0]["apps"][0]["id"] == "/g/sub/worker"
    only_groups = appdef.group_json(group, {"group.groups"})
    assert only_groups["apps"] == [] and only_groups["groups"][0]["apps"] == []


# --------------------------------------------------------------------------- deployments


PLAN = DeploymentPlan(
    id="d1", version="2024-01-01T00:00:00.000Z",
    steps=((Action("StartApplication", "/g/db"), Action("StartApplication", "/g/web")),
           (Action("ScaleApplication", "/g/db"),), (Action("ScaleApplication", "/g/web"),)),
    affected_apps=("/g/db", "/g/web"),
    original={"/g/db": None},
    target={"/g/db": {"id": "/g/db", "cmd": "x"}},
    current_step=1,
)


def test_deployment_json() -> None:
    out = appdef.deployment_json(PLAN)
    assert out["affectedApps"] == ["/g/db", "/g/web"] and out["affectedPods"] == []
    assert out["steps"][0] == {"actions": [{"action": "StartApplication", "app": "/g/db"},
                                           {"action": "StartApplication", "app": "/g/web"}]}
    assert out["currentStep"] == 2 and out["totalSteps"] == 3
    assert out["currentActions"] == [{"action": "ScaleApplication", "app": "/g/db",
                                      "readinessCheckResults": []}]


def test_plan_json_full_and_light() -> None:
    full = appdef.plan_json(PLAN)
    assert full["original"]["apps"] == [] and full["target"]["apps"] == [{"id": "/g/db", "cmd": "x"}]
    assert set(full["target"]) == {"id", "apps", "groups", "pods", "dependencies", "version"}
    light = appdef.plan_json(PLAN, light=True)
    assert "original" not in light and "target" not in light and light["steps"] == full["steps"]


# --------------------------------------------------------------------------- task environment


def test_task_env_ports_and_marathon_vars() -> None:
    a = appdef.parse_app({"id": "/web/db", "cmd": "x", "cpus": 1, "mem": 128,
                          "portDefinitions": [{"port": 10000, "name": "http"}, {"port": 0}],
                          "labels": {"HAPROXY_GROUP": "external", "a.b-c": "v", "big": "x" * 600},
                          "env": {"PORT0": "override", "SECRET": {"secret": "s"}},
                          "secrets": {"s": {"source": "x"}}})
    a = appdef.with_version(a, "v1", config_change=True, scaling=True)
    env = appdef.task_env(a, task_id="t1", host="node1", host_ports=[31000, 31001])
    assert env["PORT0"] == "override"
    assert env["PORT1"] == "31001" and env["PORT"] == "31000"
    assert env["PORTS"] == "31000,31001"
    assert env["PORT_HTTP"] == "31000"
    assert env["PORT_10000"] == "31000" and env["PORT_31001"] == "31001"
    assert env["HOST"] == "node1"
    assert env["MESOS_TASK_ID"] == "t1"
    assert env["MARATHON_APP_ID"] == "/web/db"
    assert env["MARATHON_APP_VERSION"] == "v1"
    assert env["MARATHON_APP_RESOURCE_CPUS"] == "1.0"
    assert env["MARATHON_APP_RESOURCE_MEM"] == "128.0"
    assert env["MARATHON_APP_RESOURCE_DISK"] == "0.0"
    assert env["MARATHON_APP_RESOURCE_GPUS"] == "0"
    assert env["MARATHON_APP_LABELS"] == "HAPROXY_GROUP A_B_C"
    assert env["MARATHON_APP_LABEL_HAPROXY_GROUP"] == "external"
    assert env["MARATHON_APP_LABEL_A_B_C"] == "v"
    assert "MARATHON_APP_LABEL_BIG" not in env
    assert "SECRET" not in env
    assert "MARATHON_APP_DOCKER_IMAGE" not in env


def test_task_env_docker_mappings() -> None:
    a = appdef.parse_app({"id": "/d", "networks": [{"mode": "container"}], "container": {
        "type": "DOCKER", "docker": {"image": "nginx"},
        "portMappings": [{"containerPort": 80, "hostPort": 0}, {"containerPort": 81},
                         {"containerPort": 0}]}})
    env = appdef.task_env(a, task_id="t", host="h", host_ports=[31000])
    assert env["MARATHON_APP_DOCKER_IMAGE"] == "nginx"
    assert env["PORT0"] == "31000" and env["PORT_80"] == "31000"
    assert env["PORT1"] == "81"
    assert 1025 <= int(env["PORT2"]) <= 65535
    assert env == appdef.task_env(a, task_id="t", host="h", host_ports=[31000])


def test_task_env_prefix_applies_to_ports_and_host_only() -> None:
    env = appdef.task_env(app(), task_id="t", host="h", host_ports=[31000], prefix="P_")
    assert env["P_PORT0"] == "31000" and env["P_HOST"] == "h" and "PORT0" not in env
    assert "MARATHON_APP_ID" in env


# --------------------------------------------------------------------------- the real client


marathon_models = pytest.importorskip("marathon.models")


def test_client_parses_apps() -> None:
    for body in ({"id": "/a", "cmd": "x"}, COMPLEX):
        a = appdef.assign_service_ports(appdef.parse_app(body), set(), None)
        a = appdef.with_version(a, "2024-01-01T00:00:00.000Z", config_change=True, scaling=True)
        out = appdef.app_json(a, instances=[instance(healthy=True)], counts=appdef.counts(a, []),
                              deployments=["d1"], last_task_failure={
                                  "appId": "/a", "host": "h", "message": "m", "state": "TASK_FAILED",
                                  "taskId": "t", "timestamp": "2024-01-01T00:00:00.000Z",
                                  "version": "v", "slaveId": "s"})
        parsed = marathon_models.MarathonApp.from_json(json.loads(json.dumps(out)))
        assert parsed.id == a.id
        assert parsed.tasks[0].started_at.tzinfo is not None
        assert parsed.version_info.last_scaling_at is not None
        parsed.to_json()  # the client can serialize it back (update_app does)


def test_client_parses_tasks_groups_deployments_queue() -> None:
    a = appdef.parse_app(dict(COMPLEX))
    marathon_models.MarathonTask.from_json(appdef.task_json(instance(healthy=False), a))
    marathon_models.MarathonTask.from_json(appdef.task_json(instance("TASK_STAGING", started_at=None), a))
    group = appdef.parse_group(GROUP, group_id="/g")
    g = marathon_models.MarathonGroup.from_json(appdef.group_json(group))
    assert g.groups[0].apps[0].id == "/g/sub/worker"
    d = marathon_models.MarathonDeployment.from_json(appdef.deployment_json(PLAN))
    assert d.affected_apps == ["/g/db", "/g/web"]
    q = marathon_models.MarathonQueueItem.from_json(appdef.queue_item_json(a, 1, 0.0, True, 0.0))
    assert q.delay.overdue is True


def test_client_parses_deployment_event_plan() -> None:
    from marathon.models.deployment import MarathonDeploymentPlan

    plan = MarathonDeploymentPlan.from_json(appdef.plan_json(PLAN))
    assert plan.steps[0].actions[0].app == "/g/db"


def test_client_create_body_parses() -> None:
    body = marathon_models.MarathonApp(cmd="sleep 3600", mem=16, cpus=0.1, instances=5).to_json()
    a = appdef.parse_app(dict(json.loads(body), id="t"))
    assert (a.id, a.instances, a.mem, a.cpus) == ("/t", 5, 16.0, 0.1)


@pytest.mark.parametrize("minimal", [True, False])
@pytest.mark.parametrize("body", [
    {"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "TCP"}], "constraints": [["hostname", "UNIQUE"]],
     "uris": ["http://x/y"], "labels": {"HAPROXY_GROUP": "external"}},
    COMPLEX,
])
def test_client_update_of_a_fetched_app_changes_nothing(body: dict[str, Any], minimal: bool) -> None:
    current = appdef.assign_service_ports(appdef.parse_app(body), set(), None)
    current = appdef.with_version(current, "2024-01-01T00:00:00.000Z", config_change=True, scaling=True)
    fetched = marathon_models.MarathonApp.from_json(json.loads(json.dumps(appdef.app_json(
        current, instances=[instance(healthy=True)], counts=appdef.counts(current, []),
        deployments=[], last_task_failure=None))))
    fetched.version = None  # what update_app does
    sent = json.loads(fetched.to_json(minimal=minimal))
    merged = appdef.merge_app(current, sent, app_id=current.id)
    assert merged == current
    assert not appdef.is_config_change(current, merged)


NORMALIZE_AGAIN = [
    {"id": "/a", "cmd": "x"},
    COMPLEX,
    {"id": "/b", "args": ["a"], "networks": [{"mode": "container", "name": "n"}],
     "container": {"type": "MESOS", "docker": {"image": "x"},
                   "portMappings": [{"containerPort": 1, "name": "http-api", "labels": {"a": "b"}}],
                   "volumes": [{"containerPath": "d", "mode": "RW", "persistent": {"size": 10}}]},
     "readinessChecks": [{}], "healthChecks": [{"protocol": "MESOS_HTTP"}],
     "secrets": {"s": {"source": "x"}}, "env": {"S": {"secret": "s"}}, "user": "nobody"},
    {"id": "/c", "cmd": "x", "ports": [0, 0], "requirePorts": True, "unreachableStrategy": "disabled",
     "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}],
     "fetch": [{"uri": "u", "cache": True}], "acceptedResourceRoles": ["*"],
     "taskKillGracePeriodSeconds": 7, "killSelection": "OLDEST_FIRST"},
]


@pytest.mark.parametrize("body", NORMALIZE_AGAIN)
def test_normalized_definition_parses_to_itself(body: dict[str, Any]) -> None:
    a = appdef.assign_service_ports(appdef.parse_app(body), set(), None)
    a = appdef.with_version(a, "v1", config_change=True, scaling=True)
    again = appdef.parse_app(json.loads(json.dumps(a.raw)))
    assert again.raw == {k: v for k, v in a.raw.items() if k not in ("version", "versionInfo")}

