"""/v2/apps and /v2/tasks over real HTTP against the in-memory service: status codes,
headers and exact bodies."""

from __future__ import annotations

from typing import Any

import requests

from tests.integration.marathon.fake_service import ServedFake

JSON = {"Content-Type": "application/json"}


def _create(fake: ServedFake, app_id: str = "/web", **fields: Any) -> requests.Response:
    body = {"id": app_id, "cmd": "sleep 100", "instances": 1, **fields}
    return requests.post(fake.url + "/v2/apps", json=body, timeout=5)


def test_post_app_answers_201_with_location_and_deployment_header(served: ServedFake) -> None:
    resp = _create(served, "web", instances=2)
    assert resp.status_code == 201
    app = resp.json()
    assert app["id"] == "/web"
    assert resp.headers["Location"].endswith("/v2/apps/web")
    assert app["deployments"] == [{"id": resp.headers["Marathon-Deployment-Id"]}]
    assert app["tasksRunning"] == 0 and app["tasks"] == []
    assert app["labels"] == {}


def test_post_duplicate_app_is_409(served: ServedFake) -> None:
    _create(served)
    resp = _create(served)
    assert resp.status_code == 409
    assert resp.json() == {"message": "An app with id [/web] already exists."}


def test_post_bad_id_is_422_at_id(served: ServedFake) -> None:
    resp = requests.post(served.url + "/v2/apps", json={"id": "Bad_Id", "cmd": "x"}, timeout=5)
    assert resp.status_code == 422
    body = resp.json()
    assert body["message"] == "Object is not valid"
    assert [d["path"] for d in body["details"]] == ["/id"]


def test_body_that_is_not_json_is_400_invalid_json(served: ServedFake) -> None:
    resp = requests.post(served.url + "/v2/apps", data=b"{nope", headers=JSON, timeout=5)
    assert resp.status_code == 400
    body = resp.json()
    assert body["message"] == "Invalid JSON"
    assert isinstance(body["details"], str) and body["details"]


def test_unknown_route_is_404_uri_not_found(served: ServedFake) -> None:
    resp = requests.get(served.url + "/v2/nothing", timeout=5)
    assert resp.status_code == 404
    assert resp.json() == {"message": "URI not found"}


def test_get_missing_app_is_404_with_marathon_message(served: ServedFake) -> None:
    resp = requests.get(served.url + "/v2/apps/nope", headers=JSON, timeout=5)
    assert resp.status_code == 404
    assert resp.json() == {"message": "App '/nope' does not exist"}


def test_get_app_embeds_tasks_counts_and_deployments_by_default(served: ServedFake) -> None:
    _create(served, instances=2)
    app = requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]
    assert len(app["tasks"]) == 2
    assert app["tasksRunning"] == 2 and app["deployments"] == []
    assert app["tasks"][0]["appId"] == "/web"


def test_list_apps_embeds_tasks_only_when_asked(served: ServedFake) -> None:
    _create(served)
    plain = requests.get(served.url + "/v2/apps", timeout=5).json()["apps"][0]
    assert "tasks" not in plain and plain["tasksRunning"] == 1 and plain["deployments"] == []
    for embed in ("apps.tasks", "app.tasks", "tasks"):
        apps = requests.get(served.url + "/v2/apps", params={"embed": embed}, timeout=5).json()
        assert len(apps["apps"][0]["tasks"]) == 1


def test_list_apps_filters_by_id_cmd_and_label(served: ServedFake) -> None:
    _create(served, "/a/web", labels={"tier": "front", "x": "1"})
    _create(served, "/a/db", cmd="postgres", labels={"tier": "back"})

    def ids(**params: str) -> list[str]:
        apps = requests.get(served.url + "/v2/apps", params=params, timeout=5).json()["apps"]
        return [a["id"] for a in apps]

    assert ids(id="WEB") == ["/a/web"]
    assert ids(cmd="postgres") == ["/a/db"]
    assert ids(label="tier==front") == ["/a/web"]
    assert ids(label="tier!=front") == ["/a/db"]
    assert ids(label="tier in (front,back)") == ["/a/db", "/a/web"]
    assert ids(label="tier notin (front)") == ["/a/db"]
    assert ids(label="x") == ["/a/web"]
    assert ids(label="tier in (front,back),x") == ["/a/web"]


def test_group_wildcard_lists_apps_below(served: ServedFake) -> None:
    _create(served, "/g/a")
    _create(served, "/g/sub/b")
    _create(served, "/other")
    resp = requests.get(served.url + "/v2/apps/g/*", timeout=5)
    assert sorted(a["id"] for a in resp.json()["*"]) == ["/g/a", "/g/sub/b"]


