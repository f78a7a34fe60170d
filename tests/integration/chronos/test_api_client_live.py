"""chronos-python 1.2.1, unchanged, against a real `lichen chronos` on a real master and
agent: the API over the real service (the runs here really run)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chronos
import pytest
import requests

from tests.support import Daemon, wait_for
from tests.support.daemons import start_daemon

FAR = "R/2099-01-01T00:00:00Z/P1D"

EMPTY_STAT = {
    "histogram": {"median": 0.0, "98thPercentile": 0.0, "75thPercentile": 0.0, "95thPercentile": 0.0,
                  "99thPercentile": 0.0, "count": 0, "mean": 0.0},
    "taskStatHistory": [],
}


@pytest.fixture(autouse=True)
def _restore_client_fields() -> Iterator[None]:
    saved = list(chronos.ChronosJob.fields)   # legacy mode appends "async" to this shared list
    yield
    chronos.ChronosJob.fields[:] = saved


@pytest.fixture
def live(tmp_path: Path, start_master: Callable[..., Daemon], start_agent: Callable[..., Daemon],
         daemons: Any) -> Daemon:
    master = start_master(tmp_path, "--allocation-interval", "0.1")
    start_agent(master.addr, tmp_path)
    wait_for(lambda: len(requests.get(master.url + "/master/slaves", timeout=5).json()["slaves"]) == 1, 20,
             "agent")
    work = tmp_path / "chronos"
    daemon: Daemon = daemons.add(start_daemon("chronos", work, [
        "--master", master.addr, "--port", "0", "--work-dir", str(work), "--failure-retry", "1"]))
    return daemon


def _job(name: str = "myjob", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "command": "true", "owner": "", "disabled": False}
    if "parents" not in fields:
        out["schedule"] = FAR
    out.update(fields)
    return out


def _listed(client: chronos.ChronosClient, name: str) -> dict[str, Any]:
    return next(j for j in client.list() if j["name"] == name)


def test_round_trip_validation_and_legacy_mode(live: Daemon) -> None:
    client = chronos.connect(live.addr)
    assert client.add(_job(schedule="R0/2014-01-01T00:00:00Z/PT60M", command="echo 1")) is None
    got = _listed(client, "myjob")
    assert (got["retries"], got["cpus"], got["mem"], got["disk"]) == (2, 0.1, 128, 256)
    assert got["shell"] is True and got["epsilon"] == "PT60S" and got["async"] is False
    assert got["successCount"] == 0 and got["lastSuccess"] == "" and got["runAsUser"]
    assert "parents" not in got
    client.update(_job(schedule="R0/2014-01-01T00:00:00Z/PT60M", command="echo 2"))
    assert _listed(client, "myjob")["command"] == "echo 2"
    with pytest.raises(chronos.ChronosAPIError):
        client.add(_job("job with spaces"))
    with pytest.raises(chronos.ChronosAPIError):
        client.add(_job("orphan", parents=["nope"]))
    for verb in (client.run, client.delete, client.delete_tasks, client.job_stat):
        with pytest.raises(chronos.ChronosAPIError):
            verb("nope")
    assert sorted(j["name"] for j in client.list()) == ["myjob"]
    legacy = chronos.connect(live.addr, scheduler_api_version=None)
    old = {**_job("old"), "async": False}
    assert legacy.add(old) is None
    assert legacy.update({**old, "command": "echo old"}) is None
    assert _listed(legacy, "old")["command"] == "echo old"


def test_manual_run_stats_and_metrics(live: Daemon) -> None:
    client = chronos.connect(live.addr)
    client.add(_job())
    assert client.job_stat("myjob") == EMPTY_STAT
    assert client.scheduler_stat_99th() == [{"jobNameLabel": "myjob", "time": 0.0}]
    assert client.scheduler_stat_mean() == [{"jobNameLabel": "myjob", "time": 0.0}]
    client.run("myjob")
    wait_for(lambda: _listed(client, "myjob")["successCount"] == 1, 30, "a successful manual run")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", _listed(client, "myjob")["lastSuccess"])
    stat = client.job_stat("myjob")
    assert stat["histogram"]["count"] == 1
    assert re.fullmatch(r"ct:\d+:0:myjob:", stat["taskStatHistory"][0]["taskId"])
    assert stat["taskStatHistory"][0]["status"] == "Success"
    metrics = client.metrics()
    assert "version" in metrics and "gauges" in metrics


def test_dependencies_graph_search_and_delete(live: Daemon) -> None:
    client = chronos.connect(live.addr)
    client.add(_job("A"))
    client.add(_job("B"))
    client.add(_job("C", parents=["A", "B"]))
    client.run("A")
    wait_for(lambda: "node,A,success,idle" in client.scheduler_graph().splitlines(), 30, "A succeeded")
    lines = client.scheduler_graph().splitlines()
    assert "link,A,C" in lines and "link,B,C" in lines
    assert [j["name"] for j in client.search(name="b")] == ["B"]
    client.delete_tasks("A")
    client.delete("B")
    assert _listed(client, "C")["parents"] == ["A"]
    with pytest.raises(chronos.ChronosAPIError):
        client.delete("B")


def test_raw_endpoints_over_the_real_service(live: Daemon) -> None:
    client = chronos.connect(live.addr)
    client.add(_job("A"))
    client.add(_job("C", parents=["A"]))
    for p in ("/v1/scheduler", "/scheduler"):
        r = requests.put(f"{live.url}{p}/job/success/A", timeout=5)
        assert r.status_code == 200 and r.text == "marked job A as successful: true"
        r = requests.post(f"{live.url}{p}/job/A/task/ct:1:0:A:/progress",
                          json={"numAdditionalElementsProcessed": 1}, timeout=5)
        assert r.status_code == 400 and r.json()["status"] == "Bad Request"
        r = requests.put(f"{live.url}{p}/task/ct:1:0:nope:", json={"statusCode": 0}, timeout=5)
        assert r.status_code == 400
        assert requests.delete(f"{live.url}{p}/task/all", timeout=5).status_code == 204
        summary = requests.get(f"{live.url}{p}/jobs/summary", timeout=5).json()["jobs"]
        assert (summary[0]["name"], summary[0]["status"]) == ("A", "success")
        dot = requests.get(f"{live.url}{p}/graph/dot", timeout=5).text
        assert dot.startswith("digraph G {") and "->" in dot
    r = requests.get(f"{live.url}/v1/scheduler/nope", timeout=5)
    assert r.status_code == 404 and r.json()["status"] == "Not Found"
    assert requests.get(f"{live.url}/leader", timeout=5).json() == {"leader": live.addr}
    assert requests.get(f"{live.url}/ping", timeout=5).text == "pong"
