"""The client verbs' pure parts: address parsing, key=value, deployment outcomes, sandbox lookup."""

from __future__ import annotations

import json

import click
import pytest

from lichen.cli.app import parse_assignments
from lichen.cli.client import (
    DEFAULT_MARATHON,
    Api,
    AppProgress,
    Endpoints,
    base_url,
    deployment_outcome,
    normalize_id,
)
from lichen.cli.task import agent_url_from_pid, executor_directory, tail_offset


def test_base_url_adds_a_scheme_and_drops_the_trailing_slash() -> None:
    assert base_url("10.0.0.1:8080") == "http://10.0.0.1:8080"
    assert base_url("https://m.example:8443/") == "https://m.example:8443"


def test_endpoints_prefer_options_then_environment_then_defaults() -> None:
    env = {"LICHEN_MASTER": "m:5050", "LICHEN_MARATHON": "env:8080"}
    found = Endpoints.resolve(None, "opt:9090", None, env=env)
    assert found.master == "http://m:5050"
    assert found.marathon == "http://opt:9090"
    assert found.chronos == "http://127.0.0.1:4400"
    assert Endpoints.resolve(None, None, None, env={}).marathon == DEFAULT_MARATHON


def test_normalize_id() -> None:
    assert normalize_id("web") == "/web"
    assert normalize_id("//a//b/") == "/a/b"


def test_parse_assignments_reads_json_when_it_parses() -> None:
    assert parse_assignments(["instances=3", "cmd=sleep 10", 'env={"A":"b"}', "x=", "on=true", "s=\"3\""]) == {
        "instances": 3, "cmd": "sleep 10", "env": {"A": "b"}, "x": "", "on": True, "s": "3"}


def test_parse_assignments_rejects_a_pair_without_equals() -> None:
    with pytest.raises(click.BadParameter):
        parse_assignments(["instances"])


def test_vanished_deployment_with_idle_apps_succeeded() -> None:
    apps = [AppProgress("/web", 3, 3, 0, ()), AppProgress("/gone", None, 0, 0, ())]
    assert deployment_outcome("d1", apps) is None


def test_vanished_deployment_with_another_in_progress_failed() -> None:
    why = deployment_outcome("d1", [AppProgress("/web", 3, 1, 0, ("d2",))])
    assert why is not None and "d2" in why


def test_agent_url_from_pid() -> None:
    assert agent_url_from_pid("slave(1)@10.0.0.5:5051") == "http://10.0.0.5:5051"


def test_executor_directory_finds_the_task_in_completed_executors() -> None:
    state = {"frameworks": [{"executors": [{"id": "e1", "directory": "/a", "tasks": [{"id": "t1"}]}],
                             "completed_executors": [{"id": "t2", "directory": "/b",
                                                      "completed_tasks": [{"id": "t2"}]}]}]}
    assert executor_directory(state, "t1") == "/a"
    assert executor_directory(state, "t2") == "/b"
    assert executor_directory(state, "t3") is None


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, length: int) -> str:
        return self.data[offset: offset + length].decode()


@pytest.mark.parametrize(("data", "lines", "expected"), [
    (b"a\nb\nc\n", 2, b"b\nc\n"),
    (b"a\nb\nc", 2, b"b\nc"),
    (b"a\nb\nc\n", 10, b"a\nb\nc\n"),
    (b"a\nb\nc\n", 0, b""),
    (b"", 3, b""),
])
def test_tail_offset_starts_at_the_last_lines(data: bytes, lines: int, expected: bytes) -> None:
    offset = tail_offset(_Bytes(data), len(data), lines)  # type: ignore[arg-type]
    assert data[offset:] == expected


def test_error_message_names_the_deployments_holding_a_locked_app() -> None:
    body = json.dumps({"message": "App is locked by one or more deployments. Override with the option "
                       "'?force=true'. View details at '/v2/deployments/d1'.", "deployments": [{"id": "d1"}]})
    text = Api("http://m", "Marathon").error_message(409, body.encode())
    assert text.startswith("Marathon: App is locked")
    assert "deployment d1" in text and "--force" in text


def test_error_message_shows_string_details_and_non_json_bodies() -> None:
    api = Api("http://m", "Marathon")
    assert api.error_message(400, b'{"message": "Invalid JSON", "details": "Unexpected end"}') == (
        "Marathon: Invalid JSON\n  Unexpected end")
    assert api.error_message(502, b"<html>bad gateway</html>") == "Marathon answered 502: <html>bad gateway</html>"
