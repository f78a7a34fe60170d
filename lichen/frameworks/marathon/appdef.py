"""App and group definitions: parse, validate, normalize, merge; the v2 API's JSON shapes (pure).

An `AppDefinition` wraps the *normalized* definition dict: every default filled, legacy
inputs converted (`uris` -> `fetch`, `ports` -> `portDefinitions`, `docker.network` /
`docker.portMappings` / `ipAddress` -> `networks` / `container.portMappings`), exactly
what GET answers minus the read-only fields. Parsing collects every problem into one
`ValidationFailed` (422) whose `details` use Marathon's paths (`/healthChecks(0)/port`).

The output builders (`app_json`, `task_json`, `group_json`, `deployment_json`, ...) emit
only keys marathon-python 0.13.0 knows: its models are built with `cls(**json)`, so one
unknown key fails the client's call with a TypeError.
"""

from __future__ import annotations

import functools
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from lichen.errors import LichenError
from lichen.frameworks.marathon import paths
from lichen.frameworks.marathon.health import Health
from lichen.frameworks.marathon.model import DeploymentPlan, Instance

__all__ = [
    "AppDefinition",
    "GroupDefinition",
    "ValidationFailed",
    "app_json",
    "assign_service_ports",
    "counts",
    "deployment_json",
    "flatten_apps",
    "group_json",
    "is_config_change",
    "is_rollback",
    "merge_app",
    "now_version",
    "parse_app",
    "parse_group",
    "plan_json",
    "queue_item_json",
    "resolve_group_id",
    "scale_group",
    "task_env",
    "task_json",
    "timestamp",
    "with_instances",
    "with_version",
]

Json = dict[str, Any]

# Keys the server sets or computes; ignored on input (clients echo them back).
READ_ONLY_KEYS = frozenset({
    "version", "versionInfo", "tasks", "tasksStaged", "tasksRunning", "tasksHealthy",
    "tasksUnhealthy", "deployments", "lastTaskFailure", "taskStats", "readinessCheckResults",
})

NETWORK_MODES = ("host", "container/bridge", "container")
HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
_HTTP_PROTOCOLS = ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS")
_MESOS_NETWORK_PROTOCOLS = ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
_LEGACY_DOCKER_NETWORKS = {
    "BRIDGE": "container/bridge", "HOST": "host", "USER": "container", "NONE": "container",
}
_CMD_ARGS_CONTAINER = (
    "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
)
_ROLLBACK_ONLY_ID = "The 'version' field may only be combined with the 'id' field."
_PORT_INDEX = (
    "Health check port indices must address an element of the ports array or container "
    "port mappings."
)


# --------------------------------------------------------------------------- errors


class ValidationFailed(LichenError):
    """A definition Marathon would answer 422 for.

    `details` is Marathon's list of `{"path": "/cpus", "errors": ["..."]}`; `message` is
    "Object is not valid", or "Invalid JSON" when a value has the wrong JSON type.
    """

    status = 422

    def __init__(self, details: list[Json], message: str = "Object is not valid") -> None:
        super().__init__(message)
        self.details = details

    @classmethod
    def at(cls, path: str, error: str, message: str = "Object is not valid") -> ValidationFailed:
        return cls([{"path": path, "errors": [error]}], message)


class _Problems:
    """Collects type errors and validation errors while a definition is read."""

    def __init__(self) -> None:
        self.type_errors: list[tuple[str, str]] = []
        self.invalid: list[tuple[str, str]] = []

    def wrong_type(self, path: str, error: str) -> None:
        self.type_errors.append((path or "/", error))

    def add(self, path: str, error: str) -> None:
        self.invalid.append((path or "/", error))

    def raise_any(self) -> None:
        if self.type_errors:
            raise ValidationFailed(_group_details(self.type_errors), "Invalid JSON")
        if self.invalid:
            raise ValidationFailed(_group_details(self.invalid))


def _group_details(pairs: list[tuple[str, str]]) -> list[Json]:
    by_path: dict[str, list[str]] = {}
    for path, error in pairs:
        errors = by_path.setdefault(path, [])
        if error not in errors:
            errors.append(error)
    return [{"path": p, "errors": e} for p, e in by_path.items()]


# --------------------------------------------------------------------------- typed reads

_EXPECTED = {
    "string": "error.expected.jsstring",
    "number": "error.expected.jsnumber",
    "int": "error.expected.jsnumber",
    "boolean": "error.expected.jsboolean",
    "array": "error.expected.jsarray",
    "object": "error.expected.jsobject",
}


