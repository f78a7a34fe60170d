"""Marathon path ids and task ids."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.frameworks.marathon import paths


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("/a/b", "/", "/a/b"),
        ("//a//b/", "/", "/a/b"),
        ("a/b", "/", "/a/b"),
        ("b", "/g", "/g/b"),
        ("./b", "/g", "/g/b"),
        ("../b", "/g/h", "/g/b"),
        ("../../..", "/g", "/"),
        ("/", "/g", "/"),
        ("", "/", "/"),
        ("/x", "/g", "/x"),
    ],
)
def test_normalize_id(raw: str, base: str, expected: str) -> None:
    assert paths.normalize_id(raw, base) == expected


@pytest.mark.parametrize("good", ["/a", "/a/b-c", "a.b", "/x1/y.z-2", "/..", "../a", "/a/./b"])
def test_validate_id_accepts_marathon_ids(good: str) -> None:
    assert paths.validate_id(good) is None


@pytest.mark.parametrize("bad", ["Bad_Id", "/a/B", "/a_b", "/-a", "/a-", "/a..b", "/a b"])
def test_validate_id_rejects_with_marathon_message(bad: str) -> None:
    error = paths.validate_id(bad)
    assert error is not None
    assert error.startswith("must fully match regular expression '^(([a-z0-9]")
    assert error.endswith("|(\\.|\\.\\.)$'")


def test_safe_id_replaces_slashes_not_dots() -> None:
    assert paths.safe_id("/tools/docker/registry") == "tools_docker_registry"
    assert paths.safe_id("/a.b/c") == "a.b_c"


def test_new_instance_id_and_task_id() -> None:
    instance = paths.new_instance_id("/a/b")
    assert re.fullmatch(r"a_b\.instance-[0-9a-f-]{36}", instance)
    assert paths.new_instance_id("/a/b") != instance
    assert paths.task_id_for(instance) == f"{instance}._app.1"
    assert paths.task_id_for(instance, 3) == f"{instance}._app.3"


def test_task_ids_parse_back_to_app_and_instance() -> None:
    instance = paths.new_instance_id("/tools/docker/registry")
    task = paths.task_id_for(instance, 2)
    assert paths.app_id_of_task(task) == "/tools/docker/registry"
    assert paths.instance_id_of_task(task) == instance
    assert paths.app_id_of_task(instance) == "/tools/docker/registry"
    assert paths.instance_id_of_task(instance) == instance


def test_legacy_task_ids_are_accepted() -> None:
    task = "web_api.5b8d4d57-5f3a-11e6-9a4f-0242ac110002"
    assert paths.app_id_of_task(task) == "/web/api"
    assert paths.instance_id_of_task(task) == "web_api.marathon-5b8d4d57-5f3a-11e6-9a4f-0242ac110002"


def test_dotted_segment_survives_task_id_round_trip() -> None:
    task = paths.task_id_for(paths.new_instance_id("/a.b/c"))
    assert paths.app_id_of_task(task) == "/a.b/c"


def test_foreign_task_id_is_none() -> None:
    assert paths.app_id_of_task("nodots") is None
    assert paths.instance_id_of_task("nodots") is None


def test_parent_and_is_ancestor() -> None:
    assert paths.parent("/a/b") == "/a"
    assert paths.parent("/a") == "/"
    assert paths.parent("/") == "/"
    assert paths.is_ancestor("/", "/a")
    assert paths.is_ancestor("/a", "/a/b/c")
    assert not paths.is_ancestor("/a", "/a")
    assert not paths.is_ancestor("/a", "/ab")
    assert not paths.is_ancestor("/", "/")


@given(st.lists(st.sampled_from(["a", "b", "", ".", "..", "c-d", "e.f"]), max_size=8),
       st.booleans())
def test_normalize_id_is_idempotent_and_absolute(segments: list[str], absolute: bool) -> None:
    raw = ("/" if absolute else "") + "/".join(segments)
    once = paths.normalize_id(raw, "/base/g")
    assert once.startswith("/") and "//" not in once
    assert once == "/" or not once.endswith("/")
    assert paths.normalize_id(once) == once
