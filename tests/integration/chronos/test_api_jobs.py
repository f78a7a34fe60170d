"""The Chronos REST API over real HTTP, raw requests: jobs, search, summary, runs, errors.

Every route answers under both prefixes; each test runs under each.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.chronos.fake_service import ServedFake
from tests.integration.chronos.helpers import FAR, add, bad_request, call, job, prefix

__all__ = ["prefix"]  # the fixture


# ------------------------------------------------------------------ add, get, list


def test_post_iso8601_is_204_with_empty_body_and_job_is_listed(served: ServedFake, prefix: str) -> None:
    r = call(served, "POST", f"{prefix}/iso8601", job("a"), headers={"Content-Type": "application/json"})
    assert r.status_code == 204 and r.content == b""
    listed = call(served, "GET", f"{prefix}/jobs").json()
    assert [j["name"] for j in listed] == ["a"]
    assert listed[0]["schedule"] == FAR and "parents" not in listed[0]


def test_put_iso8601_upserts(served: ServedFake, prefix: str) -> None:
    assert call(served, "PUT", f"{prefix}/iso8601", job("a")).status_code == 204
    assert call(served, "PUT", f"{prefix}/iso8601", job("a", command="echo new")).status_code == 204
    got = call(served, "GET", f"{prefix}/job/a")
    assert got.status_code == 200 and got.json()["command"] == "echo new"


def test_job_json_accepted_whatever_the_content_type(served: ServedFake, prefix: str) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = call(served, "POST", f"{prefix}/iso8601", json.dumps(job("a")).encode(), headers=headers)
        assert r.status_code == 204, (ctype, r.text)


def test_dependency_post_and_put(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("p"))
    assert call(served, "POST", f"{prefix}/dependency", job("c", parents=["p"])).status_code == 204
    assert call(served, "PUT", f"{prefix}/dependency", job("c", parents=["p"], command="x")).status_code == 204
    got = call(served, "GET", f"{prefix}/job/c").json()
    assert got["parents"] == ["p"] and got["command"] == "x" and "schedule" not in got


def test_dependency_on_unknown_parent_is_400_and_nothing_saved(served: ServedFake, prefix: str) -> None:
    bad_request(call(served, "POST", f"{prefix}/dependency", job("c", parents=["nope"])))
    assert call(served, "GET", f"{prefix}/jobs").json() == []


def test_dependency_cycle_is_400(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    add(served, prefix, job("b", parents=["a"]))
    add(served, prefix, job("c", parents=["b"]))
    assert "cycle" in bad_request(call(served, "POST", f"{prefix}/dependency", job("a", parents=["c"])))


def test_get_unknown_job_is_400(served: ServedFake, prefix: str) -> None:
    assert "nope" in bad_request(call(served, "GET", f"{prefix}/job/nope"))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("raw", [b"{", b"", b"   ", b"\xff\xfe", b"nul"])
def test_bad_json_is_400_with_a_message(served: ServedFake, prefix: str, raw: bytes) -> None:
    bad_request(call(served, "POST", f"{prefix}/iso8601", raw))


@pytest.mark.parametrize("body", [[], 1, "x", None, True])
def test_a_body_that_is_not_an_object_is_400(served: ServedFake, prefix: str, body: Any) -> None:
    bad_request(call(served, "POST", f"{prefix}/iso8601", json.dumps(body)))


@pytest.mark.parametrize("fields", [
    {"name": "job with spaces"},
    {"name": ""},
    {"name": "a/b"},
    {"schedule": "R/PT1H"},
    {"schedule": "nonsense"},
    {"schedule": 5},
    {"retries": "many"},
    {"cpus": "lots"},
    {"parents": "a"},
    {"container": "docker"},
    {"environmentVariables": 3},
])
def test_invalid_jobs_are_400_never_500(served: ServedFake, prefix: str, fields: dict[str, Any]) -> None:
    bad_request(call(served, "POST", f"{prefix}/iso8601", {**job("x"), **fields}))
    assert call(served, "GET", f"{prefix}/jobs").json() == []


def test_job_without_name_is_400(served: ServedFake, prefix: str) -> None:
    bad_request(call(served, "POST", f"{prefix}/iso8601", {"command": "x", "schedule": FAR}))


def test_unknown_path_is_404_json(served: ServedFake) -> None:
    for path in ("/v1/scheduler/nope", "/scheduler/jobs/nope/x", "/nope", "/v2/apps"):
        r = call(served, "GET", path)
        assert r.status_code == 404
        body = r.json()
        assert body["status"] == "Not Found" and path in body["message"]


def test_wrong_method_is_405_json(served: ServedFake, prefix: str) -> None:
    r = call(served, "GET", f"{prefix}/iso8601")
    assert r.status_code == 405 and r.json()["status"] == "Method Not Allowed"
    assert "POST" in r.headers["Allow"]


# ------------------------------------------------------------------ run, delete, kill, success


def test_manual_run_is_204_and_passes_arguments(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    r = call(served, "PUT", f"{prefix}/job/a")
    assert r.status_code == 204 and r.content == b""
    assert call(served, "PUT", f"{prefix}/job/a", params={"arguments": "x y;z"}).status_code == 204
    runs = [c for c in served.service.calls if c[0] == "run_job"]
    assert runs == [("run_job", "a", ""), ("run_job", "a", "x y;z")]
    assert call(served, "GET", f"{prefix}/job/a").json()["successCount"] == 2


def test_unknown_job_verbs_are_400(served: ServedFake, prefix: str) -> None:
    bad_request(call(served, "PUT", f"{prefix}/job/nope"))
    bad_request(call(served, "DELETE", f"{prefix}/job/nope"))
    bad_request(call(served, "DELETE", f"{prefix}/task/kill/nope"))
    bad_request(call(served, "GET", f"{prefix}/job/stat/nope"))


def test_delete_is_204_and_second_delete_is_400(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    r = call(served, "DELETE", f"{prefix}/job/a")
    assert r.status_code == 204 and r.content == b""
    assert call(served, "GET", f"{prefix}/jobs").json() == []
    bad_request(call(served, "DELETE", f"{prefix}/job/a"))


def test_kill_tasks_is_204(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    r = call(served, "DELETE", f"{prefix}/task/kill/a")
    assert r.status_code == 204 and r.content == b""
    assert ("kill_tasks", "a") in served.service.calls


def test_mark_success_answers_text(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    r = call(served, "PUT", f"{prefix}/job/success/a")
    assert r.status_code == 200 and r.text == "marked job a as successful: true"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert call(served, "GET", f"{prefix}/job/a").json()["successCount"] == 1
    r = call(served, "PUT", f"{prefix}/job/success/nope")
    assert r.status_code == 200 and r.text == "marked job nope as successful: false"


def test_progress_for_a_data_job(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("d", dataProcessingJobType=True))
    add(served, prefix, job("n"))
    tid = "ct:1428515194358:0:d:"
    r = call(served, "POST", f"{prefix}/job/d/task/{tid}/progress", {"numAdditionalElementsProcessed": 5})
    assert r.status_code == 204 and r.content == b""
    assert ("progress", "d", tid, "5") in served.service.calls
    url = f"{prefix}/job/n/task/ct:1:0:n:/progress"
    assert "data processing" in bad_request(call(served, "POST", url, {"numAdditionalElementsProcessed": 5}))
    url = f"{prefix}/job/d/task/{tid}/progress"
    bodies: list[Any] = [{"numAdditionalElementsProcessed": -1}, {"numAdditionalElementsProcessed": "5"}, {}, []]
    for body in bodies:
        bad_request(call(served, "POST", url, body))
    bad_request(call(served, "POST", f"{prefix}/job/nope/task/{tid}/progress",
                     {"numAdditionalElementsProcessed": 1}))


def test_async_task_callback(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a", **{"async": True}))
    tid = "ct:1428515194358:0:a:"
    r = call(served, "PUT", f"{prefix}/task/{tid}", {"statusCode": 0})
    assert r.status_code == 204 and r.content == b""
    assert call(served, "PUT", f"{prefix}/task/{tid}", {"statusCode": 1}).status_code == 204
    assert [c for c in served.service.calls if c[0] == "task_finished"] == [
        ("task_finished", tid, "0"), ("task_finished", tid, "1")]
    bad_request(call(served, "PUT", f"{prefix}/task/{tid}", {"statusCode": "0"}))
    bad_request(call(served, "PUT", f"{prefix}/task/{tid}", {}))
    bad_request(call(served, "PUT", f"{prefix}/task/ct:1:0:nope:", {"statusCode": 0}))
    bad_request(call(served, "PUT", f"{prefix}/task/garbage", {"statusCode": 0}))


def test_delete_task_all_is_204(served: ServedFake, prefix: str) -> None:
    r = call(served, "DELETE", f"{prefix}/task/all")
    assert r.status_code == 204 and r.content == b""


# ------------------------------------------------------------------ search, summary


def test_search_filters_and_pages(served: ServedFake, prefix: str) -> None:
    for i in range(12):
        add(served, prefix, job(f"job{i:02d}", command="sleep 1"))
    add(served, prefix, job("myjob", command="echo hi"))

    def names(**params: Any) -> list[str]:
        r = call(served, "GET", f"{prefix}/jobs/search", params=params)
        assert r.status_code == 200
        return [j["name"] for j in r.json()]

    assert names(name="MYJ") == ["myjob"]
    assert names(command="ECHO") == ["myjob"]
    assert len(names(name="job")) == 10                      # the default limit
    assert names(name="job", limit=3, offset=11) == ["job11", "myjob"]
    assert names(name="job", command="sleep", limit=100) == [f"job{i:02d}" for i in range(12)]
    assert names(name="job0", command="echo") == []
    assert names(name="job0", command="echo", any="myjob") == ["myjob"]   # `any` rescues
    assert names(name="zzz") == []
    assert len(names()) == 10 and len(names(limit=100)) == 13
    assert names(limit=0) == []


def test_search_rejects_bad_paging(served: ServedFake, prefix: str) -> None:
    bad_request(call(served, "GET", f"{prefix}/jobs/search", params={"limit": "ten"}))
    bad_request(call(served, "GET", f"{prefix}/jobs/search", params={"offset": "-1"}))


def test_summary(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    add(served, prefix, job("b", parents=["a"]))
    add(served, prefix, job("c", disabled=True))
    served.service.failing.add("c")
    call(served, "PUT", f"{prefix}/job/a")
    served.service.states["b"] = "2 running"
    r = call(served, "GET", f"{prefix}/jobs/summary")
    assert r.status_code == 200
    assert r.json() == {"jobs": [
        {"name": "a", "status": "success", "state": "idle", "schedule": FAR, "parents": [], "disabled": False},
        {"name": "b", "status": "fresh", "state": "2 running", "schedule": "", "parents": ["a"],
         "disabled": False},
        {"name": "c", "status": "fresh", "state": "idle", "schedule": FAR, "parents": [], "disabled": True},
    ]}


def test_url_encoded_names(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a.b-c_d"))
    assert call(served, "GET", f"{prefix}/job/a.b-c_d").status_code == 200
    bad_request(call(served, "DELETE", f"{prefix}/job/job%20with%20spaces"))


# ------------------------------------------------------------------ leader, ping


def test_leader_under_every_prefix(served: ServedFake) -> None:
    for path in ("/leader", "/v1/scheduler/leader", "/scheduler/leader"):
        r = call(served, "GET", path)
        assert r.status_code == 200 and r.json() == {"leader": "127.0.0.1:4400"}


def test_ping(served: ServedFake) -> None:
    r = call(served, "GET", "/ping")
    assert r.status_code == 200 and r.text == "pong"
    assert r.headers["Content-Type"].startswith("text/plain")