def _typed(value: Any, kind: str, path: str, problems: _Problems) -> Any:
    """`value` if it has JSON type `kind` (ints come back as int), else None + a type error."""
    ok: bool
    if kind == "string":
        ok = isinstance(value, str)
    elif kind in ("number", "int"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and kind == "int" and isinstance(value, float):
            if not value.is_integer():
                problems.wrong_type(path, "error.expected.int")
                return None
            value = int(value)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "array":
        ok = isinstance(value, list)
    elif kind == "object":
        ok = isinstance(value, dict)
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    if not ok:
        problems.wrong_type(path, _EXPECTED[kind])
        return None
    return value


def _field(data: Json, key: str, kind: str, path: str, problems: _Problems) -> Any:
    """`data[key]` checked for `kind`; None when absent, null or of the wrong type."""
    value = data.get(key)
    if value is None:
        return None
    return _typed(value, kind, f"{path}/{key}", problems)


def _strings(value: Any, path: str, problems: _Problems) -> list[str] | None:
    items = _typed(value, "array", path, problems)
    if items is None:
        return None
    out = []
    for i, item in enumerate(items):
        s = _typed(item, "string", f"{path}({i})", problems)
        if s is not None:
            out.append(s)
    return out


def _string_map(value: Any, path: str, problems: _Problems) -> dict[str, str]:
    obj = _typed(value, "object", path, problems)
    out: dict[str, str] = {}
    for key, item in (obj or {}).items():
        s = _typed(item, "string", f"{path}/{key}", problems)
        if s is not None:
            out[key] = s
    return out


def _at_least(value: float | None, minimum: float, path: str, problems: _Problems) -> None:
    if value is not None and value < minimum:
        problems.add(path, f"got {value}, expected {minimum} or more")


def _between(value: float | None, low: float, high: float, path: str, problems: _Problems) -> None:
    if value is not None and not low <= value <= high:
        problems.add(path, f"got {value}, expected between {low} and {high}")


def _protocol(value: Any, path: str, problems: _Problems) -> str:
    """tcp, udp or "udp,tcp" (the only spellings the client accepts)."""
    if value is None:
        return "tcp"
    s = _typed(value, "string", path, problems)
    if s is None:
        return "tcp"
    parts = sorted({p.strip().lower() for p in s.split(",") if p.strip()}, reverse=True)
    if not parts or any(p not in ("tcp", "udp") for p in parts):
        problems.add(path, f"is not one of (tcp, udp, udp,tcp): {s!r}")
        return "tcp"
    return ",".join(parts)


# --------------------------------------------------------------------------- the definition


@dataclass(frozen=True, slots=True, eq=False)
class AppDefinition:
    """A validated, normalized app definition. Change one with the functions below."""

    id: str
    raw: Json = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AppDefinition) and other.raw == self.raw

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ resources, command
    @property
    def instances(self) -> int:
        return int(self.raw["instances"])

    @property
    def cpus(self) -> float:
        return float(self.raw["cpus"])

    @property
    def mem(self) -> float:
        return float(self.raw["mem"])

    @property
    def disk(self) -> float:
        return float(self.raw["disk"])

    @property
    def gpus(self) -> int:
        return int(self.raw["gpus"])

    @property
    def cmd(self) -> str | None:
        return self.raw.get("cmd")

    @property
    def args(self) -> list[str] | None:
        return self.raw.get("args")

    @property
    def env(self) -> dict[str, Any]:
        return dict(self.raw["env"])

    @property
    def user(self) -> str | None:
        return self.raw.get("user")

    @property
    def fetch(self) -> list[Json]:
        return list(self.raw["fetch"])

    @property
    def container(self) -> Json | None:
        return self.raw.get("container")

    @property
    def docker_image(self) -> str | None:
        container = self.raw.get("container") or {}
        docker = container.get("docker") or {}
        image = docker.get("image")
        return image if isinstance(image, str) and image else None

    @property
    def constraints(self) -> list[list[str]]:
        return [list(c) for c in self.raw["constraints"]]

    @property
    def accepted_resource_roles(self) -> list[str] | None:
        roles = self.raw.get("acceptedResourceRoles")
        return list(roles) if roles is not None else None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.raw["labels"])

    @property
    def dependencies(self) -> list[str]:
        return list(self.raw["dependencies"])

    # ------------------------------------------------------------------ networking
    @property
    def network_mode(self) -> str:
        return str(self.raw["networks"][0]["mode"])

    @property
    def port_definitions(self) -> list[Json]:
        return list(self.raw.get("portDefinitions", []))

    @property
    def port_mappings(self) -> list[Json]:
        if self.network_mode == "host":
            return []
        return list((self.raw.get("container") or {}).get("portMappings", []))

    @property
    def require_ports(self) -> bool:
        return bool(self.raw["requirePorts"])

    @property
    def service_ports(self) -> list[int]:
        if self.network_mode == "host":
            return [int(p["port"]) for p in self.port_definitions]
        return [int(p.get("servicePort", 0)) for p in self.port_mappings]

    @property
    def port_names(self) -> list[str | None]:
        ports = self.port_definitions if self.network_mode == "host" else self.port_mappings
        return [p.get("name") for p in ports]

    # ------------------------------------------------------------------ checks, strategies
    @property
    def health_checks(self) -> list[Json]:
        return list(self.raw["healthChecks"])

    @property
    def readiness_checks(self) -> list[Json]:
        return list(self.raw["readinessChecks"])

    @property
    def min_health_capacity(self) -> float:
        return float(self.raw["upgradeStrategy"]["minimumHealthCapacity"])

    @property
    def max_over_capacity(self) -> float:
        return float(self.raw["upgradeStrategy"]["maximumOverCapacity"])

    @property
    def backoff_seconds(self) -> float:
        return float(self.raw["backoffSeconds"])

    @property
    def backoff_factor(self) -> float:
        return float(self.raw["backoffFactor"])

    @property
    def max_launch_delay_seconds(self) -> float:
        return float(self.raw["maxLaunchDelaySeconds"])

    @property
    def kill_selection(self) -> str:
        return str(self.raw["killSelection"])

    @property
    def unreachable_inactive_after(self) -> float | None:
        strategy = self.raw["unreachableStrategy"]
        return None if strategy == "disabled" else float(strategy["inactiveAfterSeconds"])

    @property
    def unreachable_expunge_after(self) -> float | None:
        strategy = self.raw["unreachableStrategy"]
        return None if strategy == "disabled" else float(strategy["expungeAfterSeconds"])

    @property
    def task_kill_grace_period(self) -> float | None:
        value = self.raw.get("taskKillGracePeriodSeconds")
        return float(value) if value is not None else None

    @property
    def is_resident(self) -> bool:
        return "residency" in self.raw

    # ------------------------------------------------------------------ versions
    @property
    def version(self) -> str | None:
        return self.raw.get("version")

    @property
    def version_info(self) -> Json | None:
        info = self.raw.get("versionInfo")
        return dict(info) if info is not None else None


# --------------------------------------------------------------------------- parsing


def is_rollback(data: Any) -> str | None:
    """The version a body asks to roll back to (`{"version": v}` or with `id`), else None.

    Raises ValidationFailed when `version` comes with other fields.
    """
    if not isinstance(data, dict) or data.get("version") is None:
        return None
    problems = _Problems()
    version = _typed(data["version"], "string", "/version", problems)
    problems.raise_any()
    others = [k for k, v in data.items() if k not in ("id", "version") and v is not None]
    if others:
        raise ValidationFailed.at("/", _ROLLBACK_ONLY_ID)
    return str(version)


def parse_app(
    data: Any, *, base: str = "/", id_from_path: str | None = None
) -> AppDefinition:
    """Validate and normalize a POST/PUT app body (decoded JSON).

    The id comes from `id_from_path` when given (PUT /v2/apps/{id}), else from the body,
    resolved against the group `base`. Unknown and read-only keys are ignored.
    """
    problems = _Problems()
    app = _read_app(data, "", problems, base=base, id_from_path=id_from_path)
    problems.raise_any()
    assert app is not None
    return app


def _read_app(
    data: Any, prefix: str, problems: _Problems, *, base: str, id_from_path: str | None
) -> AppDefinition | None:
    body = _typed(data, "object", prefix or "/", problems)
    if body is None:
        return None
    app_id = _read_id(body, prefix, problems, base=base, id_from_path=id_from_path)
    raw = _normalize(body, prefix, problems, app_id=app_id)
    return AppDefinition(id=app_id, raw=raw)


def _read_id(
    body: Json, prefix: str, problems: _Problems, *, base: str, id_from_path: str | None
) -> str:
    if id_from_path is not None:
        given: Any = id_from_path
    else:
        given = body.get("id")
        if given is None:
            problems.wrong_type(f"{prefix}/id", "error.path.missing")
            return "/"
    text = _typed(given, "string", f"{prefix}/id", problems)
    if text is None:
        return "/"
    error = paths.validate_id(text)
    if error:
        problems.add(f"{prefix}/id", error)
        return "/"
    app_id = paths.normalize_id(text, base)
    if app_id == "/":
        problems.add(f"{prefix}/id", "Path must contain at least one path element")
    return app_id


