"""The Chronos job JSON: validate (400 naming the field), fill defaults, the output shape; task
ids and task environments (pure).

A `Job` wraps the *normalized* job dict: every field of the output written, defaults filled,
`uris`/`fetch` mirrored, exactly one of `parents` / (`schedule` + `scheduleTimeZone`). That dict
is what GET answers (`job_json`), and what the service persists: reading it back through
`parse_job` gives the same job, counters included (Chronos takes the counters from the posted
JSON too, so an update without them resets them).

Field order and names follow Chronos 2.x/3.x output; unknown input fields are ignored.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from lichen.errors import InvalidRequest
from lichen.frameworks.chronos.schedule import (
    Schedule,
    format_schedule,
    parse_duration,
    parse_schedule,
)

__all__ = [
    "CONSTRAINT_OPERATORS",
    "JOB_KEYS",
    "Job",
    "JobDefaults",
    "JobKind",
    "job_json",
    "job_schedule",
    "parse_job",
    "parse_task_id",
    "task_arguments",
    "task_env",
    "task_id",
    "timestamp",
    "with_counters",
    "with_parents",
    "with_schedule",
]

Json = dict[str, Any]
JobKind = Literal["iso8601", "dependency"]

NAME = re.compile(r"[\w.-]+", re.ASCII)
# Chronos parses ct:(\d+):(\d+):([\w.-]+):?(.*); the args need their colon here, so a name
# with a foreign character is no id rather than a truncated name.
_TASK_ID = re.compile(r"ct:(\d+):(\d+):([\w.-]+)(?::(.*))?", re.ASCII | re.DOTALL)
_DEFAULT_SCHEDULE_PERIOD = "PT24H"
CONSTRAINT_OPERATORS = ("EQUALS", "LIKE", "UNLIKE")
_CONTAINER_TYPES = ("DOCKER", "MESOS")
_NETWORKS = ("HOST", "BRIDGE", "USER")
_VOLUME_MODES = ("RW", "RO")

# Every key the output always has (plus `container` when set, and `parents` or `schedule` +
# `scheduleTimeZone`), in output order.
JOB_KEYS = (
    "name", "command", "shell", "arguments", "epsilon", "async", "retries", "owner",
    "ownerName", "description", "cpus", "mem", "disk", "disabled", "concurrent", "softError",
    "highPriority", "dataProcessingJobType", "runAsUser", "executor", "executorFlags",
    "taskInfoData", "maxCompletionTime", "environmentVariables", "uris", "fetch", "constraints",
    "successCount", "errorCount", "errorsSinceLastSuccess", "lastSuccess", "lastError",
)


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """The server flags that fill absent fields (Chronos's --mesos_task_cpu, ...)."""

    cpus: float = 0.1
    mem: float = 128.0
    disk: float = 256.0
    epsilon: float = 60.0   # seconds (--task_epsilon)
    user: str = "root"
    retries: int = 2


@dataclass(frozen=True, slots=True)
class Job:
    """A validated job. `raw` is the normalized JSON (do not mutate it); the properties read
    it typed. `epsilon_seconds` is `raw["epsilon"]` parsed once."""

    raw: Json
    epsilon_seconds: float = field(default=-1.0, compare=False)

    def __post_init__(self) -> None:
        if self.epsilon_seconds < 0:
            object.__setattr__(self, "epsilon_seconds", parse_duration(self.raw["epsilon"]))

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def command(self) -> str:
        return str(self.raw["command"])

    @property
    def shell(self) -> bool:
        return bool(self.raw["shell"])

    @property
    def arguments(self) -> list[Any]:
        return list(self.raw["arguments"])

    @property
    def schedule(self) -> str | None:
        value: str | None = self.raw.get("schedule")
        return value

    @property
    def schedule_time_zone(self) -> str:
        return str(self.raw.get("scheduleTimeZone", ""))

    @property
    def parents(self) -> list[str] | None:
        value: list[str] | None = self.raw.get("parents")
        return value

    @property
    def retries(self) -> int:
        return int(self.raw["retries"])

    @property
    def async_(self) -> bool:
        return bool(self.raw["async"])

    @property
    def owner(self) -> str:
        return str(self.raw["owner"])

    @property
    def owner_name(self) -> str:
        return str(self.raw["ownerName"])

    @property
    def description(self) -> str:
        return str(self.raw["description"])

    @property
    def disabled(self) -> bool:
        return bool(self.raw["disabled"])

    @property
    def concurrent(self) -> bool:
        return bool(self.raw["concurrent"])

    @property
    def soft_error(self) -> bool:
        return bool(self.raw["softError"])

    @property
    def high_priority(self) -> bool:
        return bool(self.raw["highPriority"])

    @property
    def data_job(self) -> bool:
        return bool(self.raw["dataProcessingJobType"])

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
    def run_as_user(self) -> str:
        return str(self.raw["runAsUser"])

    @property
    def max_completion_time(self) -> int:
        return int(self.raw["maxCompletionTime"])

    @property
    def environment(self) -> list[Any]:
        return list(self.raw["environmentVariables"])

    @property
    def uris(self) -> list[Any]:
        return list(self.raw["uris"])

    @property
    def fetch(self) -> list[Any]:
        return list(self.raw["fetch"])

    @property
    def constraints(self) -> list[Any]:
        return list(self.raw["constraints"])

    @property
    def container(self) -> Json | None:
        value: Json | None = self.raw.get("container")
        return value

    @property
    def success_count(self) -> int:
        return int(self.raw["successCount"])

    @property
    def error_count(self) -> int:
        return int(self.raw["errorCount"])

    @property
    def errors_since_last_success(self) -> int:
        return int(self.raw["errorsSinceLastSuccess"])

    @property
    def last_success(self) -> str:
        return str(self.raw["lastSuccess"])

    @property
    def last_error(self) -> str:
        return str(self.raw["lastError"])

    @property
    def epsilon(self) -> float:
        """Seconds a due occurrence may still start late (§3.3)."""
        return self.epsilon_seconds

    @property
    def is_dependent(self) -> bool:
        return "parents" in self.raw


# --------------------------------------------------------------------------- parsing

def parse_job(data: Any, *, now: float, defaults: JobDefaults,
              kind: JobKind | None = None) -> Job:
    """Validate a posted (or persisted) job. `kind` is the endpoint: "dependency" needs
    non-empty parents; with both `schedule` and `parents` the endpoint decides (no endpoint:
    parents win, as Chronos's deserializer). Neither: `R1/<now>/PT24H`. InvalidRequest names
    the field."""
    if not isinstance(data, dict):
        raise InvalidRequest("a job must be a JSON object", field="job")
    name = _get(data, "name", str, None)
    if name is None:
        raise InvalidRequest("missing required field 'name'", field="name")
    if not NAME.fullmatch(name):
        raise InvalidRequest(f"invalid job name '{name}': it must match [\\w.-]+", field="name")
    raw: Json = {
        "name": name,
        "command": _get(data, "command", str, ""),
        "shell": _bool(data, "shell", True),
        "arguments": _strings(data, "arguments"),
    }
    raw.update(_timing(data, now=now, kind=kind))
    raw.update({
        "epsilon": _epsilon(data, defaults),
        "async": _bool(data, "async", False),
        "retries": _count(data, "retries", defaults.retries),
        "owner": _get(data, "owner", str, ""),
        "ownerName": _get(data, "ownerName", str, ""),
        "description": _get(data, "description", str, ""),
        "cpus": _resource(data, "cpus", defaults.cpus),
        "mem": _resource(data, "mem", defaults.mem),
        "disk": _resource(data, "disk", defaults.disk),
        "disabled": _bool(data, "disabled", False),
        "concurrent": _bool(data, "concurrent", False),
        "softError": _bool(data, "softError", False),
        "highPriority": _bool(data, "highPriority", False),
        "dataProcessingJobType": _bool(data, "dataProcessingJobType",
                                       _bool(data, "dataJob", False)),
        "runAsUser": _get(data, "runAsUser", str, "") or defaults.user,
        "executor": _get(data, "executor", str, ""),
        "executorFlags": _get(data, "executorFlags", str, ""),
        "taskInfoData": _get(data, "taskInfoData", str, ""),
        "maxCompletionTime": _count(data, "maxCompletionTime", 0),
        "environmentVariables": _environment(data),
    })
    raw["uris"], raw["fetch"] = _uris_and_fetch(data)
    raw["constraints"] = _constraints(data)
    container = _container(data.get("container"))
    if container is not None:
        raw["container"] = container
    raw.update({
        "successCount": _count(data, "successCount", 0),
        "errorCount": _count(data, "errorCount", 0),
        "errorsSinceLastSuccess": _count(data, "errorsSinceLastSuccess", 0),
        "lastSuccess": _time(data, "lastSuccess"),
        "lastError": _time(data, "lastError"),
    })
    return Job(raw)


def _timing(data: Json, *, now: float, kind: JobKind | None) -> Json:
    """`parents`, or `schedule` + `scheduleTimeZone`."""
    parents = _parents(data)
    if kind == "dependency" and not parents:
        raise InvalidRequest("a dependent job needs a non-empty 'parents' list", field="parents")
    if kind == "iso8601" and data.get("schedule") is not None:
        parents = []  # both given: the endpoint decides
    if parents:
        if data.get("name") in parents:
            raise InvalidRequest(f"dependency cycle: {data['name']} -> {data['name']}",
                                 field="parents")
        return {"parents": parents}
    time_zone = _get(data, "scheduleTimeZone", str, "")
    text = _get(data, "schedule", str, None)
    if text is None:
        start = timestamp(math.floor(now * 1000) / 1000)
        text = f"R1/{start}/{_DEFAULT_SCHEDULE_PERIOD}"
    parsed = parse_schedule(text, time_zone=time_zone, now=now)  # ScheduleError is a 400
    if text.strip().split("/")[1] == "":  # an empty start means now: pin it
        text = format_schedule(parsed)
    return {"schedule": text.strip(), "scheduleTimeZone": time_zone}


def _parents(data: Json) -> list[str]:
    names = _strings(data, "parents")
    for parent in names:
        if not NAME.fullmatch(parent):
            raise InvalidRequest(f"invalid parent name '{parent}' in 'parents'", field="parents")
    return list(dict.fromkeys(names))  # set semantics, first-seen order


def _epsilon(data: Json, defaults: JobDefaults) -> str:
    value = data.get("epsilon")
    if value is None or value == "":
        seconds = defaults.epsilon
        return f"PT{int(seconds)}S" if seconds == int(seconds) else f"PT{seconds}S"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRequest(f"invalid 'epsilon': expected an ISO 8601 duration, got {value!r}",
                             field="epsilon")
    if not isinstance(value, str):  # plain seconds: lichen's leniency
        if value < 0 or not math.isfinite(value):
            raise InvalidRequest(f"invalid 'epsilon': {value!r}", field="epsilon")
        value = f"PT{int(value)}S" if value == int(value) else f"PT{value}S"
    parse_duration(value)  # ScheduleError(field="epsilon") is a 400
    return value


def _get(data: Json, key: str, kind: type, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InvalidRequest(f"invalid '{key}': expected {_TYPE_NAMES[kind]}, got {value!r}",
                             field=key)
    return value


_TYPE_NAMES = {str: "a string", bool: "a boolean", list: "a list", dict: "an object",
               int: "an integer"}


def _bool(data: Json, key: str, default: bool) -> bool:
    value = data.get(key)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return bool(_get(data, key, bool, default))


INT_MAX = 2**31 - 1  # Chronos keeps these in Java ints


def _count(data: Json, key: str, default: int) -> int:
    value = data.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
        raise InvalidRequest(f"invalid '{key}': expected a whole number from 0 to {INT_MAX}",
                             field=key)
    return value


def _resource(data: Json, key: str, default: float) -> float:
    value = data.get(key)
    if value is None or value == "":
        return float(default)
    number: float
    if isinstance(value, str):  # Chronos accepts "0.5"
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise InvalidRequest(f"invalid '{key}': expected a number >= 0, got {value!r}", field=key)
    return number or float(default)  # 0 means the flag default, and GET shows the default


def _strings(data: Json, key: str) -> list[str]:
    values = _get(data, key, list, [])
    for value in values:
        if not isinstance(value, str):
            raise InvalidRequest(f"invalid '{key}': expected a list of strings, got {value!r}",
                                 field=key)
    return list(values)


def _objects(data: Json, key: str) -> list[Json]:
    values = _get(data, key, list, [])
    for value in values:
        if not isinstance(value, dict):
            raise InvalidRequest(f"invalid '{key}': expected a list of objects, got {value!r}",
                                 field=key)
    return list(values)


def _scalar_text(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise InvalidRequest(f"invalid '{key}': expected a string, got {value!r}", field=key)


def _environment(data: Json) -> list[Json]:
    result = []
    for entry in _objects(data, "environmentVariables"):
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                f"invalid 'environmentVariables': every entry needs a name, got {entry!r}",
                field="environmentVariables")
        value = entry.get("value")
        result.append({"name": name, "value": "" if value is None
                       else _scalar_text(value, "environmentVariables")})
    return result


def _uris_and_fetch(data: Json) -> tuple[list[str], list[Json]]:
    uris = _strings(data, "uris")
    fetch = []
    for entry in _objects(data, "fetch"):
        uri = entry.get("uri")
        if not isinstance(uri, str) or not uri:
            raise InvalidRequest(f"invalid 'fetch': every entry needs a uri, got {entry!r}",
                                 field="fetch")
        fetch.append({
            "uri": uri,
            "executable": _bool(entry, "executable", False),
            "cache": _bool(entry, "cache", False),
            "extract": _bool(entry, "extract", True),
            "output_file": _get(entry, "output_file", str, ""),
        })
    if uris and fetch:
        if uris != [entry["uri"] for entry in fetch]:
            raise InvalidRequest("set either 'uris' or 'fetch', not both", field="fetch")
        return uris, fetch  # the mirrored pair GET shows, posted back
    if uris:
        fetch = [{"uri": uri, "executable": False, "cache": False, "extract": True,
                  "output_file": ""} for uri in uris]
    else:
        uris = [entry["uri"] for entry in fetch]
    return uris, fetch


def _constraints(data: Json) -> list[list[str]]:
    result = []
    for entry in _get(data, "constraints", list, []):
        if (not isinstance(entry, list) or len(entry) != 3
                or not all(isinstance(part, str) for part in entry)):
            raise InvalidRequest(
                f"invalid 'constraints': expected [attribute, operator, value], got {entry!r}",
                field="constraints")
        attribute, operator, value = entry
        operator = operator.upper()
        if operator not in CONSTRAINT_OPERATORS:
            continue  # Chronos drops operators it does not know, silently
        if operator != "EQUALS":
            try:
                re.compile(value)
            except re.error as exc:
                raise InvalidRequest(f"invalid 'constraints': bad regex {value!r} ({exc})",
                                     field="constraints") from None
        result.append([attribute, operator, value])
    return result


def _container(data: Any) -> Json | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InvalidRequest(f"invalid 'container': expected an object, got {data!r}",
                             field="container")
    image = _get(data, "image", str, "")
    if not image:
        return None  # Chronos ignores a container without an image
    kind = _enum(data, "type", _CONTAINER_TYPES, "DOCKER")
    container: Json = {
        "type": kind,
        "image": image,
        "network": _enum(data, "network", _NETWORKS, "HOST"),
    }
    network_name = _get(data, "networkName", str, None)
    if network_name is not None:
        container["networkName"] = network_name
    if data.get("networkInfos") is not None:
        infos = _objects(data, "networkInfos")
        for info in infos:
            if not isinstance(info.get("name"), str):
                raise InvalidRequest("invalid 'container.networkInfos': every entry needs a name",
                                     field="container.networkInfos")
        container["networkInfos"] = infos
    container["volumes"] = [_volume(volume) for volume in _objects(data, "volumes")]
    container["forcePullImage"] = _bool(data, "forcePullImage", False)
    container["parameters"] = [
        {"key": _scalar_text(p.get("key", ""), "container.parameters"),
         "value": _scalar_text(p.get("value", ""), "container.parameters")}
        for p in _objects(data, "parameters")
    ]
    return container


def _volume(data: Json) -> Json:
    path = data.get("containerPath")
    if not isinstance(path, str) or not path:
        raise InvalidRequest("invalid 'container.volumes': every volume needs a containerPath",
                             field="container.volumes")
    volume: Json = {"containerPath": path}
    host = _get(data, "hostPath", str, None)
    if host is not None:
        volume["hostPath"] = host
    volume["mode"] = _enum(data, "mode", _VOLUME_MODES, "RW")
    external = _get(data, "external", dict, None)
    if external is not None:
        volume["external"] = external
    return volume


def _enum(data: Json, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = _get(data, key, str, default).upper()
    if value not in allowed:
        raise InvalidRequest(f"invalid '{key}': {value!r} is not one of {', '.join(allowed)}",
                             field=key)
    return str(value)


def _time(data: Json, key: str) -> str:
    value = _get(data, key, str, "")
    if value == "":
        return ""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"invalid '{key}': expected a timestamp, got {value!r}",
                             field=key) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return timestamp(parsed.timestamp())


# --------------------------------------------------------------------------- output

def job_json(job: Job) -> Json:
    """The job as GET shows it (a shallow copy of the normalized dict)."""
    return dict(job.raw)


def timestamp(epoch: float) -> str:
    """`2026-11-24T16:20:00.123Z`; compared as strings by chronos-nagios, keep the form."""
    millis = math.floor(epoch * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


_COUNTERS = {
    "success_count": "successCount", "error_count": "errorCount",
    "errors_since_last_success": "errorsSinceLastSuccess", "last_success": "lastSuccess",
    "last_error": "lastError", "disabled": "disabled",
}


def with_counters(job: Job, **changes: Any) -> Job:
    """Change counters (`success_count`, `error_count`, `errors_since_last_success`,
    `last_success`, `last_error`: a str or epoch seconds) and `disabled`."""
    raw = dict(job.raw)
    for key, value in changes.items():
        if key not in _COUNTERS:
            raise TypeError(f"with_counters() got an unexpected field {key!r}")
        if key in ("last_success", "last_error") and not isinstance(value, str):
            value = timestamp(value)
        raw[_COUNTERS[key]] = value
    return replace(job, raw=raw)


def with_schedule(job: Job, schedule_text: str, time_zone: str | None = None) -> Job:
    """The job with this schedule (already valid, e.g. `format_schedule` after advancing);
    a dependent job becomes a scheduled one. `time_zone` None keeps the current zone."""
    raw = {key: value for key, value in job.raw.items() if key != "parents"}
    raw["schedule"] = schedule_text
    raw["scheduleTimeZone"] = job.schedule_time_zone if time_zone is None else time_zone
    return replace(job, raw=_ordered(raw))


def with_parents(job: Job, parents: list[str]) -> Job:
    """The job depending on `parents` (non-empty); a scheduled job becomes a dependent one."""
    raw = {key: value for key, value in job.raw.items()
           if key not in ("schedule", "scheduleTimeZone")}
    raw["parents"] = list(dict.fromkeys(parents))
    return replace(job, raw=_ordered(raw))


def _ordered(raw: Json) -> Json:
    """Timing keys right after `arguments`, as `parse_job` writes them."""
    head = {key: raw[key] for key in ("name", "command", "shell", "arguments")}
    timing: Json = {key: raw[key] for key in ("schedule", "scheduleTimeZone", "parents")
                    if key in raw}
    rest = {key: value for key, value in raw.items() if key not in head and key not in timing}
    return {**head, **timing, **rest}


def job_schedule(job: Job, *, now: float) -> Schedule | None:
    """The job's parsed schedule (None for a dependent job)."""
    if job.schedule is None:
        return None
    return parse_schedule(job.schedule, time_zone=job.schedule_time_zone, now=now)


# --------------------------------------------------------------------------- tasks

def task_arguments(job: Job, manual: str | None = None) -> str:
    """What goes in the task id's last part: the manual arguments, else the job's joined."""
    text = manual if manual is not None else " ".join(job.arguments)
    return text.replace(";", "")


def task_id(due_millis: int, attempt: int, job: str, args: str) -> str:
    """`ct:<dueMillis>:<attempt>:<job>:<args>`, always with the `:` before args."""
    return f"ct:{due_millis}:{attempt}:{job}:{args.replace(';', '')}"


def parse_task_id(value: str) -> tuple[int, int, str, str] | None:
    """(due millis, attempt, job name, args), or None for an id not of this form."""
    match = _TASK_ID.fullmatch(value)
    if match is None:
        return None
    return int(match[1]), int(match[2]), match[3], match[4] or ""


def task_env(job: Job, *, task_id: str, host: str, due_millis: int,
             attempt: int) -> dict[str, str]:
    """The task's environment: the job's variables, then the built-ins (which win)."""
    env = {entry["name"]: str(entry["value"]) for entry in job.environment}
    env.update({
        "mesos_task_id": task_id,
        "MESOS_TASK_ID": task_id,
        "CHRONOS_JOB_OWNER": job.owner,
        "CHRONOS_JOB_NAME": job.name,
        "HOST": host,
        "CHRONOS_RESOURCE_CPU": str(job.cpus),
        "CHRONOS_RESOURCE_MEM": str(job.mem),
        "CHRONOS_RESOURCE_DISK": str(job.disk),
        "CHRONOS_JOB_RUN_TIME": str(due_millis),
        "CHRONOS_JOB_RUN_ATTEMPT": str(attempt),
    })
    return env
