"""Run-time statistics as Chronos shows them (pure).

Chronos keeps a Dropwizard histogram of each job's successful run times and serves it
three ways: `/job/stat/{name}` (percentiles in ms), `/stats/{pct}` (one percentile of
every job, in seconds) and `/metrics` (the Dropwizard registry dump). Everything here
takes the durations (or the job list) in and returns JSON-ready values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lichen.frameworks.chronos.service_api import RunRecord

# The keys of a job's histogram, in the order Chronos writes them.
PERCENTILES = ("75thPercentile", "95thPercentile", "98thPercentile", "99thPercentile", "median", "mean")

_QUANTILE = {
    "75thPercentile": 0.75,
    "95thPercentile": 0.95,
    "98thPercentile": 0.98,
    "99thPercentile": 0.99,
    "median": 0.5,
}


def durations_ms(history: Iterable[RunRecord]) -> list[float]:
    """The run times (ms) the stats count: finished, successful runs, in history order."""
    return [
        (r.end - r.start) * 1000.0
        for r in history
        if r.status == "success" and r.end is not None and r.start > 0 and r.end >= r.start
    ]


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of ascending values, interpolated as Dropwizard's snapshots do
    (position q*(n+1), clamped to the ends); 0.0 for no values."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    pos = q * (n + 1)
    index = math.floor(pos)
    if index < 1:
        return float(sorted_values[0])
    if index >= n:
        return float(sorted_values[-1])
    lower, upper = sorted_values[index - 1], sorted_values[index]
    return float(lower + (pos - index) * (upper - lower))


def stat(name: str, values_ms: Sequence[float]) -> float:
    """One of PERCENTILES over `values_ms`. KeyError for any other name."""
    if name == "mean":
        # Chronos 2.x/3.x write the median under "mean"; lichen writes the mean.
        return float(sum(values_ms) / len(values_ms)) if values_ms else 0.0
    return quantile(sorted(values_ms), _QUANTILE[name])


def histogram(values_ms: Sequence[float]) -> dict[str, Any]:
    """The `histogram` of `/job/stat/{name}`: every percentile in ms, and `count`.
    With no runs this is exactly Chronos's all-zero dict (clients compare it with ==)."""
    out: dict[str, Any] = {key: stat(key, values_ms) for key in PERCENTILES}
    out["count"] = len(values_ms)
    return out


@dataclass(frozen=True, slots=True)
class JobCounts:
    """What `/metrics` needs of one job."""

    name: str
    successes: int
    errors: int
    durations_ms: tuple[float, ...]
    state: str          # "idle" | "queued" | "<n> running"
    disabled: bool


def _dropwizard_histogram(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    n = len(ordered)
    mean = sum(ordered) / n if n else 0.0
    variance = sum((v - mean) ** 2 for v in ordered) / (n - 1) if n > 1 else 0.0
    return {
        "count": n,
        "max": float(ordered[-1]) if n else 0.0,
        "mean": float(mean),
        "min": float(ordered[0]) if n else 0.0,
        "p50": quantile(ordered, 0.5),
        "p75": quantile(ordered, 0.75),
        "p95": quantile(ordered, 0.95),
        "p98": quantile(ordered, 0.98),
        "p99": quantile(ordered, 0.99),
        "p999": quantile(ordered, 0.999),
        "stddev": math.sqrt(variance),
    }


def _running(state: str) -> int:
    head = state.split(" ", 1)[0]
    return int(head) if state.endswith("running") and head.isdigit() else 0


def registry(jobs: Sequence[JobCounts]) -> dict[str, Any]:
    """`/metrics`: a Dropwizard registry dump `{version, gauges, counters, histograms,
    meters, timers}`. Gauges describe the scheduler, counters and histograms each job."""
    gauges = {
        "chronos.jobs.count": {"value": len(jobs)},
        "chronos.jobs.disabled": {"value": sum(1 for j in jobs if j.disabled)},
        "chronos.jobs.queued": {"value": sum(1 for j in jobs if j.state == "queued")},
        "chronos.tasks.running": {"value": sum(_running(j.state) for j in jobs)},
    }
    counters: dict[str, Any] = {}
    histograms: dict[str, Any] = {}
    for job in jobs:
        counters[f"chronos.jobs.{job.name}.success"] = {"count": job.successes}
        counters[f"chronos.jobs.{job.name}.failure"] = {"count": job.errors}
        histograms[f"chronos.jobs.{job.name}.run_time_ms"] = _dropwizard_histogram(job.durations_ms)
    return {
        "version": "3.0.0",
        "gauges": gauges,
        "counters": counters,
        "histograms": histograms,
        "meters": {},
        "timers": {},
    }