def _normalize(body: Json, prefix: str, problems: _Problems, *, app_id: str) -> Json:
    """The normalized definition dict (key order is the order GET shows)."""
    p = prefix
    raw: Json = {"id": app_id}

    cmd = _field(body, "cmd", "string", p, problems)
    args = _field(body, "args", "array", p, problems)
    if args is not None:
        args = _strings(args, f"{p}/args", problems)
    container_in = _field(body, "container", "object", p, problems)
    if cmd is not None and cmd == "":
        problems.add(f"{p}/cmd", "must not be empty")
    if (cmd is not None and args is not None) or (
        cmd is None and args is None and container_in is None
    ):
        problems.add(f"{p}/", _CMD_ARGS_CONTAINER)
    if cmd is not None:
        raw["cmd"] = cmd
    if args is not None:
        raw["args"] = args
    user = _field(body, "user", "string", p, problems)
    if user is not None:
        raw["user"] = user

    secrets = _read_secrets(body, p, problems)
    raw["env"] = _read_env(body, p, problems, secrets)

    instances = _field(body, "instances", "int", p, problems)
    _at_least(instances, 0, f"{p}/instances", problems)
    raw["instances"] = 1 if instances is None else instances
    for key, default, minimum in (("cpus", 1.0, 0.001), ("mem", 128.0, 0.0), ("disk", 0.0, 0.0)):
        value = _field(body, key, "number", p, problems)
        _at_least(value, minimum, f"{p}/{key}", problems)
        raw[key] = float(default if value is None else value)
    gpus = _field(body, "gpus", "int", p, problems)
    _at_least(gpus, 0, f"{p}/gpus", problems)
    raw["gpus"] = gpus or 0
    executor = _field(body, "executor", "string", p, problems)
    raw["executor"] = executor or ""

    raw["constraints"] = _read_constraints(body, p, problems)
    raw["fetch"] = _read_fetch(body, p, problems)

    backoff = _field(body, "backoffSeconds", "int", p, problems)
    _at_least(backoff, 0, f"{p}/backoffSeconds", problems)
    raw["backoffSeconds"] = 1 if backoff is None else backoff
    factor = _field(body, "backoffFactor", "number", p, problems)
    _at_least(factor, 1.0, f"{p}/backoffFactor", problems)
    raw["backoffFactor"] = 1.15 if factor is None else float(factor)
    max_delay = _field(body, "maxLaunchDelaySeconds", "int", p, problems)
    _at_least(max_delay, 0, f"{p}/maxLaunchDelaySeconds", problems)
    raw["maxLaunchDelaySeconds"] = 300 if max_delay is None else max_delay

    networks = _read_networks(body, container_in, p, problems)
    mode = networks[0]["mode"]
    container = _read_container(body, container_in, mode, p, problems)
    if container is not None:
        raw["container"] = container
    port_definitions = _read_port_definitions(body, mode, p, problems)
    ports = port_definitions if mode == "host" else (container or {}).get("portMappings", [])
    port_names = [q.get("name") for q in ports]

    raw["healthChecks"] = _read_health_checks(body, len(ports), p, problems)
    raw["readinessChecks"] = _read_readiness_checks(body, port_names, p, problems)
    raw["dependencies"] = _read_dependencies(body, app_id, p, problems)

    resident = any("persistent" in v for v in (container or {}).get("volumes", []))
    residency = _read_residency(body, resident, p, problems)
    raw["upgradeStrategy"] = _read_upgrade_strategy(body, residency is not None, p, problems)
    raw["labels"] = _string_map(body.get("labels") or {}, f"{p}/labels", problems)
    roles = body.get("acceptedResourceRoles")
    if roles is not None:
        raw["acceptedResourceRoles"] = _strings(roles, f"{p}/acceptedResourceRoles", problems) or []
    if residency is not None:
        raw["residency"] = residency
    grace = _field(body, "taskKillGracePeriodSeconds", "number", p, problems)
    _at_least(grace, 0, f"{p}/taskKillGracePeriodSeconds", problems)
    if grace is not None:
        raw["taskKillGracePeriodSeconds"] = int(grace) if float(grace).is_integer() else grace
    raw["secrets"] = secrets
    raw["unreachableStrategy"] = _read_unreachable(body, residency is not None, p, problems)
    kill = _field(body, "killSelection", "string", p, problems)
    if kill is not None and kill not in KILL_SELECTIONS:
        problems.add(f"{p}/killSelection", f"is not one of ({', '.join(KILL_SELECTIONS)})")
    raw["killSelection"] = kill if kill in KILL_SELECTIONS else "YOUNGEST_FIRST"
    require_ports = _field(body, "requirePorts", "boolean", p, problems)
    raw["requirePorts"] = bool(require_ports)
    raw["networks"] = networks
    if mode == "host":
        raw["portDefinitions"] = port_definitions
    role = _field(body, "role", "string", p, problems)
    raw["role"] = role or "*"
    return raw


def _read_secrets(body: Json, p: str, problems: _Problems) -> Json:
    secrets = _field(body, "secrets", "object", p, problems) or {}
    out: Json = {}
    for name, secret in secrets.items():
        obj = _typed(secret, "object", f"{p}/secrets/{name}", problems)
        if obj is None:
            continue
        source = obj.get("source")
        if _typed(source, "string", f"{p}/secrets/{name}/source", problems) is not None:
            out[name] = {"source": source}
    return out


def _read_env(body: Json, p: str, problems: _Problems, secrets: Json) -> Json:
    env = _field(body, "env", "object", p, problems) or {}
    out: Json = {}
    for key, value in env.items():
        path = f"{p}/env/{key}"
        if isinstance(value, dict):
            ref = value.get("secret")
            if _typed(ref, "string", f"{path}/secret", problems) is None:
                continue
            if ref not in secrets:
                problems.add(path, f"references an undefined secret named '{ref}'")
            out[key] = {"secret": ref}
        elif _typed(value, "string", path, problems) is not None:
            out[key] = value
    return out


def _read_constraints(body: Json, p: str, problems: _Problems) -> list[list[str]]:
    constraints = _field(body, "constraints", "array", p, problems) or []
    out: list[list[str]] = []
    for i, constraint in enumerate(constraints):
        path = f"{p}/constraints({i})"
        if _typed(constraint, "array", path, problems) is None:
            continue
        error = _validate_constraint(constraint)
        if error:
            problems.add(path, error)
            continue
        out.append([str(part) for part in constraint])
    return out


def _validate_constraint(constraint: Any) -> str | None:
    try:
        from lichen.frameworks.marathon.constraints import validate_constraint
    except ImportError:  # pragma: no cover - only before constraints.py exists
        ok = 2 <= len(constraint) <= 3 and all(isinstance(c, (str, int, float)) for c in constraint)
        return None if ok else "Each constraint must have either 2 or 3 fields"
    return validate_constraint(constraint)


def _read_fetch(body: Json, p: str, problems: _Problems) -> list[Json]:
    fetch = _field(body, "fetch", "array", p, problems)
    uris = body.get("uris")
    uri_list = _strings(uris, f"{p}/uris", problems) if uris is not None else None
    # Clients echo `"uris": []` next to `fetch`; only two non-empty lists conflict.
    if uri_list:
        if fetch:
            problems.add(f"{p}/", "AppDefinition must not contain both 'uris' and 'fetch'")
            return []
        return [
            {"uri": uri, "extract": True, "executable": False, "cache": False} for uri in uri_list
        ]
    out: list[Json] = []
    for i, item in enumerate(fetch or []):
        path = f"{p}/fetch({i})"
        obj = _typed(item, "object", path, problems)
        if obj is None:
            continue
        uri = obj.get("uri")
        if uri is None:
            problems.wrong_type(f"{path}/uri", "error.path.missing")
            continue
        if _typed(uri, "string", f"{path}/uri", problems) is None:
            continue
        entry: Json = {"uri": uri}
        for key, default in (("extract", True), ("executable", False), ("cache", False)):
            value = _field(obj, key, "boolean", path, problems)
            entry[key] = default if value is None else value
        dest = _field(obj, "destPath", "string", path, problems)
        if dest is not None:
            entry["destPath"] = dest
        out.append(entry)
    return out


