"""`lichen job ...` (the real command, as a subprocess) against a fake Chronos."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from tests.integration.cli.fake_chronos import EMPTY_STATS, FakeChronos, chronos
from tests.integration.cli.fake_servers import run_lichen

__all__ = ["chronos"]

P = "/v1/scheduler"
SCHEDULED = {"name": "nightly", "command": "echo hi", "owner": "", "disabled": False,
             "schedule": "R/2099-01-01T00:00:00.000Z/P1D"}


def job(server: FakeChronos, *args: str, input: str | None = None) -> tuple[int, str, str]:
    out = run_lichen("job", *args, env={"LICHEN_CHRONOS": server.url}, input=input)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout, out.stderr


def small_dag(server: FakeChronos) -> None:
    """A, B -> C; D alone."""
    for name in ("A", "B", "D"):
        server.add_job({"name": name, "command": "true", "schedule": "R/2099-01-01T00:00:00.000Z/P1D"})
    server.add_job({"name": "C", "command": "true", "parents": ["A", "B"]})


# --- add --------------------------------------------------------------------------------


def test_add_posts_a_scheduled_job_to_iso8601(chronos: FakeChronos, tmp_path: Path) -> None:
    path = tmp_path / "nightly.json"
    path.write_text(json.dumps(SCHEDULED))
    rc, out, err = job(chronos, "add", str(path))
    assert rc == 0, err
    assert out == "added job nightly\n"
    assert chronos.calls("POST", P + "/iso8601") == [({}, SCHEDULED)]
    assert not chronos.calls("POST", P + "/dependency")


def test_add_posts_a_job_with_parents_to_dependency_from_stdin(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    child = {"name": "report", "command": "echo r", "owner": "", "disabled": False, "parents": ["nightly"]}
    rc, out, err = job(chronos, "add", "-", input=json.dumps(child))
    assert rc == 0, err
    assert out == "added job report\n"
    assert chronos.calls("POST", P + "/dependency") == [({}, child)]
    assert not chronos.calls("POST", P + "/iso8601")
    assert chronos.jobs["report"]["parents"] == ["nightly"]


def test_add_with_an_unknown_parent_prints_chronos_message(chronos: FakeChronos) -> None:
    rc, out, err = job(chronos, "add", "-", input=json.dumps({"name": "orphan", "parents": ["ghost"]}))
    assert rc == 1
    assert out == ""
    assert "requirement failed: parent job 'ghost' not found" in err
    assert "orphan" not in chronos.jobs


def test_add_with_a_bad_name_prints_chronos_message(chronos: FakeChronos) -> None:
    rc, _, err = job(chronos, "add", "-", input=json.dumps({**SCHEDULED, "name": "job with spaces"}))
    assert rc == 1
    assert "must match" in err


def test_add_rejects_bad_json_without_sending(chronos: FakeChronos) -> None:
    rc, _, err = job(chronos, "add", "-", input="{not json")
    assert rc == 1
    assert "stdin is not JSON" in err
    rc, _, err = job(chronos, "add", "-", input=json.dumps({"command": "x"}))
    assert rc == 1
    assert 'a job needs a "name"' in err
    assert chronos.requests == []


# --- list / show ----------------------------------------------------------------------------


def test_list_shows_trigger_last_status_and_counts(chronos: FakeChronos) -> None:
    chronos.add_job({**SCHEDULED, "successCount": 3, "lastSuccess": "2024-05-01T12:00:00.000Z"})
    chronos.add_job({"name": "flaky", "schedule": "R//PT1H", "scheduleTimeZone": "UTC", "errorCount": 2,
                     "lastSuccess": "2024-05-01T12:00:00.000Z", "lastError": "2024-05-02T12:00:00.000Z",
                     "disabled": True})
    chronos.add_job({"name": "report", "parents": ["nightly", "flaky"]})
    rc, out, err = job(chronos, "list")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "/", "PARENTS", "LAST", "SUCCESSES", "ERRORS", "DISABLED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["nightly"] == ["nightly", "R/2099-01-01T00:00:00.000Z/P1D", "success", "3", "0", "no"]
    assert rows["flaky"] == ["flaky", "R//PT1H", "(UTC)", "failure", "0", "2", "yes"]
    assert rows["report"] == ["report", "after", "nightly,", "flaky", "fresh", "0", "0", "no"]
    assert [line.split()[0] for line in lines[1:]] == ["flaky", "nightly", "report"]


def test_list_json_is_the_api_body(chronos: FakeChronos) -> None:
    small_dag(chronos)
    rc, out, err = job(chronos, "list", "--json")
    assert rc == 0, err
    assert json.loads(out) == list(chronos.jobs.values())


def test_list_without_jobs(chronos: FakeChronos) -> None:
    rc, out, _ = job(chronos, "list")
    assert (rc, out) == (0, "no jobs\n")


def test_show_prints_the_fields(chronos: FakeChronos) -> None:
    chronos.add_job({**SCHEDULED, "lastError": "2024-05-02T12:00:00.000Z", "errorCount": 1})
    rc, out, err = job(chronos, "show", "nightly")
    assert rc == 0, err
    fields = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert fields["status"] == ["failure"]
    assert fields["name"] == ["nightly"]
    assert fields["command"] == ["echo", "hi"]
    assert fields["schedule"] == ["R/2099-01-01T00:00:00.000Z/P1D"]
    assert fields["errorCount"] == ["1"]
    assert fields["lastSuccess"] == ["-"]
    assert fields["shell"] == ["true"]
    assert fields["disabled"] == ["false"]
    assert chronos.calls("GET", P + "/job/nightly")


def test_show_of_a_dependent_job_names_its_parents(chronos: FakeChronos) -> None:
    small_dag(chronos)
    rc, out, err = job(chronos, "show", "C")
    assert rc == 0, err
    fields = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert fields["parents"] == ["A,", "B"]
    assert "schedule" not in fields


def test_show_json_is_the_api_body(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, out, err = job(chronos, "show", "nightly", "--json")
    assert rc == 0, err
    assert json.loads(out) == chronos.jobs["nightly"]


def test_show_unknown_job_prints_the_400_message(chronos: FakeChronos) -> None:
    rc, out, err = job(chronos, "show", "nope")
    assert rc == 1
    assert out == ""
    assert err.strip() == "Chronos: requirement failed: Job 'nope' not found"


# --- run / remove / kill ----------------------------------------------------------------------


def test_run_starts_the_job(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, out, err = job(chronos, "run", "nightly")
    assert rc == 0, err
    assert out == "started job nightly\n"
    assert chronos.calls("PUT", P + "/job/nightly") == [({}, None)]


def test_run_with_arguments(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, _, err = job(chronos, "run", "nightly", "--arguments", "-v --date 2024")
    assert rc == 0, err
    assert chronos.runs == [("nightly", "-v --date 2024")]


def test_run_unknown_job_is_400(chronos: FakeChronos) -> None:
    rc, _, err = job(chronos, "run", "nope")
    assert rc == 1
    assert "Job 'nope' not found" in err


def test_remove_deletes_the_job(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, out, err = job(chronos, "remove", "nightly")
    assert rc == 0, err
    assert out == "removed job nightly\n"
    assert chronos.calls("DELETE", P + "/job/nightly")
    assert "nightly" not in chronos.jobs
    rc, _, err = job(chronos, "remove", "nightly")
    assert rc == 1
    assert "Job 'nightly' not found" in err


def test_kill_deletes_the_jobs_tasks(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, out, err = job(chronos, "kill", "nightly")
    assert rc == 0, err
    assert out == "killed the tasks of job nightly\n"
    assert chronos.calls("DELETE", P + "/task/kill/nightly")
    assert "nightly" in chronos.jobs
    rc, _, err = job(chronos, "kill", "nope")
    assert rc == 1
    assert "Job 'nope' not found" in err


# --- history ----------------------------------------------------------------------------------


STATS = {
    "histogram": {"75thPercentile": 1500.0, "95thPercentile": 1900.0, "98thPercentile": 1960.0,
                  "99thPercentile": 1980.0, "median": 1200.0, "mean": 1200.0, "count": 2},
    "taskStatHistory": [
        {"taskId": "ct:1714564800000:0:nightly:", "jobName": "nightly", "slaveId": "agent-1",
         "startTime": "05/01/24 12:00:00", "endTime": "05/01/24 12:00:01", "duration": "1 second",
         "status": "SUCCESS"},
        {"taskId": "ct:1714651200000:0:nightly:", "jobName": "nightly", "slaveId": "agent-2",
         "startTime": "05/02/24 12:00:00", "endTime": "N/A", "status": "RUNNING"},
    ],
}


def test_history_shows_runs_and_histogram(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    chronos.stats["nightly"] = STATS
    rc, out, err = job(chronos, "history", "nightly")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TASK", "AGENT", "START", "END", "DURATION", "STATUS"]
    assert lines[1].split() == ["ct:1714564800000:0:nightly:", "agent-1", "05/01/24", "12:00:00",
                                "05/01/24", "12:00:01", "1", "second", "SUCCESS"]
    assert lines[2].split() == ["ct:1714651200000:0:nightly:", "agent-2", "05/02/24", "12:00:00",
                                "N/A", "-", "RUNNING"]
    assert lines[3] == ("runs 2: median 1200 ms, mean 1200 ms, 75th 1500 ms, 95th 1900 ms, "
                        "98th 1960 ms, 99th 1980 ms")
    assert chronos.calls("GET", P + "/job/stat/nightly")


def test_history_of_a_job_that_never_ran(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, out, err = job(chronos, "history", "nightly")
    assert rc == 0, err
    assert out == ("no runs recorded\n"
                   "runs 0: median 0 ms, mean 0 ms, 75th 0 ms, 95th 0 ms, 98th 0 ms, 99th 0 ms\n")


def test_history_json_is_the_api_body(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    rc, out, _ = job(chronos, "history", "nightly", "--json")
    assert rc == 0
    assert json.loads(out) == EMPTY_STATS
    chronos.stats["nightly"] = STATS
    rc, out, _ = job(chronos, "history", "nightly", "--json")
    assert json.loads(out) == STATS


def test_history_of_unknown_job_is_400(chronos: FakeChronos) -> None:
    rc, _, err = job(chronos, "history", "nope")
    assert rc == 1
    assert "Job 'nope' not found" in err


# --- graph ------------------------------------------------------------------------------------


_GUIDES = re.compile(r"[ │├└─┃┣┗━|`+-]*")


def _tree_lines(out: str) -> list[tuple[int, str]]:
    """Each line of a rich Tree as (depth, text without the guides)."""
    result = []
    for line in out.splitlines():
        guides = _GUIDES.match(line)
        depth = guides.end() if guides else 0
        result.append((depth // 4, line[depth:]))
    return result


def test_graph_draws_the_dag_as_a_tree(chronos: FakeChronos) -> None:
    small_dag(chronos)
    chronos.jobs["A"]["lastSuccess"] = "2024-05-01T12:00:00.000Z"
    chronos.states["D"] = "1 running"
    rc, out, err = job(chronos, "graph")
    assert rc == 0, err
    lines = _tree_lines(out)
    assert [(depth, text.split()[0]) for depth, text in lines] == [
        (0, "jobs"), (1, "A"), (2, "C"), (1, "B"), (2, "C"), (1, "D")]
    texts = [text for _, text in lines]
    assert texts[1] == "A  success"
    assert texts[2] == texts[4] == "C  fresh  (after A and B)"
    assert texts[3] == "B  fresh"
    assert texts[5] == "D  fresh, 1 running"
    assert chronos.calls("GET", P + "/graph/csv")


def test_graph_draws_a_shared_subtree_once(chronos: FakeChronos) -> None:
    small_dag(chronos)
    chronos.add_job({"name": "E", "parents": ["C"]})
    rc, out, err = job(chronos, "graph")
    assert rc == 0, err
    lines = _tree_lines(out)
    assert [(depth, text.split()[0]) for depth, text in lines] == [
        (0, "jobs"), (1, "A"), (2, "C"), (3, "E"), (1, "B"), (2, "C"), (1, "D")]
    assert lines[5][1].endswith("(children shown above)")


def test_graph_dot_prints_the_raw_dot(chronos: FakeChronos) -> None:
    small_dag(chronos)
    rc, out, err = job(chronos, "graph", "--dot")
    assert rc == 0, err
    assert out.startswith("digraph G {")
    assert '"A" -> "C";' in out and '"B" -> "C";' in out
    assert out.count("\n") == out.rstrip("\n").count("\n") + 1     # exactly one final newline
    assert chronos.calls("GET", P + "/graph/dot")
    assert not chronos.calls("GET", P + "/graph/csv")


def test_graph_without_jobs(chronos: FakeChronos) -> None:
    rc, out, _ = job(chronos, "graph")
    assert (rc, out) == (0, "no jobs\n")


# --- finding Chronos ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_chronos_is_one_line(chronos: FakeChronos) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    out = run_lichen("job", "--chronos", url, "list")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.strip() == f"cannot reach Chronos at {url}: connection refused"


def test_chronos_option_wins_over_environment(chronos: FakeChronos) -> None:
    chronos.add_job(SCHEDULED)
    host_port = chronos.url.removeprefix("http://")
    out = run_lichen("job", "--chronos", host_port, "list", env={"LICHEN_CHRONOS": "http://127.0.0.1:1"})
    assert out.returncode == 0, out.stderr
    assert "nightly" in out.stdout
