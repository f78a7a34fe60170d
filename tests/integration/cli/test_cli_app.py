"""`lichen app ...` run as a real command against a fake Marathon v2 server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli.fake_servers import FakeMarathon, marathon, run_lichen

__all__ = ["marathon"]


def env_for(server: FakeMarathon) -> dict[str, str]:
    return {"LICHEN_MARATHON": server.url}


def test_app_list_table_shows_each_app(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "python3 -m http.server $PORT0", "instances": 2})
    marathon.add_app({"id": "tools/cron", "cmd": "sleep 100"})
    out = run_lichen("app", "list", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert "/web" in out.stdout and "/tools/cron" in out.stdout
    assert "2/2" in out.stdout


def test_app_list_json_is_the_servers_json(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "list", "--json", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"apps": list(marathon.apps.values())}


def test_marathon_option_overrides_the_environment_and_takes_host_port(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    address = marathon.url.removeprefix("http://")
    out = run_lichen("app", "--marathon", address, "list", env={"LICHEN_MARATHON": "127.0.0.1:1"})
    assert out.returncode == 0, out.stderr
    assert "/web" in out.stdout


def test_app_show_table_and_json(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100", "instances": 1})
    out = run_lichen("app", "show", "web", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert "/web" in out.stdout and "sleep 100" in out.stdout and "web.instance-0000._app.1" in out.stdout
    js = run_lichen("app", "show", "/web", "--json", env=env_for(marathon))
    assert js.returncode == 0, js.stderr
    app = marathon.apps["/web"]
    assert json.loads(js.stdout) == {"app": {**app, "tasks": marathon.tasks_of(app)}}


def test_app_show_unknown_app_prints_the_api_message(marathon: FakeMarathon) -> None:
    out = run_lichen("app", "show", "/nope", env=env_for(marathon))
    assert out.returncode == 1
    assert "App '/nope' does not exist" in out.stderr
    assert "Traceback" not in out.stderr


def test_app_versions_lists_versions(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "versions", "web", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert "2024-05-01T12:00:00.000Z" in out.stdout
    js = run_lichen("app", "versions", "web", "--json", env=env_for(marathon))
    assert json.loads(js.stdout) == {"versions": marathon.versions["/web"]}


def test_app_add_from_file_waits_for_its_deployment(marathon: FakeMarathon, tmp_path: Path) -> None:
    definition = tmp_path / "web.json"
    definition.write_text(json.dumps({"id": "/web", "cmd": "sleep 100", "instances": 2}))
    out = run_lichen("app", "add", str(definition), env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert "created app /web" in out.stdout
    assert "succeeded" in out.stderr
    assert marathon.apps["/web"]["tasksRunning"] == 2
    assert marathon.calls("POST", "/v2/apps")[0][1] == {"id": "/web", "cmd": "sleep 100", "instances": 2}
    assert marathon.calls("GET", "/v2/deployments"), "it polled the deployments"


def test_app_add_from_stdin_no_wait_json(marathon: FakeMarathon) -> None:
    out = run_lichen("app", "add", "-", "--no-wait", "--json", env=env_for(marathon),
                     input=json.dumps({"id": "web", "cmd": "sleep 1"}))
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["id"] == "/web" and len(body["deployments"]) == 1
    assert not marathon.calls("GET", "/v2/deployments"), "--no-wait does not wait"


def test_app_add_invalid_definition_prints_each_422_detail(marathon: FakeMarathon) -> None:
    out = run_lichen("app", "add", "-", env=env_for(marathon), input=json.dumps({"id": "web"}))
    assert out.returncode == 1
    assert "Object is not valid" in out.stderr
    assert "/: AppDefinition must either contain one of 'cmd' or 'args'" in out.stderr
    assert "Traceback" not in out.stderr


def test_app_add_file_that_is_not_json(marathon: FakeMarathon, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = run_lichen("app", "add", str(bad), env=env_for(marathon))
    assert out.returncode == 1
    assert "is not JSON" in out.stderr
    assert not marathon.calls("POST", "/v2/apps")


def test_app_add_duplicate_prints_conflict(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "add", "-", env=env_for(marathon), input=json.dumps({"id": "web", "cmd": "x"}))
    assert out.returncode == 1
    assert "An app with id [/web] already exists." in out.stderr


def test_app_update_sends_a_partial_put_with_json_values(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "update", "web", "instances=3", "cmd=sleep 10", 'env={"A":"b"}',
                     "user=nobody", "--no-wait", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    [(query, body)] = marathon.calls("PUT", "/v2/apps/web")
    assert query["partialUpdate"] == "true"
    assert body == {"instances": 3, "cmd": "sleep 10", "env": {"A": "b"}, "user": "nobody"}


def test_app_update_without_equals_is_a_usage_error(marathon: FakeMarathon) -> None:
    out = run_lichen("app", "update", "web", "instances", env=env_for(marathon))
    assert out.returncode == 2
    assert "not key=value" in out.stderr
    assert not marathon.requests


def test_app_update_422_shows_path_and_errors(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "update", "web", "instances=many", env=env_for(marathon))
    assert out.returncode == 1
    assert "Invalid JSON" in out.stderr and "/instances: error.expected.jsnumber" in out.stderr


def test_app_update_json_prints_the_deployment_result(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "update", "web", "mem=256", "--json", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert set(body) == {"deploymentId", "version"}
    assert marathon.apps["/web"]["mem"] == 256


def test_app_scale_waits_until_the_deployment_ends(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100", "instances": 1})
    out = run_lichen("app", "scale", "web", "4", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert marathon.calls("PUT", "/v2/apps/web")[0][1] == {"instances": 4}
    assert marathon.apps["/web"]["tasksRunning"] == 4
    assert "succeeded" in out.stderr


def test_app_scale_exits_1_when_the_deployment_fails(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100", "instances": 1})
    marathon.fail_deployments = True
    out = run_lichen("app", "scale", "web", "4", env=env_for(marathon))
    assert out.returncode == 1
    assert "failed or was cancelled" in out.stderr
    assert "Traceback" not in out.stderr


def test_app_scale_negative_is_a_usage_error(marathon: FakeMarathon) -> None:
    out = run_lichen("app", "scale", "web", "-1", env=env_for(marathon))
    assert out.returncode == 2


def test_app_restart_posts_restart_and_waits(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "restart", "web", "--force", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    [(query, _)] = marathon.calls("POST", "/v2/apps/web/restart")
    assert query == {"force": "true"}


def test_app_remove_waits_until_the_app_is_gone(marathon: FakeMarathon) -> None:
    marathon.add_app({"id": "web", "cmd": "sleep 100"})
    out = run_lichen("app", "remove", "web", env=env_for(marathon))
    assert out.returncode == 0, out.stderr
    assert "/web" not in marathon.apps
    assert "succeeded" in out.stderr


def test_app_remove_unknown_app_is_a_404_message(marathon: FakeMarathon) -> None:
    out = run_lichen("app", "remove", "ghost", env=env_for(marathon))
    assert out.returncode == 1
    assert "App '/ghost' does not exist" in out.stderr


def test_unreachable_marathon_is_one_clear_line() -> None:
    out = run_lichen("app", "list", env={"LICHEN_MARATHON": "127.0.0.1:1"})
    assert out.returncode == 1
    assert out.stderr.strip() == "cannot reach Marathon at http://127.0.0.1:1: connection refused"