def _read_networks(
    body: Json, container_in: Json | None, p: str, problems: _Problems
) -> list[Json]:
    """`networks`, else the legacy `container.docker.network` or `ipAddress`, else host."""
    given = _field(body, "networks", "array", p, problems)
    if given:
        out: list[Json] = []
        for i, item in enumerate(given):
            path = f"{p}/networks({i})"
            obj = _typed(item, "object", path, problems)
            if obj is None:
                continue
            mode = _field(obj, "mode", "string", path, problems) or "container"
            if mode not in NETWORK_MODES:
                problems.add(f"{path}/mode", f"is not one of ({', '.join(NETWORK_MODES)})")
                continue
            network: Json = {"mode": mode}
            name = _field(obj, "name", "string", path, problems)
            if name is not None:
                network["name"] = name
            if obj.get("labels") is not None:
                network["labels"] = _string_map(obj["labels"], f"{path}/labels", problems)
            out.append(network)
        modes = {n["mode"] for n in out}
        if len(modes) > 1:
            problems.add(f"{p}/networks", "network modes must not be mixed")
        elif modes & {"host", "container/bridge"} and len(out) > 1:
            problems.add(f"{p}/networks", "only one host or container/bridge network is allowed")
        return out or [{"mode": "host"}]
    docker = (container_in or {}).get("docker")
    legacy = docker.get("network") if isinstance(docker, dict) else None
    if legacy is not None:
        if legacy not in _LEGACY_DOCKER_NETWORKS:
            problems.add(
                f"{p}/container/docker/network",
                f"is not one of ({', '.join(_LEGACY_DOCKER_NETWORKS)})",
            )
            return [{"mode": "host"}]
        return [{"mode": _LEGACY_DOCKER_NETWORKS[legacy]}]
    ip_address = _field(body, "ipAddress", "object", p, problems)
    if ip_address is not None:
        network = {"mode": "container"}
        name = _field(ip_address, "networkName", "string", f"{p}/ipAddress", problems)
        if name is not None:
            network["name"] = name
        return [network]
    return [{"mode": "host"}]


def _read_port_definitions(body: Json, mode: str, p: str, problems: _Problems) -> list[Json]:
    given = body.get("portDefinitions")
    legacy = body.get("ports")
    if mode != "host":
        if given:
            problems.add(f"{p}/portDefinitions", "portDefinitions are only allowed with host networking")
        return []
    if given is None and legacy is not None:
        numbers = _typed(legacy, "array", f"{p}/ports", problems) or []
        given = [{"port": n} for n in numbers]
        item_path = f"{p}/ports"
    else:
        item_path = f"{p}/portDefinitions"
    if given is None:
        return [{"port": 0, "protocol": "tcp", "name": "default"}]
    items = _typed(given, "array", f"{p}/portDefinitions", problems) or []
    out: list[Json] = []
    for i, item in enumerate(items):
        path = f"{item_path}({i})"
        obj = item if isinstance(item, dict) else None
        if obj is None:
            _typed(item, "object", path, problems)
            continue
        port = obj.get("port", 0)
        port = 0 if port is None else _typed(port, "int", f"{path}/port", problems)
        if port is None:
            continue
        _between(port, 0, 65535, f"{path}/port", problems)
        definition: Json = {"port": port, "protocol": _protocol(obj.get("protocol"), f"{path}/protocol", problems)}
        name = _field(obj, "name", "string", path, problems)
        if name is not None:
            definition["name"] = name
        if obj.get("labels") is not None:
            definition["labels"] = _string_map(obj["labels"], f"{path}/labels", problems)
        out.append(definition)
    _unique_ports(out, "port", f"{p}/portDefinitions", problems)
    return out


def _unique_ports(ports: list[Json], key: str, path: str, problems: _Problems) -> None:
    names = [q["name"] for q in ports if q.get("name") is not None]
    if len(names) != len(set(names)):
        problems.add(path, "Port names must be unique.")
    numbers = [q[key] for q in ports if q.get(key)]
    if len(numbers) != len(set(numbers)):
        problems.add(path, "Ports must be unique.")


def _read_container(
    body: Json, container_in: Json | None, mode: str, p: str, problems: _Problems
) -> Json | None:
    if container_in is None:
        if mode == "host":
            return None
        # Non-host networking needs a container to carry the port mappings.
        container_in = {"type": "MESOS"}
    path = f"{p}/container"
    ctype = _field(container_in, "type", "string", path, problems) or "DOCKER"
    if ctype not in ("DOCKER", "MESOS"):
        problems.add(f"{path}/type", "is not one of (DOCKER, MESOS)")
        ctype = "DOCKER"
    container: Json = {"type": ctype}
    docker_in = _field(container_in, "docker", "object", path, problems)
    docker = _read_docker(docker_in, ctype, path, problems)
    if docker is not None:
        container["docker"] = docker
    mappings_in = container_in.get("portMappings")
    legacy_mappings = (docker_in or {}).get("portMappings")
    if mappings_in and legacy_mappings:
        problems.add(
            path, "'portMappings' may not be set both on the container and on container.docker"
        )
    if not mappings_in and legacy_mappings:
        mappings_in = legacy_mappings
        mappings_path = f"{path}/docker/portMappings"
    else:
        mappings_path = f"{path}/portMappings"
    if mode == "host":
        if mappings_in:
            problems.add(mappings_path, "portMappings are only allowed with non-host networking")
    else:
        container["portMappings"] = _read_port_mappings(
            mappings_in, body, mode, mappings_path, p, problems
        )
    container["volumes"] = _read_volumes(container_in.get("volumes"), f"{path}/volumes", problems)
    return container


def _read_docker(docker_in: Json | None, ctype: str, path: str, problems: _Problems) -> Json | None:
    if docker_in is None:
        if ctype == "DOCKER":
            problems.add(f"{path}/docker/image", "must not be empty")
        return None
    dpath = f"{path}/docker"
    image = _field(docker_in, "image", "string", dpath, problems)
    if not image and ctype == "DOCKER":
        problems.add(f"{dpath}/image", "must not be empty")
    docker: Json = {"image": image or ""}
    for key in ("privileged", "forcePullImage"):
        value = _field(docker_in, key, "boolean", dpath, problems)
        docker[key] = bool(value)
    parameters = []
    for i, item in enumerate(_field(docker_in, "parameters", "array", dpath, problems) or []):
        ipath = f"{dpath}/parameters({i})"
        obj = _typed(item, "object", ipath, problems)
        if obj is None:
            continue
        key = _field(obj, "key", "string", ipath, problems)
        value = _field(obj, "value", "string", ipath, problems)
        if key is None or value is None:
            problems.wrong_type(ipath, "error.path.missing")
            continue
        parameters.append({"key": key, "value": value})
    docker["parameters"] = parameters
    return docker


def _read_port_mappings(
    mappings_in: Any, body: Json, mode: str, path: str, p: str, problems: _Problems
) -> list[Json]:
    if mappings_in is None:
        mappings_in = _ip_address_ports(body, p, problems)
    items = _typed(mappings_in, "array", path, problems) or []
    out: list[Json] = []
    for i, item in enumerate(items):
        ipath = f"{path}({i})"
        obj = _typed(item, "object", ipath, problems)
        if obj is None:
            continue
        container_port = _field(obj, "containerPort", "int", ipath, problems) or 0
        host_port = _field(obj, "hostPort", "int", ipath, problems)
        if host_port is None and mode == "container/bridge":
            host_port = 0
        service_port = _field(obj, "servicePort", "int", ipath, problems) or 0
        for key, value in (("containerPort", container_port), ("hostPort", host_port),
                           ("servicePort", service_port)):
            _between(value, 0, 65535, f"{ipath}/{key}", problems)
        if container_port == 0 and host_port:
            container_port = host_port
        mapping: Json = {"containerPort": container_port}
        if host_port is not None:
            mapping["hostPort"] = host_port
        mapping["servicePort"] = service_port
        mapping["protocol"] = _protocol(obj.get("protocol"), f"{ipath}/protocol", problems)
        name = _field(obj, "name", "string", ipath, problems)
        if name is not None:
            mapping["name"] = name
        if obj.get("labels") is not None:
            mapping["labels"] = _string_map(obj["labels"], f"{ipath}/labels", problems)
        out.append(mapping)
    _unique_ports(out, "servicePort", path, problems)
    return out


