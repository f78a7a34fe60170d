"""Job JSON: defaults, validation naming the field, the output shape (checked against
chronos-python's own validation), counters, task ids and the task environment."""

from __future__ import annotations

import json
import re
from typing import Any

import chronos
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.errors import InvalidRequest
from lichen.frameworks.chronos.job import (
    JOB_KEYS,
    Job,
    JobDefaults,
    JobKind,
    job_json,
    job_schedule,
    parse_job,
    parse_task_id,
    task_arguments,
    task_env,
    task_id,
    timestamp,
    with_counters,
    with_parents,
    with_schedule,
)
from lichen.frameworks.chronos.schedule import instant

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DEFAULTS = JobDefaults()
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def job(kind: JobKind | None = None, **fields: Any) -> Job:
    return parse_job({"name": "myjob", **fields}, now=NOW, defaults=DEFAULTS, kind=kind)


def refused(field: str, kind: JobKind | None = None, **fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        job(kind, **fields)
    assert info.value.field == field, info.value.message
    return info.value


def client_check(data: dict[str, Any]) -> bool:
    """chronos-python 1.2.1's own check before it sends a job (no server needed)."""
    client = chronos.ChronosClient(["127.0.0.1:1"])
    return bool(client._check_fields(json.loads(json.dumps(data))))


# --------------------------------------------------------------------------- defaults

def test_defaults_are_the_originals() -> None:
    out = job_json(job(schedule="R0/2014-01-01T00:00:00Z/PT60M", command="echo 1"))
    assert out["retries"] == 2
    assert (out["cpus"], out["mem"], out["disk"]) == (0.1, 128, 256)
    assert out["shell"] is True and out["async"] is False
    assert out["epsilon"] == "PT60S"
    assert out["successCount"] == 0 and out["lastSuccess"] == "" and out["lastError"] == ""
    assert out["runAsUser"] == "root"
    assert out["schedule"] == "R0/2014-01-01T00:00:00Z/PT60M"
    assert out["scheduleTimeZone"] == ""
    assert "parents" not in out and "container" not in out


def test_output_has_every_key() -> None:
    out = job_json(job(schedule="R/2014-01-01T00:00:00Z/P1D"))
    assert set(out) == {*JOB_KEYS, "schedule", "scheduleTimeZone"}
    dependent = job_json(job("dependency", parents=["a"]))
    assert set(dependent) == {*JOB_KEYS, "parents"}


def test_server_flags_fill_absent_and_zero_resources() -> None:
    defaults = JobDefaults(cpus=0.5, mem=64, disk=10, epsilon=5, user="nobody", retries=0)
    parsed = parse_job({"name": "a", "cpus": 0, "mem": None}, now=NOW, defaults=defaults)
    assert (parsed.cpus, parsed.mem, parsed.disk) == (0.5, 64, 10)
    assert parsed.raw["epsilon"] == "PT5S" and parsed.epsilon == 5
    assert parsed.run_as_user == "nobody" and parsed.retries == 0


def test_numeric_strings_are_accepted_for_resources() -> None:
    parsed = job(cpus="0.5", mem="256", disk=512)
    assert (parsed.cpus, parsed.mem, parsed.disk) == (0.5, 256, 512)
    assert job_json(parsed)["cpus"] == 0.5


def test_neither_schedule_nor_parents_runs_once_now() -> None:
    parsed = job()
    assert parsed.schedule == "R1/2023-11-14T22:13:20.000Z/PT24H"
    schedule = job_schedule(parsed, now=NOW + 100)
    assert schedule is not None and instant(schedule.start) == NOW


def test_an_empty_start_is_pinned_to_now() -> None:
    parsed = job(schedule="R5//PT10M")
    assert parsed.schedule == "R5/2023-11-14T22:13:20.000Z/PT10M"


def test_schedule_time_zone_is_written_back_as_posted() -> None:
    parsed = job(schedule="R/2014-01-01T09:00:00/P1D", scheduleTimeZone="PST")
    assert job_json(parsed)["scheduleTimeZone"] == "PST"
    schedule = job_schedule(parsed, now=NOW)
    assert schedule is not None and schedule.tz == "America/Los_Angeles"


def test_parents_collapse_duplicates() -> None:
    assert job("dependency", parents=["a", "b", "a"]).parents == ["a", "b"]


def test_dependency_kind_prefers_parents_and_iso8601_the_schedule() -> None:
    both = {"parents": ["a"], "schedule": "R/2014-01-01T00:00:00Z/P1D"}
    assert job("dependency", **both).is_dependent
    assert not job("iso8601", **both).is_dependent
    assert job(None, **both).is_dependent


def test_data_job_alias() -> None:
    assert job(dataJob=True).data_job
    assert job(dataProcessingJobType=True).data_job


def test_uris_fill_fetch() -> None:
    parsed = job(uris=["http://x/a.tgz"])
    assert parsed.fetch == [{"uri": "http://x/a.tgz", "executable": False, "cache": False,
                             "extract": True, "output_file": ""}]


def test_fetch_fills_uris_and_defaults() -> None:
    parsed = job(fetch=[{"uri": "http://x/a", "executable": True}])
    assert parsed.uris == ["http://x/a"]
    assert parsed.fetch[0]["extract"] is True and parsed.fetch[0]["executable"] is True


def test_unknown_constraint_operators_are_dropped() -> None:
    parsed = job(constraints=[["rack", "like", "r[12]"], ["host", "GROUP_BY", "x"],
                              ["hostname", "EQUALS", "a"]])
    assert parsed.constraints == [["rack", "LIKE", "r[12]"], ["hostname", "EQUALS", "a"]]


def test_container_defaults_and_enum_case() -> None:
    parsed = job(container={"type": "docker", "image": "busybox", "network": "bridge",
                            "volumes": [{"containerPath": "/data", "hostPath": "/tmp",
                                         "mode": "ro"}],
                            "forcePullImage": "true"})
    assert parsed.container == {
        "type": "DOCKER", "image": "busybox", "network": "BRIDGE",
        "volumes": [{"containerPath": "/data", "hostPath": "/tmp", "mode": "RO"}],
        "forcePullImage": True, "parameters": [],
    }


def test_container_without_image_is_ignored() -> None:
    assert job(container={"type": "MESOS"}).container is None


def test_counters_come_from_the_posted_json() -> None:
    parsed = job(successCount=3, errorCount=1, errorsSinceLastSuccess=1,
                 lastSuccess="2014-01-01T00:00:00.000Z", lastError="2014-01-02T00:00:00Z")
    assert parsed.success_count == 3 and parsed.errors_since_last_success == 1
    assert parsed.last_success == "2014-01-01T00:00:00.000Z"
    assert parsed.last_error == "2014-01-02T00:00:00.000Z"


def test_unknown_fields_are_ignored() -> None:
    assert "bogus" not in job_json(job(bogus=1))


def test_output_reads_back_as_the_same_job() -> None:
    parsed = job(schedule="R/2014-01-01T00:00:00Z/P1D", environmentVariables=[
        {"name": "A", "value": 1}], fetch=[{"uri": "u"}], container={"image": "i"},
        successCount=2, lastSuccess="2014-01-01T00:00:00.123Z")
    again = parse_job(job_json(parsed), now=NOW + 50, defaults=DEFAULTS)
    assert job_json(again) == job_json(parsed)


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("name", ["job with spaces", "", "a/b", "é", "a;b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_job({"name": name}, now=NOW, defaults=DEFAULTS)
    assert info.value.field == "name"


def test_missing_name_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_job({"command": "x"}, now=NOW, defaults=DEFAULTS)
    assert info.value.field == "name"


@pytest.mark.parametrize("data", [[], "job", None, 3])
def test_a_job_must_be_an_object(data: Any) -> None:
    with pytest.raises(InvalidRequest):
        parse_job(data, now=NOW, defaults=DEFAULTS)


def test_bad_schedule_names_the_schedule() -> None:
    error = refused("schedule", schedule="R/PT1H")
    assert error.message.startswith("Cannot parse schedule 'R/PT1H'")


def test_unknown_zone_is_refused() -> None:
    error = refused("scheduleTimeZone", schedule="R//P1D", scheduleTimeZone="Nowhere/Land")
    assert "Nowhere/Land" in error.message


def test_empty_parents_on_dependency_is_refused() -> None:
    refused("parents", "dependency", parents=[])
    refused("parents", "dependency")


def test_self_parent_is_refused() -> None:
    assert "myjob -> myjob" in refused("parents", "dependency", parents=["myjob"]).message


def test_uris_and_fetch_together_are_refused() -> None:
    refused("fetch", uris=["a"], fetch=[{"uri": "b"}])


def test_mirrored_uris_and_fetch_are_accepted() -> None:
    assert job(uris=["a"], fetch=[{"uri": "a", "cache": True}]).fetch[0]["cache"] is True


@pytest.mark.parametrize(("field", "value"), [
    ("cpus", "lots"), ("mem", -1), ("disk", True), ("retries", -1), ("retries", "two"),
    ("shell", "yes"), ("command", 3), ("arguments", "a b"), ("arguments", [1]),
    ("parents", "a"), ("epsilon", "60 seconds"), ("epsilon", True), ("owner", []),
    ("environmentVariables", [{"value": "x"}]), ("fetch", [{"cache": True}]),
    ("constraints", [["a", "EQUALS"]]), ("constraints", [["a", "LIKE", "("]]),
    ("container", "docker"), ("lastSuccess", "yesterday"), ("maxCompletionTime", 1.5),
])
def test_bad_types_name_the_field(field: str, value: Any) -> None:
    refused(field, **{field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("type", "RKT"), ("network", "OVERLAY"),
])
def test_bad_container_enums_are_refused(field: str, value: str) -> None:
    refused(field, container={"image": "i", field: value})


def test_volume_needs_a_container_path() -> None:
    refused("container.volumes", container={"image": "i", "volumes": [{"hostPath": "/x"}]})


# --------------------------------------------------------------------------- helpers

def test_with_counters_updates_counters_and_timestamps() -> None:
    updated = with_counters(job(), success_count=1, last_success=NOW + 0.5,
                            errors_since_last_success=0, disabled=True)
    assert updated.success_count == 1
    assert updated.last_success == "2023-11-14T22:13:20.500Z"
    assert updated.disabled
    with pytest.raises(TypeError):
        with_counters(job(), name="other")


def test_with_schedule_turns_a_dependent_job_scheduled() -> None:
    dependent = job("dependency", parents=["a"])
    scheduled = with_schedule(dependent, "R/2014-01-01T00:00:00.000Z/P1D", "UTC")
    assert scheduled.parents is None and not scheduled.is_dependent
    assert job_json(scheduled)["scheduleTimeZone"] == "UTC"
    assert list(job_json(scheduled))[:6] == [
        "name", "command", "shell", "arguments", "schedule", "scheduleTimeZone"]


def test_with_parents_turns_a_scheduled_job_dependent() -> None:
    dependent = with_parents(job(schedule="R/2014-01-01T00:00:00Z/P1D"), ["b", "a", "b"])
    assert dependent.parents == ["b", "a"]
    assert "schedule" not in job_json(dependent)
    assert job_schedule(dependent, now=NOW) is None


def test_timestamp_form() -> None:
    assert timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert timestamp(NOW + 0.9999) == "2023-11-14T22:13:20.999Z"
    assert TS.match(timestamp(NOW))


# --------------------------------------------------------------------------- tasks

def test_task_id_shape() -> None:
    assert task_id(1428515194358, 0, "NewJob", "") == "ct:1428515194358:0:NewJob:"
    assert task_id(1, 2, "j", "a;b c") == "ct:1:2:j:ab c"


def test_task_arguments_manual_first_then_the_jobs() -> None:
    parsed = job(arguments=["-v", "x;y"])
    assert task_arguments(parsed) == "-v xy"
    assert task_arguments(parsed, "m;n") == "mn"


@given(st.integers(0, 2**50), st.integers(0, 100), st.from_regex(r"[\w.-]+", fullmatch=True),
       st.text())
def test_task_ids_parse_back(due: int, attempt: int, name: str, args: str) -> None:
    name = name.encode("ascii", "ignore").decode() or "j"
    assert parse_task_id(task_id(due, attempt, name, args)) == \
        (due, attempt, name, args.replace(";", ""))


@pytest.mark.parametrize("value", ["", "ct:1:0", "task-1", "ct:x:0:j:", "ct:1:0:a/b:"])
def test_foreign_task_ids_do_not_parse(value: str) -> None:
    assert parse_task_id(value) is None


def test_task_env_has_the_builtins_and_they_win() -> None:
    parsed = job(owner="ops@x", environmentVariables=[
        {"name": "HOST", "value": "mine"}, {"name": "EXTRA", "value": "1"}])
    env = task_env(parsed, task_id="ct:5:1:myjob:", host="agent1", due_millis=5, attempt=1)
    assert env == {
        "HOST": "agent1", "EXTRA": "1", "mesos_task_id": "ct:5:1:myjob:",
        "MESOS_TASK_ID": "ct:5:1:myjob:", "CHRONOS_JOB_NAME": "myjob",
        "CHRONOS_JOB_OWNER": "ops@x", "CHRONOS_RESOURCE_CPU": "0.1",
        "CHRONOS_RESOURCE_MEM": "128.0", "CHRONOS_RESOURCE_DISK": "256.0",
        "CHRONOS_JOB_RUN_TIME": "5", "CHRONOS_JOB_RUN_ATTEMPT": "1",
    }


# --------------------------------------------------------------------------- the client

@pytest.mark.parametrize("fields", [
    {"schedule": "R/2014-01-01T00:00:00Z/P1D"},
    {"kind": "dependency", "parents": ["a"]},
    {"container": {"type": "mesos", "image": "busybox"}},
    {},
])
def test_chronos_python_accepts_job_json(fields: dict[str, Any]) -> None:
    kind = fields.pop("kind", None)
    assert client_check(job_json(job(kind, **fields)))


def test_chronos_python_accepts_listed_jobs_posted_back_with_async() -> None:
    # chronos-sync-jobs posts listed jobs back; legacy clients also require `async`.
    out = job_json(job(schedule="R/2014-01-01T00:00:00Z/P1D"))
    assert "async" in out
    again = parse_job(json.loads(json.dumps(out)), now=NOW, defaults=DEFAULTS, kind="iso8601")
    assert job_json(again) == out


def test_out_of_range_values_are_400s_not_500s() -> None:
    import time as _time

    from lichen.errors import InvalidRequest as _Invalid
    from lichen.frameworks.chronos.job import JobDefaults as _Defaults
    from lichen.frameworks.chronos.job import parse_job as _parse

    for data in ({"name": "x", "schedule": "R/9999-12-31T23:59:59Z/P1Y", "scheduleTimeZone": "PST"},
                 {"name": "x", "retries": 10**400}, {"name": "x", "maxCompletionTime": 2**31}):
        try:
            _parse(data, now=_time.time(), defaults=_Defaults())
        except _Invalid:
            continue
        raise AssertionError(f"accepted {data}")