def test_put_with_extra_slashes_is_a_partial_merge(served: ServedFake) -> None:
    _create(served, instances=1, labels={"k": "v"})
    resp = requests.put(served.url + "/v2/apps//web", json={"instances": 3}, timeout=5)
    assert resp.status_code == 200
    assert set(resp.json()) == {"deploymentId", "version"}
    assert resp.headers["Marathon-Deployment-Id"] == resp.json()["deploymentId"]
    app = requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]
    assert app["instances"] == 3 and app["labels"] == {"k": "v"} and app["cmd"] == "sleep 100"


def test_put_creates_a_missing_app_with_201(served: ServedFake) -> None:
    resp = requests.put(served.url + "/v2/apps/new", json={"cmd": "sleep 1"}, timeout=5)
    assert resp.status_code == 201
    assert "deploymentId" in resp.json()
    assert requests.get(served.url + "/v2/apps/new", timeout=5).json()["app"]["id"] == "/new"


def test_put_version_rolls_back(served: ServedFake) -> None:
    _create(served)
    first = requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["version"]
    requests.put(served.url + "/v2/apps/web", json={"cmd": "sleep 200"}, timeout=5)
    resp = requests.put(served.url + "/v2/apps/web", json={"version": first}, timeout=5)
    assert resp.status_code == 200
    assert requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["cmd"] == "sleep 100"
    missing = requests.put(
        served.url + "/v2/apps/web", json={"version": "1999-01-01T00:00:00.000Z"}, timeout=5
    )
    assert missing.status_code == 404
    assert missing.json() == {
        "message": "App '/web' does not exist in version 1999-01-01T00:00:00.000Z"
    }


def test_rollback_with_other_fields_is_422(served: ServedFake) -> None:
    _create(served)
    resp = requests.put(served.url + "/v2/apps/web", json={"version": "v", "cmd": "x"}, timeout=5)
    assert resp.status_code == 422


def test_patch_updates_but_never_creates(served: ServedFake) -> None:
    assert (
        requests.patch(served.url + "/v2/apps/web", json={"instances": 2}, timeout=5).status_code
        == 404
    )
    _create(served)
    assert (
        requests.patch(served.url + "/v2/apps/web", json={"instances": 2}, timeout=5).status_code
        == 200
    )
    assert requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["instances"] == 2


def test_put_and_patch_many_apps(served: ServedFake) -> None:
    _create(served, "/a")
    resp = requests.put(
        served.url + "/v2/apps",
        json=[{"id": "/a", "instances": 2}, {"id": "/b", "cmd": "x"}],
        timeout=5,
    )
    assert resp.status_code == 200 and "deploymentId" in resp.json()
    assert requests.get(served.url + "/v2/apps/a", timeout=5).json()["app"]["instances"] == 2
    assert (
        requests.patch(
            served.url + "/v2/apps", json=[{"id": "/c", "instances": 1}], timeout=5
        ).status_code
        == 404
    )


def test_delete_app_and_delete_missing(served: ServedFake) -> None:
    _create(served)
    resp = requests.delete(served.url + "/v2/apps/web", headers=JSON, timeout=5)
    assert resp.status_code == 200 and "deploymentId" in resp.json()
    assert requests.get(served.url + "/v2/apps/web", timeout=5).status_code == 404
    again = requests.delete(served.url + "/v2/apps/web", timeout=5)
    assert again.status_code == 404 and again.json() == {"message": "App '/web' does not exist"}


def test_restart_is_a_deployment(served: ServedFake) -> None:
    _create(served)
    before = requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["tasks"][0]["id"]
    resp = requests.post(served.url + "/v2/apps/web/restart", timeout=5)
    assert resp.status_code == 200 and resp.headers["Marathon-Deployment-Id"]
    after = requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["tasks"][0]["id"]
    assert after != before


def test_locked_app_is_409_with_deployments_unless_forced(served: ServedFake) -> None:
    served.service.hold = True
    created = _create(served)
    deployment = created.headers["Marathon-Deployment-Id"]
    resp = requests.put(served.url + "/v2/apps/web", json={"instances": 2}, timeout=5)
    assert resp.status_code == 409
    assert resp.json() == {
        "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
        f"View details at '/v2/deployments/{deployment}'.",
        "deployments": [{"id": deployment}],
    }
    forced = requests.put(
        served.url + "/v2/apps/web", params={"force": "True"}, json={"instances": 2}, timeout=5
    )
    assert forced.status_code == 200


def test_nested_app_ids_and_suffixes(served: ServedFake) -> None:
    _create(served, "/x/y/web")
    assert (
        requests.get(served.url + "/v2/apps/x/y/web", timeout=5).json()["app"]["id"] == "/x/y/web"
    )
    tasks = requests.get(served.url + "/v2/apps/x/y/web/tasks", timeout=5).json()["tasks"]
    assert len(tasks) == 1
    versions = requests.get(served.url + "/v2/apps/x/y/web/versions", timeout=5).json()["versions"]
    assert len(versions) == 1
    one = requests.get(served.url + f"/v2/apps/x/y/web/versions/{versions[0]}", timeout=5)
    assert one.json()["id"] == "/x/y/web" and "app" not in one.json()
    assert requests.get(served.url + "/v2/apps/x/y/web/versions/nope", timeout=5).status_code == 404