def _ip_address_ports(body: Json, p: str, problems: _Problems) -> list[Json]:
    """Legacy `ipAddress.discovery.ports` as port mappings (no host ports)."""
    ip_address = body.get("ipAddress")
    if not isinstance(ip_address, dict) or not isinstance(ip_address.get("discovery"), dict):
        return []
    out = []
    for i, port in enumerate(ip_address["discovery"].get("ports") or []):
        if not isinstance(port, dict):
            problems.wrong_type(f"{p}/ipAddress/discovery/ports({i})", "error.expected.jsobject")
            continue
        mapping = {"containerPort": port.get("number") or 0, "protocol": port.get("protocol")}
        if port.get("name") is not None:
            mapping["name"] = port["name"]
        out.append(mapping)
    return out


def _read_volumes(volumes_in: Any, path: str, problems: _Problems) -> list[Json]:
    if volumes_in is None:
        return []
    out: list[Json] = []
    for i, item in enumerate(_typed(volumes_in, "array", path, problems) or []):
        ipath = f"{path}({i})"
        obj = _typed(item, "object", ipath, problems)
        if obj is None:
            continue
        container_path = _field(obj, "containerPath", "string", ipath, problems)
        if not container_path:
            problems.add(f"{ipath}/containerPath", "must not be empty")
        mode = _field(obj, "mode", "string", ipath, problems) or "RW"
        if mode not in ("RO", "RW"):
            problems.add(f"{ipath}/mode", "is not one of (RO, RW)")
            mode = "RW"
        volume: Json = {"containerPath": container_path or ""}
        host_path = _field(obj, "hostPath", "string", ipath, problems)
        if host_path is not None:
            volume["hostPath"] = host_path
        volume["mode"] = mode
        persistent = _field(obj, "persistent", "object", ipath, problems)
        if persistent is not None:
            size = _field(persistent, "size", "number", f"{ipath}/persistent", problems)
            if size is None or size <= 0:
                problems.add(f"{ipath}/persistent/size", "must be greater than 0")
            volume["persistent"] = dict(persistent)
        external = _field(obj, "external", "object", ipath, problems)
        if external is not None:
            volume["external"] = dict(external)
        if host_path is None and persistent is None and external is None:
            problems.add(ipath, "must have one of 'hostPath', 'persistent' or 'external'")
        out.append(volume)
    return out


def _read_health_checks(body: Json, port_count: int, p: str, problems: _Problems) -> list[Json]:
    out: list[Json] = []
    for i, item in enumerate(_field(body, "healthChecks", "array", p, problems) or []):
        path = f"{p}/healthChecks({i})"
        obj = _typed(item, "object", path, problems)
        if obj is None:
            continue
        protocol = _field(obj, "protocol", "string", path, problems) or "HTTP"
        if protocol not in HEALTH_PROTOCOLS:
            problems.add(f"{path}/protocol", f"is not one of ({', '.join(HEALTH_PROTOCOLS)})")
            protocol = "HTTP"
        check: Json = {"protocol": protocol}
        if protocol in _HTTP_PROTOCOLS:
            check["path"] = _field(obj, "path", "string", path, problems) or "/"
        if protocol == "COMMAND":
            command = _field(obj, "command", "object", path, problems)
            value = (command or {}).get("value")
            if not isinstance(value, str) or not value:
                problems.add(f"{path}/command", "Health check protocol COMMAND needs a command value")
            check["command"] = {"value": value or ""}
        else:
            port = _field(obj, "port", "int", path, problems)
            port_index = _field(obj, "portIndex", "int", path, problems)
            if port is not None:
                _between(port, 0, 65535, f"{path}/port", problems)
                check["port"] = port
            else:
                port_index = port_index or 0
                if not 0 <= port_index < port_count:
                    problems.add(f"{path}/portIndex", _PORT_INDEX)
                check["portIndex"] = port_index
        for key, default in (("gracePeriodSeconds", 300), ("intervalSeconds", 60),
                             ("timeoutSeconds", 20), ("maxConsecutiveFailures", 3),
                             ("delaySeconds", 15)):
            value = _field(obj, key, "int", path, problems)
            _at_least(value, 0, f"{path}/{key}", problems)
            check[key] = default if value is None else value
        if protocol in _HTTP_PROTOCOLS:
            check["ignoreHttp1xx"] = bool(_field(obj, "ignoreHttp1xx", "boolean", path, problems))
        if protocol != "COMMAND":
            ip_protocol = _field(obj, "ipProtocol", "string", path, problems) or "IPv4"
            if ip_protocol not in ("IPv4", "IPv6"):
                problems.add(f"{path}/ipProtocol", "is not one of (IPv4, IPv6)")
            check["ipProtocol"] = ip_protocol
        out.append(check)
    # Mesos runs one check per task. Marathon counts COMMAND checks out of this rule:
    # older versions saved apps with several, and those stay valid.
    if sum(1 for c in out if c["protocol"] in _MESOS_NETWORK_PROTOCOLS) > 1:
        problems.add(f"{p}/", "AppDefinition can contain at most one Mesos health check")
    return out


def _read_readiness_checks(
    body: Json, port_names: list[str | None], p: str, problems: _Problems
) -> list[Json]:
    out: list[Json] = []
    for i, item in enumerate(_field(body, "readinessChecks", "array", p, problems) or []):
        path = f"{p}/readinessChecks({i})"
        obj = _typed(item, "object", path, problems)
        if obj is None:
            continue
        protocol = _field(obj, "protocol", "string", path, problems) or "HTTP"
        if protocol not in ("HTTP", "HTTPS"):
            problems.add(f"{path}/protocol", "is not one of (HTTP, HTTPS)")
        port_name = _field(obj, "portName", "string", path, problems) or "http-api"
        if port_name not in port_names:
            problems.add(f"{path}/portName", f"no port named '{port_name}'")
        codes = _field(obj, "httpStatusCodesForReady", "array", path, problems)
        check: Json = {
            "name": _field(obj, "name", "string", path, problems) or "readinessCheck",
            "protocol": protocol,
            "path": _field(obj, "path", "string", path, problems) or "/",
            "portName": port_name,
        }
        for key, default in (("intervalSeconds", 30), ("timeoutSeconds", 10)):
            value = _field(obj, key, "int", path, problems)
            _at_least(value, 0, f"{path}/{key}", problems)
            check[key] = default if value is None else value
        check["httpStatusCodesForReady"] = [int(c) for c in codes] if codes else [200]
        check["preserveLastResponse"] = bool(
            _field(obj, "preserveLastResponse", "boolean", path, problems)
        )
        out.append(check)
    if len(out) > 1:   # Marathon: readinessChecks.size should be <= 1
        problems.add(f"{p}/readinessChecks", f"got {len(out)}, expected 1 or less")
    return out


def _read_dependencies(body: Json, app_id: str, p: str, problems: _Problems) -> list[str]:
    out: list[str] = []
    for i, dep in enumerate(_strings(body.get("dependencies") or [], f"{p}/dependencies", problems) or []):
        error = paths.validate_id(dep)
        if error:
            problems.add(f"{p}/dependencies({i})", error)
            continue
        out.append(paths.normalize_id(dep, paths.parent(app_id)))
    return out


