"""The Chronos REST API over real HTTP, raw requests: job stats, percentiles, graphs, metrics."""

from __future__ import annotations

import re

import pytest

from tests.integration.chronos.fake_service import ServedFake
from tests.integration.chronos.helpers import add, bad_request, call, job, prefix

EMPTY_STAT = {
    "histogram": {"median": 0.0, "98thPercentile": 0.0, "75thPercentile": 0.0, "95thPercentile": 0.0,
                  "99thPercentile": 0.0, "count": 0, "mean": 0.0},
    "taskStatHistory": [],
}

__all__ = ["prefix"]  # the fixture

PCTS = ["99thPercentile", "98thPercentile", "95thPercentile", "75thPercentile", "median", "mean"]


def test_job_that_never_ran_has_exactly_the_empty_stat(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    r = call(served, "GET", f"{prefix}/job/stat/a")
    assert r.status_code == 200 and r.json() == EMPTY_STAT


def test_job_stat_after_runs(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    for seconds in (1.0, 2.0, 3.0, 70.0):
        served.service.durations["a"] = seconds
        assert call(served, "PUT", f"{prefix}/job/a").status_code == 204
    stat = call(served, "GET", f"{prefix}/job/stat/a").json()
    h = stat["histogram"]
    assert h["count"] == 4
    assert h["median"] == pytest.approx(2500.0)
    assert h["mean"] == pytest.approx(19000.0)
    assert h["99thPercentile"] == pytest.approx(70000.0)
    assert h["75thPercentile"] <= h["95thPercentile"] <= h["98thPercentile"] <= h["99thPercentile"]
    history = stat["taskStatHistory"]
    assert len(history) == 4
    newest = history[0]
    assert re.fullmatch(r"ct:\d+:0:a:", newest["taskId"])
    assert newest["jobName"] == "a" and newest["slaveId"] == "agent-1" and newest["status"] == "Success"
    assert re.fullmatch(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d", newest["startTime"])
    assert re.fullmatch(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d", newest["endTime"])
    assert newest["duration"] == "1m10s" and history[-1]["duration"] == "0m1s"


def test_failed_runs_are_listed_but_not_timed(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("f"))
    served.service.failing.add("f")
    call(served, "PUT", f"{prefix}/job/f")
    stat = call(served, "GET", f"{prefix}/job/stat/f").json()
    assert stat["histogram"]["count"] == 0
    assert [t["status"] for t in stat["taskStatHistory"]] == ["Fail"]


@pytest.mark.parametrize("pct", PCTS)
def test_stats_lists_every_job_largest_first(served: ServedFake, prefix: str, pct: str) -> None:
    for name in ("fresh", "quick", "slow"):
        add(served, prefix, job(name))
    served.service.durations.update(quick=2.0, slow=30.0)
    call(served, "PUT", f"{prefix}/job/quick")
    call(served, "PUT", f"{prefix}/job/slow")
    r = call(served, "GET", f"{prefix}/stats/{pct}")
    assert r.status_code == 200
    assert r.json() == [
        {"jobNameLabel": "slow", "time": 30.0},
        {"jobNameLabel": "quick", "time": 2.0},
        {"jobNameLabel": "fresh", "time": 0.0},
    ]


def test_stats_of_a_job_that_never_ran_is_zero(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("myjob"))
    for pct in PCTS:
        assert call(served, "GET", f"{prefix}/stats/{pct}").json() == [{"jobNameLabel": "myjob", "time": 0.0}]


def test_unknown_percentile_is_an_empty_list(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("a"))
    for pct in ("50thPercentile", "count", "x"):
        r = call(served, "GET", f"{prefix}/stats/{pct}")
        assert r.status_code == 200 and r.json() == []


def _graph_jobs(served: ServedFake, prefix: str) -> None:
    add(served, prefix, job("A"))
    add(served, prefix, job("B"))
    add(served, prefix, job("C", parents=["A", "B"]))
    call(served, "PUT", f"{prefix}/job/A")
    served.service.failing.add("B")
    call(served, "PUT", f"{prefix}/job/B")
    served.service.states["C"] = "queued"


def test_graph_csv(served: ServedFake, prefix: str) -> None:
    _graph_jobs(served, prefix)
    r = call(served, "GET", f"{prefix}/graph/csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert {"node,A,success,idle", "node,B,failure,idle", "node,C,fresh,queued"} <= set(lines)
    assert {"link,A,C", "link,B,C"} <= set(lines)
    assert len(lines) == 5


def test_graph_csv_without_jobs_is_an_empty_200(served: ServedFake, prefix: str) -> None:
    r = call(served, "GET", f"{prefix}/graph/csv")
    assert r.status_code == 200 and r.text.strip() == ""
    assert r.headers["Content-Type"].startswith("text/plain")


def test_graph_dot(served: ServedFake, prefix: str) -> None:
    _graph_jobs(served, prefix)
    r = call(served, "GET", f"{prefix}/graph/dot")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text.strip()
    assert text.startswith("digraph G {") and text.endswith("}")
    for name in ("A", "B", "C"):
        assert re.search(rf'label="{name}"', text)
    assert re.search(r'"?A"?\s*->\s*"?C"?', text) and re.search(r'"?B"?\s*->\s*"?C"?', text)


def test_metrics_has_the_dropwizard_shape(served: ServedFake) -> None:
    add(served, "/v1/scheduler", job("a"))
    call(served, "PUT", "/v1/scheduler/job/a")
    r = call(served, "GET", "/metrics")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"version", "gauges", "counters", "histograms", "meters", "timers"}
    assert body["gauges"]["chronos.jobs.count"] == {"value": 1}
    assert body["counters"]["chronos.jobs.a.success"] == {"count": 1}
    assert body["histograms"]["chronos.jobs.a.run_time_ms"]["count"] == 1


def test_metrics_is_not_prefixed(served: ServedFake) -> None:
    assert call(served, "GET", "/v1/scheduler/metrics").status_code == 404
    bad_request(call(served, "GET", "/v1/scheduler/job/stat/none"))


def test_quantiles_interpolate_like_dropwizard() -> None:
    from lichen.frameworks.chronos import metrics

    assert metrics.quantile([], 0.5) == 0.0
    assert metrics.quantile([5.0], 0.99) == 5.0
    assert metrics.quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert metrics.quantile([1.0, 2.0, 3.0, 4.0], 0.1) == 1.0     # clamped low
    assert metrics.quantile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0    # clamped high
    assert metrics.histogram([]) == EMPTY_STAT["histogram"]