def test_unsupported_method_is_405_json(served: ServedFake) -> None:
    _create(served)
    resp = requests.get(served.url + "/v2/apps/web/restart", timeout=5)
    assert resp.status_code == 405
    assert "message" in resp.json()


def test_kill_app_tasks_with_host_scale_and_wipe(served: ServedFake) -> None:
    _create(served, instances=2)
    both = requests.delete(
        served.url + "/v2/apps/web/tasks", params={"scale": "true", "wipe": "true"}, timeout=5
    )
    assert both.status_code == 400 and "message" in both.json()
    none = requests.delete(
        served.url + "/v2/apps/web/tasks", params={"host": "elsewhere"}, timeout=5
    )
    assert none.json() == {"tasks": []}
    killed = requests.delete(served.url + "/v2/apps/web/tasks", timeout=5).json()["tasks"]
    assert len(killed) == 2
    scaled = requests.delete(served.url + "/v2/apps/web/tasks", params={"scale": "True"}, timeout=5)
    assert set(scaled.json()) == {"deploymentId", "version"}
    assert requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["instances"] == 0


def test_kill_one_task(served: ServedFake) -> None:
    _create(served, instances=2)
    tasks = requests.get(served.url + "/v2/apps/web/tasks", timeout=5).json()["tasks"]
    resp = requests.delete(served.url + f"/v2/apps/web/tasks/{tasks[0]['id']}", timeout=5)
    assert resp.json()["task"]["id"] == tasks[0]["id"]
    missing = requests.delete(served.url + "/v2/apps/web/tasks/web.instance-x._app.1", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"message": "Task 'web.instance-x._app.1' does not exist"}
    scaled = requests.delete(
        served.url + f"/v2/apps/web/tasks/{tasks[1]['id']}", params={"scale": "true"}, timeout=5
    )
    assert "deploymentId" in scaled.json()
    assert requests.get(served.url + "/v2/apps/web", timeout=5).json()["app"]["instances"] == 1


def test_v2_tasks_json_status_filter_and_text(served: ServedFake) -> None:
    _create(served, "/a/web", instances=2, portDefinitions=[{"port": 0}, {"port": 0}])
    _create(served, "/noports", portDefinitions=[])
    tasks = requests.get(served.url + "/v2/tasks", timeout=5).json()["tasks"]
    assert len(tasks) == 3
    staging = requests.get(served.url + "/v2/tasks", params={"status": "staging"}, timeout=5).json()
    assert staging == {"tasks": []}
    running = requests.get(
        served.url + "/v2/tasks", params={"status[]": "running"}, timeout=5
    ).json()
    assert len(running["tasks"]) == 3
    text = requests.get(served.url + "/v2/tasks", headers={"Accept": "text/plain"}, timeout=5)
    assert text.headers["Content-Type"].startswith("text/plain")
    lines = text.text.splitlines()
    assert len(lines) == 3
    first = lines[0].split("\t")
    assert first[0] == "a_web" and 10000 <= int(first[1]) <= 20000 and first[2].startswith("h1:")
    assert lines[2].startswith("noports\t \th1\t")


def test_tasks_delete_by_ids(served: ServedFake) -> None:
    _create(served, instances=2)
    tasks = requests.get(served.url + "/v2/tasks", timeout=5).json()["tasks"]
    bad = requests.post(served.url + "/v2/tasks/delete", json={"ids": ["nodots"]}, timeout=5)
    assert bad.status_code == 400
    resp = requests.post(
        served.url + "/v2/tasks/delete",
        params={"scale": "False"},
        json={"ids": [tasks[0]["id"]]},
        timeout=5,
    )
    assert resp.status_code == 200 and [t["id"] for t in resp.json()["tasks"]] == [tasks[0]["id"]]
    scaled = requests.post(
        served.url + "/v2/tasks/delete",
        params={"scale": "true"},
        json={"ids": [tasks[1]["id"]]},
        timeout=5,
    )
    assert "deploymentId" in scaled.json()


def test_wrong_json_type_is_422_not_500(served: ServedFake) -> None:
    resp = requests.post(
        served.url + "/v2/apps", json={"id": "/x", "cmd": "x", "instances": "many"}, timeout=5
    )
    assert resp.status_code == 422
    assert resp.json()["details"][0]["path"] == "/instances"
    for body in ([], "text", 3, None):
        resp = requests.post(served.url + "/v2/apps", json=body, timeout=5)
        assert 400 <= resp.status_code < 500
    assert requests.put(served.url + "/v2/apps", json={"id": "x"}, timeout=5).status_code == 422
    assert requests.post(served.url + "/v2/tasks/delete", json=[1], timeout=5).status_code == 400