def _read_residency(body: Json, resident: bool, p: str, problems: _Problems) -> Json | None:
    given = _field(body, "residency", "object", p, problems)
    if given is None and not resident:
        return None
    given = given or {}
    timeout = _field(given, "relaunchEscalationTimeoutSeconds", "int", f"{p}/residency", problems)
    behavior = _field(given, "taskLostBehavior", "string", f"{p}/residency", problems)
    return {
        "relaunchEscalationTimeoutSeconds": 3600 if timeout is None else timeout,
        "taskLostBehavior": behavior or "WAIT_FOREVER",
    }


def _read_upgrade_strategy(body: Json, resident: bool, p: str, problems: _Problems) -> Json:
    given = _field(body, "upgradeStrategy", "object", p, problems) or {}
    defaults = (0.5, 0.0) if resident else (1.0, 1.0)
    out: Json = {}
    for key, default in zip(("minimumHealthCapacity", "maximumOverCapacity"), defaults):
        value = _field(given, key, "number", f"{p}/upgradeStrategy", problems)
        _between(value, 0.0, 1.0, f"{p}/upgradeStrategy/{key}", problems)
        out[key] = float(default if value is None else value)
    return out


def _read_unreachable(body: Json, resident: bool, p: str, problems: _Problems) -> Json | str:
    given = body.get("unreachableStrategy")
    if given is None:
        return "disabled" if resident else {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    if given == "disabled":
        return "disabled"
    path = f"{p}/unreachableStrategy"
    obj = _typed(given, "object", path, problems) or {}
    inactive = _field(obj, "inactiveAfterSeconds", "int", path, problems)
    expunge = _field(obj, "expungeAfterSeconds", "int", path, problems)
    inactive = 0 if inactive is None else inactive
    expunge = 0 if expunge is None else expunge
    _at_least(inactive, 0, f"{path}/inactiveAfterSeconds", problems)
    _at_least(expunge, 0, f"{path}/expungeAfterSeconds", problems)
    if inactive > expunge:
        problems.add(
            f"{path}/inactiveAfterSeconds",
            "inactiveAfterSeconds must be less or equal to expungeAfterSeconds",
        )
    return {"inactiveAfterSeconds": inactive, "expungeAfterSeconds": expunge}


# --------------------------------------------------------------------------- updates


def _body_network_mode(body: Json) -> str | None:
    """The network mode a (not yet validated) body asks for, or None if it says nothing."""
    networks = body.get("networks")
    if isinstance(networks, list) and networks and isinstance(networks[0], dict):
        return str(networks[0].get("mode") or "container")
    container = body.get("container")
    docker = container.get("docker") if isinstance(container, dict) else None
    if isinstance(docker, dict) and docker.get("network") in _LEGACY_DOCKER_NETWORKS:
        return _LEGACY_DOCKER_NETWORKS[docker["network"]]
    if isinstance(body.get("ipAddress"), dict):
        return "container"
    return None


def merge_app(current: AppDefinition | None, patch: Any, *, app_id: str) -> AppDefinition:
    """PUT/PATCH semantics: the patch's fields replace the current ones, the rest are kept.

    With no current app the patch is a whole new definition. The result keeps the current
    `version`/`versionInfo` (so `with_version` can carry `lastConfigChangeAt` forward).
    """
    if current is None:
        return parse_app(patch, id_from_path=app_id)
    problems = _Problems()
    body = _typed(patch, "object", "/", problems)
    problems.raise_any()
    changes = {k: v for k, v in body.items() if v is not None and k not in READ_ONLY_KEYS}
    changes.pop("id", None)
    merged: Json = {k: v for k, v in current.raw.items() if k not in ("version", "versionInfo")}
    # A legacy field in the patch replaces its normalized counterpart.
    if changes.get("uris") and "fetch" not in changes:
        merged.pop("fetch", None)
    if changes.get("ports") is not None and "portDefinitions" not in changes:
        merged.pop("portDefinitions", None)
    if "cmd" in changes:
        merged.pop("args", None)
    if "args" in changes:
        merged.pop("cmd", None)
    if "networks" not in changes and _body_network_mode(changes) is not None:
        merged.pop("networks", None)
    merged.update(changes)
    mode = _body_network_mode(merged) or "host"
    if mode != "host" and "portDefinitions" not in changes and "ports" not in changes:
        merged.pop("portDefinitions", None)
        merged.pop("ports", None)
    if mode == "host" and isinstance(merged.get("container"), dict) and "container" not in changes:
        merged["container"] = {k: v for k, v in merged["container"].items() if k != "portMappings"}
    app = parse_app(merged, id_from_path=app_id)
    raw = dict(app.raw)
    for key in ("version", "versionInfo"):
        if key in current.raw:
            raw[key] = current.raw[key]
    return AppDefinition(id=app.id, raw=raw)


def _strip_versions(raw: Json) -> Json:
    return {k: v for k, v in raw.items() if k not in ("version", "versionInfo")}


def is_config_change(old: AppDefinition, new: AppDefinition) -> bool:
    """Whether anything but `instances` (and the version fields) differs."""
    a = _strip_versions(old.raw)
    b = _strip_versions(new.raw)
    a.pop("instances", None)
    b.pop("instances", None)
    return a != b


def with_version(app: AppDefinition, version: str, *, config_change: bool, scaling: bool) -> AppDefinition:
    """Stamp a new version: config change -> both times, scale -> lastScalingAt,
    restart (config_change=True, scaling=False) -> lastConfigChangeAt."""
    previous = app.raw.get("versionInfo") or {}
    info = {
        "lastScalingAt": version if scaling else previous.get("lastScalingAt", version),
        "lastConfigChangeAt": (
            version if config_change else previous.get("lastConfigChangeAt", version)
        ),
    }
    raw = dict(app.raw)
    raw["version"] = version
    raw["versionInfo"] = info
    return AppDefinition(id=app.id, raw=raw)


def with_instances(app: AppDefinition, instances: int) -> AppDefinition:
    """The same definition scaled to `instances` (version untouched)."""
    raw = dict(app.raw)
    raw["instances"] = max(0, int(instances))
    return AppDefinition(id=app.id, raw=raw)


def assign_service_ports(
    app: AppDefinition,
    used: set[int],
    previous: AppDefinition | None,
    *,
    port_min: int = 10000,
    port_max: int = 20000,
) -> AppDefinition:
    """Give every 0 service port a free port in `[port_min, port_max]`, stored back.

    `used` are ports taken by other apps (this app's own ports may be in it). A port the
    previous definition had at the same index is reused; explicit ports are kept as they
    are. Raises ValidationFailed when the range is exhausted.
    """
    host = app.network_mode == "host"
    ports = app.port_definitions if host else app.port_mappings
    key = "port" if host else "servicePort"
    wanted = [int(q.get(key, 0)) for q in ports]
    if 0 not in wanted:
        return app
    before = previous.service_ports if previous is not None else []
    taken = {q for q in wanted if q}
    out: list[int] = []
    for i, q in enumerate(wanted):
        if q == 0 and i < len(before) and before[i] and before[i] not in taken:
            q = before[i]
            taken.add(q)
        out.append(q)
    blocked = set(used) | taken | {q for q in before if q}
    candidate = port_min
    for i, q in enumerate(out):
        if q:
            continue
        while candidate <= port_max and candidate in blocked:
            candidate += 1
        if candidate > port_max:
            path = "/portDefinitions" if host else "/container/portMappings"
            raise ValidationFailed.at(
                path, f"no free service port left in [{port_min}, {port_max}]"
            )
        out[i] = candidate
        blocked.add(candidate)
    new_ports = [dict(q, **{key: n}) for q, n in zip(ports, out)]
    raw = dict(app.raw)
    if host:
        raw["portDefinitions"] = new_ports
    else:
        raw["container"] = dict(raw["container"], portMappings=new_ports)
    return AppDefinition(id=app.id, raw=raw)


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True, slots=True)
class GroupDefinition:
    id: str
    apps: tuple[AppDefinition, ...] = ()
    groups: tuple[GroupDefinition, ...] = ()
    dependencies: tuple[str, ...] = ()
    version: str | None = None


