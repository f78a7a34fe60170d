"""Marathon path ids (`/a/b`) and task ids (pure).

App and group ids are absolute slash-separated paths; each segment is a DNS-like label
(lowercase letters, digits, `-`, with `.` between labels; no `_`). Task ids embed the
app id as a *safe id*: the path without its leading `/`, `/` replaced by `_`, which is
why `_` is not allowed in segments.

Task id formats (both accepted when parsing):

- legacy (< 1.5): `<safeId>.<uuid>`
- current (>= 1.5): `<safeId>.instance-<uuid>._app.<attempt>`, instance `<safeId>.instance-<uuid>`
"""

from __future__ import annotations

import re
import uuid

__all__ = [
    "ID_SEGMENT_REGEX",
    "app_id_of_task",
    "instance_id_of_task",
    "is_ancestor",
    "new_instance_id",
    "normalize_id",
    "parent",
    "safe_id",
    "task_id_for",
    "validate_id",
]

# Marathon's segment pattern, spelled exactly as its error message quotes it.
ID_SEGMENT_REGEX = (
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$"
)
_SEGMENT = re.compile(ID_SEGMENT_REGEX)

_TASK_ID_NEW = re.compile(r"^(.+)\.(instance-|marathon-)([^_.]+)[._]([^.]+)(\.\d+)?$")
_TASK_ID_LEGACY = re.compile(r"^(.+)([._])([^_.]+)$")


def normalize_id(raw: str, base: str = "/") -> str:
    """The absolute, canonical form of `raw`, resolved against the group `base`.

    Empty segments collapse (`//a//b/` is `/a/b`), `.` and `..` are resolved, and a
    relative id (no leading `/`) is taken relative to `base`. Root is `/`.
    """
    if raw.startswith("/"):
        parts: list[str] = []
    else:
        parts = [p for p in base.split("/") if p]
    for segment in raw.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def _full_match(segment: str) -> bool:
    # Marathon uses Java's `matches` (the whole string); Python's fullmatch over the
    # alternation gives the same answer.
    return _SEGMENT.fullmatch(segment) is not None


def validate_id(app_id: str) -> str | None:
    """Marathon's error message for an id with a bad segment, or None when it is fine."""
    for segment in app_id.split("/"):
        if segment and not _full_match(segment):
            return f"must fully match regular expression '{ID_SEGMENT_REGEX}'"
    return None


def safe_id(app_id: str) -> str:
    """`/tools/docker/registry` -> `tools_docker_registry` (the task id prefix)."""
    return normalize_id(app_id).lstrip("/").replace("/", "_")


def new_instance_id(app_id: str) -> str:
    """A fresh instance id: `<safeId>.instance-<uuid>`."""
    return f"{safe_id(app_id)}.instance-{uuid.uuid4()}"


def task_id_for(instance_id: str, attempt: int = 1) -> str:
    """The Mesos task id of an instance's `attempt`-th task: `<instance>._app.<n>`."""
    return f"{instance_id}._app.{attempt}"


def _app_id_from_safe(safe: str) -> str:
    return "/" + safe.replace("_", "/")


def app_id_of_task(task_id: str) -> str | None:
    """The app id a task (or instance) id belongs to, or None when it is not one of ours."""
    match = _TASK_ID_NEW.match(task_id)
    if match:
        return _app_id_from_safe(match.group(1))
    match = _TASK_ID_LEGACY.match(task_id)
    if match:
        return _app_id_from_safe(match.group(1))
    return None


def instance_id_of_task(task_id: str) -> str | None:
    """The instance id of a task id; a legacy task id maps to `<safeId>.marathon-<uuid>`."""
    match = _TASK_ID_NEW.match(task_id)
    if match:
        return f"{match.group(1)}.{match.group(2)}{match.group(3)}"
    match = _TASK_ID_LEGACY.match(task_id)
    if match:
        if match.group(3).startswith(("instance-", "marathon-")):
            return task_id  # already an instance id
        return f"{match.group(1)}.marathon-{match.group(3)}"
    return None


def parent(path_id: str) -> str:
    """The enclosing group: `/a/b` -> `/a`, `/a` -> `/`, `/` -> `/`."""
    normalized = normalize_id(path_id)
    head, _, _ = normalized.rpartition("/")
    return head or "/"


def is_ancestor(group: str, path_id: str) -> bool:
    """Whether `path_id` lies inside `group` (strictly below it; root contains everything)."""
    group = normalize_id(group)
    path_id = normalize_id(path_id)
    if group == "/":
        return path_id != "/"
    return path_id.startswith(group + "/")
