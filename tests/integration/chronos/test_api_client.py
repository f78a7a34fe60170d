"""chronos-python 1.2.1, unchanged, against the Chronos API over the in-memory service.

The client turns every failed call into `ChronosAPIError('No remaining Chronos servers to
try')` after trying each server, so a 400 shows up as that error; what the server said is
checked in the raw-HTTP tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import chronos
import pytest

from tests.integration.chronos.fake_service import ServedFake

FAR = "R/2099-01-01T00:00:00Z/P1D"

EMPTY_STAT = {
    "histogram": {"median": 0.0, "98thPercentile": 0.0, "75thPercentile": 0.0, "95thPercentile": 0.0,
                  "99thPercentile": 0.0, "count": 0, "mean": 0.0},
    "taskStatHistory": [],
}


@pytest.fixture(autouse=True)
def _restore_client_fields() -> Iterator[None]:
    # In legacy mode the client appends "async" to a list shared by every client.
    saved = list(chronos.ChronosJob.fields)
    yield
    chronos.ChronosJob.fields[:] = saved


@pytest.fixture
def client(served: ServedFake) -> chronos.ChronosClient:
    return chronos.connect(served.address)


@pytest.fixture
def legacy(served: ServedFake) -> chronos.ChronosClient:
    return chronos.connect(served.address, scheduler_api_version=None)


def _job(name: str = "myjob", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "command": "echo 1", "owner": "", "disabled": False}
    if "parents" not in fields:
        out["schedule"] = "R0/2014-01-01T00:00:00Z/PT60M"
    out.update(fields)
    return out


def _listed(client: chronos.ChronosClient, name: str) -> dict[str, Any] | None:
    return next((j for j in client.list() if j["name"] == name), None)


def test_add_and_list_round_trip_with_defaults(client: chronos.ChronosClient) -> None:
    assert client.add(_job()) is None
    got = _listed(client, "myjob")
    assert got is not None
    assert got["retries"] == 2 and got["cpus"] == 0.1 and got["mem"] == 128 and got["disk"] == 256
    assert got["shell"] is True and got["epsilon"] == "PT60S" and got["async"] is False
    assert got["successCount"] == 0 and got["lastSuccess"] == "" and got["runAsUser"]
    assert "parents" not in got


def test_update_replaces_the_command(client: chronos.ChronosClient) -> None:
    client.add(_job())
    assert client.update(_job(command="echo 2")) is None
    got = _listed(client, "myjob")
    assert got is not None and got["command"] == "echo 2"


def test_listed_values_keep_the_posted_types(client: chronos.ChronosClient) -> None:
    # chronos-sync-jobs.py updates a job when any local key differs from the listed one.
    posted = _job(retries=3, cpus=0.5, mem=64, disk=100, description="d", ownerName="o",
                  environmentVariables=[{"name": "A", "value": "1"}], arguments=[], shell=True)
    client.add(posted)
    got = _listed(client, "myjob")
    assert got is not None
    assert {k: got[k] for k in posted} == posted


def test_legacy_mode_posts_and_puts_under_scheduler(served: ServedFake, legacy: chronos.ChronosClient) -> None:
    legacy_job = {**_job(), "async": False}
    assert legacy.add(legacy_job) is None
    assert legacy.update({**legacy_job, "command": "echo 3"}) is None
    got = _listed(legacy, "myjob")
    assert got is not None and got["command"] == "echo 3"
    assert [c[0] for c in served.service.calls] == ["put_job", "put_job"]


def test_legacy_mode_runs_stats_and_deletes(legacy: chronos.ChronosClient) -> None:
    legacy.add({**_job("a", schedule=FAR), "async": False})
    assert legacy.run("a") is None
    assert legacy.job_stat("a")["histogram"]["count"] == 1
    assert legacy.scheduler_stat_median() == [{"jobNameLabel": "a", "time": 1.5}]
    assert legacy.delete("a") is None
    assert legacy.list() == []


def test_job_with_spaces_is_rejected_and_not_listed(client: chronos.ChronosClient) -> None:
    with pytest.raises(chronos.ChronosAPIError):
        client.add(_job("job with spaces"))
    assert _listed(client, "job with spaces") is None


def test_missing_owner_is_caught_by_the_client(served: ServedFake, client: chronos.ChronosClient) -> None:
    body = _job()
    del body["owner"]
    with pytest.raises(chronos.MissingFieldError):
        client.add(body)
    assert served.service.calls == []


def test_schedule_and_parents_together_is_caught_by_the_client(client: chronos.ChronosClient) -> None:
    with pytest.raises(chronos.OneOfViolationError):
        client.add(_job(parents=["x"], schedule=FAR))


def test_unknown_parent_raises(client: chronos.ChronosClient) -> None:
    with pytest.raises(chronos.ChronosAPIError):
        client.add(_job("child", parents=["nope"]))
    assert client.list() == []


def test_run_and_delete_of_unknown_jobs_raise(client: chronos.ChronosClient) -> None:
    with pytest.raises(chronos.ChronosAPIError):
        client.run("nope")
    with pytest.raises(chronos.ChronosAPIError):
        client.delete("nope")
    with pytest.raises(chronos.ChronosAPIError):
        client.delete_tasks("nope")
    with pytest.raises(chronos.ChronosAPIError):
        client.job_stat("nope")


def test_fresh_job_stats_then_a_manual_run(client: chronos.ChronosClient) -> None:
    client.add(_job())
    assert client.job_stat("myjob") == EMPTY_STAT
    for stat in (client.scheduler_stat_99th, client.scheduler_stat_98th, client.scheduler_stat_95th,
                 client.scheduler_stat_75th, client.scheduler_stat_median, client.scheduler_stat_mean):
        assert stat() == [{"jobNameLabel": "myjob", "time": 0.0}]
    assert client.run("myjob") is None
    got = _listed(client, "myjob")
    assert got is not None and got["successCount"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got["lastSuccess"])
    assert client.job_stat("myjob")["histogram"]["count"] == 1
    metrics = client.metrics()
    assert isinstance(metrics, dict) and "version" in metrics and "gauges" in metrics


def test_dependencies_graph_and_delete_reparents(client: chronos.ChronosClient) -> None:
    client.add(_job("A", schedule=FAR))
    client.add(_job("B", schedule=FAR))
    client.add(_job("C", parents=["A", "B"]))
    client.run("A")
    lines = client.scheduler_graph().splitlines()
    assert "node,A,success,idle" in lines and "link,A,C" in lines and "link,B,C" in lines
    client.delete("B")
    got = _listed(client, "C")
    assert got is not None and got["parents"] == ["A"]


def test_delete_tasks_then_delete(client: chronos.ChronosClient) -> None:
    client.add(_job("S", schedule=FAR, command="sleep 600"))
    assert client.delete_tasks("S") is None
    assert client.delete("S") is None
    assert _listed(client, "S") is None
    with pytest.raises(chronos.ChronosAPIError):
        client.delete("S")


def test_search(client: chronos.ChronosClient) -> None:
    for i in range(12):
        client.add(_job(f"job{i:02d}", command="sleep 1"))
    client.add(_job())
    assert [j["name"] for j in client.search(name="MYJ")] == ["myjob"]
    assert client.search(command="echo")
    assert len(client.search(name="job")) == 10


def test_a_refused_server_is_skipped(served: ServedFake) -> None:
    client = chronos.connect(["127.0.0.1:1", served.address])
    client.add(_job())
    assert _listed(client, "myjob") is not None