def resolve_group_id(data: Any, url_id: str) -> str:
    """The group a POST /v2/groups[/{url_id}] body describes: its `id` relative to the URL."""
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return paths.normalize_id(data["id"], url_id)
    return paths.normalize_id(url_id)


def parse_group(data: Any, *, group_id: str) -> GroupDefinition:
    """Validate a group body describing `group_id` (the caller resolved the body's id).

    Nested app and group ids resolve relative to their enclosing group; an id used twice
    (two apps, or an app and a group) is a 422.
    """
    problems = _Problems()
    group = _read_group(data, "", problems, paths.normalize_id(group_id))
    if group is not None:
        _check_collisions(group, problems)
    problems.raise_any()
    assert group is not None
    return group


def _read_group(data: Any, prefix: str, problems: _Problems, group_id: str) -> GroupDefinition | None:
    body = _typed(data, "object", prefix or "/", problems)
    if body is None:
        return None
    apps: list[AppDefinition] = []
    for i, item in enumerate(_field(body, "apps", "array", prefix, problems) or []):
        app = _read_app(item, f"{prefix}/apps({i})", problems, base=group_id, id_from_path=None)
        if app is None or app.id == "/":
            continue
        if paths.parent(app.id) != group_id:
            problems.add(f"{prefix}/apps({i})/id", f"identifier {app.id} is not child of {group_id}")
        apps.append(app)
    groups: list[GroupDefinition] = []
    for i, item in enumerate(_field(body, "groups", "array", prefix, problems) or []):
        gpath = f"{prefix}/groups({i})"
        if not isinstance(item, dict):
            _typed(item, "object", gpath, problems)
            continue
        raw_id = _typed(item.get("id"), "string", f"{gpath}/id", problems)
        if raw_id is None:
            continue
        error = paths.validate_id(raw_id)
        if error:
            problems.add(f"{gpath}/id", error)
            continue
        child_id = paths.normalize_id(raw_id, group_id)
        if paths.parent(child_id) != group_id:
            problems.add(f"{gpath}/id", f"identifier {child_id} is not child of {group_id}")
        child = _read_group(item, gpath, problems, child_id)
        if child is not None:
            groups.append(child)
    dependencies = []
    for i, dep in enumerate(_strings(body.get("dependencies") or [], f"{prefix}/dependencies", problems) or []):
        error = paths.validate_id(dep)
        if error:
            problems.add(f"{prefix}/dependencies({i})", error)
            continue
        dependencies.append(paths.normalize_id(dep, paths.parent(group_id)))
    # `version` is the server's to set (a body's version means rollback, the caller's job).
    return GroupDefinition(
        id=group_id, apps=tuple(apps), groups=tuple(groups), dependencies=tuple(dependencies),
    )


def _check_collisions(group: GroupDefinition, problems: _Problems) -> None:
    seen: set[str] = set()

    def visit(g: GroupDefinition) -> None:
        for app in g.apps:
            if app.id in seen:
                problems.add("/", f"Groups and Applications may not have the same identifier: {app.id}")
            seen.add(app.id)
        for child in g.groups:
            if child.id in seen:
                problems.add("/", f"Groups and Applications may not have the same identifier: {child.id}")
            seen.add(child.id)
            visit(child)

    seen.add(group.id)
    visit(group)


def flatten_apps(group: GroupDefinition) -> dict[str, AppDefinition]:
    """Every app in the tree, by id."""
    out = {app.id: app for app in group.apps}
    for child in group.groups:
        out.update(flatten_apps(child))
    return out


def scale_group(group: GroupDefinition, factor: float) -> GroupDefinition:
    """Every app in the tree scaled to `ceil(instances * factor)`."""
    return GroupDefinition(
        id=group.id,
        apps=tuple(with_instances(a, math.ceil(a.instances * factor)) for a in group.apps),
        groups=tuple(scale_group(g, factor) for g in group.groups),
        dependencies=group.dependencies,
        version=group.version,
    )


# --------------------------------------------------------------------------- output shapes


@functools.lru_cache(maxsize=65536)
def timestamp(epoch: float) -> str:
    """`2026-11-24T16:20:00.123Z` (the only form marathon-python parses). Cached: a task
    listing formats the same staging and start times on every request."""
    millis = round(epoch * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def now_version(epoch: float) -> str:
    """The version string of a change made at `epoch`."""
    return timestamp(epoch)


def counts(app: AppDefinition, instances: list[Instance]) -> dict[str, int]:
    """`tasksStaged/Running/Healthy/Unhealthy` of an app's instances."""
    staged = sum(1 for i in instances if i.state in ("TASK_STAGING", "TASK_STARTING"))
    running = [i for i in instances if i.state == "TASK_RUNNING"]
    checked = bool(app.health_checks)
    return {
        "tasksStaged": staged,
        "tasksRunning": len(running),
        "tasksHealthy": sum(1 for i in running if i.healthy is True) if checked else 0,
        "tasksUnhealthy": sum(1 for i in instances if i.healthy is False) if checked else 0,
    }


_TASK_FAILURE_KEYS = (
    "appId", "host", "message", "state", "taskId", "instanceId", "timestamp", "version", "slaveId",
)


def app_json(
    app: AppDefinition,
    *,
    instances: list[Instance] | None = None,
    counts: dict[str, int] | None = None,
    deployments: list[str] | None = None,
    last_task_failure: Json | None = None,
    task_stats: Json | None = None,
    readiness: list[Json] | None = None,
) -> Json:
    """The App object: the normalized definition plus the read-only fields given."""
    out = dict(app.raw)
    if counts is not None:
        for key in ("tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy"):
            out[key] = int(counts.get(key, 0))
    if deployments is not None:
        out["deployments"] = [{"id": d} for d in deployments]
    if instances is not None:
        out["tasks"] = [task_json(i, app) for i in instances]
    if last_task_failure is not None:
        out["lastTaskFailure"] = {
            k: last_task_failure[k] for k in _TASK_FAILURE_KEYS if k in last_task_failure
        }
    if task_stats is not None:
        out["taskStats"] = task_stats
    if readiness is not None:
        out["readinessCheckResults"] = readiness
    return out


def task_json(instance: Instance, app: AppDefinition | None) -> Json:
    """The Task object (§3 keys only)."""
    service_ports = list(instance.service_ports) or (app.service_ports if app else [])
    # list_endpoints pairs ports[i] with servicePorts[i]: never let servicePorts be shorter.
    service_ports += [0] * (len(instance.ports) - len(service_ports))
    state = "TASK_KILLING" if instance.killing and instance.state == "TASK_RUNNING" else instance.state
    out: Json = {
        "id": instance.task_id,
        "appId": instance.app_id,
        "host": instance.host,
        "ports": list(instance.ports),
        "servicePorts": service_ports,
        "ipAddresses": [{"ipAddress": instance.host, "protocol": "IPv4"}] if instance.host else [],
        "stagedAt": timestamp(instance.staged_at),
    }
    if instance.started_at is not None:
        out["startedAt"] = timestamp(instance.started_at)
    out["version"] = instance.version
    out["slaveId"] = instance.agent_id
    out["state"] = state
    out["healthCheckResults"] = _health_results(instance, app)
    out["localVolumes"] = []
    return out


def _health_results(instance: Instance, app: AppDefinition | None) -> list[Json]:
    if app is None or not app.health_checks:
        return []
    if any(h is not None for h in instance.health):
        return [_health_json(h, instance.instance_id) for h in instance.health if h is not None]
    if instance.healthy is None:
        return []
    # Only the verdict is known (recovered from the store, or set by a test double).
    when = timestamp(instance.started_at if instance.started_at is not None else instance.staged_at)
    result = {
        "alive": instance.healthy,
        "consecutiveFailures": 0 if instance.healthy else 1,
        "firstSuccess": when if instance.healthy else None,
        "lastSuccess": when if instance.healthy else None,
        "lastFailure": None if instance.healthy else when,
        "lastFailureCause": None if instance.healthy else "unhealthy",
        "instanceId": instance.instance_id,
    }
    return [dict(result) for _ in app.health_checks]


def _health_json(h: Health, instance_id: str) -> Json:
    def when(t: float | None) -> str | None:
        return None if t is None else timestamp(t)
    return {
        "alive": h.alive,
        "consecutiveFailures": h.consecutive_failures,
        "firstSuccess": when(h.first_success),
        "lastSuccess": when(h.last_success),
        "lastFailure": when(h.last_failure),
        "lastFailureCause": h.last_failure_cause,
        "instanceId": instance_id,
    }


def group_json(group: GroupDefinition, embed: set[str] | None = None) -> Json:
    """The Group object; `embed` holds `group.apps` / `group.groups` / `group.pods` (empty = all)."""
    embed = embed or {"group.apps", "group.groups", "group.pods"}
    out: Json = {
        "id": group.id,
        "apps": [app_json(a) for a in group.apps] if "group.apps" in embed else [],
        "groups": [group_json(g, embed) for g in group.groups] if "group.groups" in embed else [],
        "pods": [],
        "dependencies": list(group.dependencies),
    }
    if group.version is not None:
        out["version"] = group.version
    return out


def _actions_json(actions: tuple[Any, ...], *, readiness: bool = False) -> list[Json]:
    out = []
    for a in actions:
        action: Json = {"action": a.action, "app": a.app}
        if readiness:
            action["readinessCheckResults"] = []
        out.append(action)
    return out


def deployment_json(plan: DeploymentPlan) -> Json:
    """The Deployment object of GET /v2/deployments."""
    total = len(plan.steps)
    running = plan.steps[plan.current_step] if plan.current_step < total else ()
    return {
        "id": plan.id,
        "version": plan.version,
        "affectedApps": list(plan.affected_apps),
        "affectedPods": [],
        "steps": [{"actions": _actions_json(step)} for step in plan.steps],
        "currentActions": _actions_json(running, readiness=True),
        "currentStep": min(plan.current_step + 1, total) if total else 0,
        "totalSteps": total,
    }


def _plan_group(apps: dict[str, Any], version: str) -> Json:
    return {
        "id": "/",
        "apps": [a for _, a in sorted(apps.items()) if a is not None],
        "groups": [],
        "pods": [],
        "dependencies": [],
        "version": version,
    }


def plan_json(plan: DeploymentPlan, light: bool = False) -> Json:
    """The `plan` of deployment events; `light` (plan-format=light) drops original/target."""
    out: Json = {
        "id": plan.id,
        "version": plan.version,
        "steps": [{"actions": _actions_json(step)} for step in plan.steps],
    }
    if not light:
        out["original"] = _plan_group(plan.original, plan.version)
        out["target"] = _plan_group(plan.target, plan.version)
    return out


def queue_item_json(app: AppDefinition, count: int, delay_left: float, overdue: bool, since: float) -> Json:
    """One entry of GET /v2/queue."""
    return {
        "app": app_json(app),
        "count": count,
        "delay": {"timeLeftSeconds": max(0, math.ceil(delay_left)), "overdue": overdue},
        "since": timestamp(since),
        "processedOffersSummary": {
            "processedOffersCount": 0,
            "unusedOffersCount": 0,
            "rejectSummaryLastOffers": [],
            "rejectSummaryLaunchAttempt": [],
        },
    }


# --------------------------------------------------------------------------- task environment

_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")


def _env_name(name: str) -> str:
    return _LABEL_NAME.sub("_", name).upper()


def _scala_number(value: float) -> str:
    return repr(float(value))


def task_env(
    app: AppDefinition, *, task_id: str, host: str, host_ports: list[int], prefix: str = ""
) -> dict[str, str]:
    """The environment Marathon gives a task.

    `host_ports` are the host ports allocated to the task, in port order, for the ports
    that take one (every port definition; port mappings with a `hostPort`). `prefix`
    (`--env_vars_prefix`) applies to the PORT* and HOST variables only.
    """
    env: dict[str, str] = {}
    host_mode = app.network_mode == "host"
    specs = app.port_definitions if host_mode else app.port_mappings
    allocated = iter(host_ports)
    chooser = random.Random(task_id)
    effective: list[int] = []
    for spec in specs:
        if host_mode or spec.get("hostPort") is not None:
            port = next(allocated, 0)
        else:
            # A mapping without a host port: tasks see its containerPort (random if 0).
            port = int(spec.get("containerPort") or 0) or chooser.randint(1025, 65535)
        effective.append(port)
    for i, (spec, port) in enumerate(zip(specs, effective)):
        env[f"{prefix}PORT{i}"] = str(port)
        requested = int(spec.get("port", 0) if host_mode else spec.get("containerPort", 0))
        env[f"{prefix}PORT_{requested or port}"] = str(port)
        if spec.get("name"):
            env[f"{prefix}PORT_{_env_name(spec['name'])}"] = str(port)
    if effective:
        env[f"{prefix}PORT"] = str(effective[0])
        env[f"{prefix}PORTS"] = ",".join(str(p) for p in effective)
    env[f"{prefix}HOST"] = host
    env["MESOS_TASK_ID"] = task_id
    env["MARATHON_APP_ID"] = app.id
    env["MARATHON_APP_VERSION"] = app.version or ""
    container = app.container or {}
    if container.get("type") == "DOCKER" and app.docker_image:
        env["MARATHON_APP_DOCKER_IMAGE"] = app.docker_image
    env["MARATHON_APP_RESOURCE_CPUS"] = _scala_number(app.cpus)
    env["MARATHON_APP_RESOURCE_MEM"] = _scala_number(app.mem)
    env["MARATHON_APP_RESOURCE_DISK"] = _scala_number(app.disk)
    env["MARATHON_APP_RESOURCE_GPUS"] = str(app.gpus)
    names = []
    for key, value in app.labels.items():
        if len(key) >= 512 or len(value) >= 512:
            continue
        name = _env_name(key)
        names.append(name)
        env[f"MARATHON_APP_LABEL_{name}"] = value
    env["MARATHON_APP_LABELS"] = " ".join(names)
    for key, value in app.env.items():
        if isinstance(value, str):
            env[key] = value
    return env
