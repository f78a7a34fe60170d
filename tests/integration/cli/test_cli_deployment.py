"""`lichen deployment ...` against a fake Marathon v2 server."""

from __future__ import annotations

import json

from tests.integration.cli.fake_servers import FakeMarathon, marathon, run_lichen

__all__ = ["marathon"]


def start_restart(server: FakeMarathon, app_id: str = "web") -> str:
    server.add_app({"id": app_id, "cmd": "sleep 100", "instances": 2})
    out = run_lichen("app", "restart", app_id, "--no-wait", "--json", env={"LICHEN_MARATHON": server.url})
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["deploymentId"])


def test_deployment_list_table_and_json(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 100
    dep = start_restart(marathon)
    out = run_lichen("deployment", "list", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0, out.stderr
    assert dep in out.stdout and "/web" in out.stdout and "step 1/1" in out.stdout
    js = run_lichen("deployment", "list", "--json", env={"LICHEN_MARATHON": marathon.url})
    assert json.loads(js.stdout) == list(marathon.deployments.values())


def test_deployment_list_filters_by_app(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 100
    start_restart(marathon, "web")
    db = start_restart(marathon, "db")
    out = run_lichen("deployment", "list", "db", "--json", env={"LICHEN_MARATHON": marathon.url})
    assert [d["id"] for d in json.loads(out.stdout)] == [db]


def test_deployment_list_empty(marathon: FakeMarathon) -> None:
    out = run_lichen("deployment", "list", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0 and "no deployments" in out.stdout


def test_deployment_watch_until_success(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 3
    dep = start_restart(marathon)
    out = run_lichen("deployment", "watch", dep, env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0, out.stderr
    assert f"deployment {dep} succeeded" in out.stderr
    assert "RestartApplication /web" in out.stderr


def test_deployment_watch_without_id_watches_all(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 3
    web = start_restart(marathon, "web")
    db = start_restart(marathon, "db")
    out = run_lichen("deployment", "watch", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0, out.stderr
    assert f"deployment {web} succeeded" in out.stderr and f"deployment {db} succeeded" in out.stderr


def test_deployment_watch_exits_1_when_cancelled(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 3
    marathon.fail_deployments = True
    dep = start_restart(marathon)
    out = run_lichen("deployment", "watch", dep, env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 1
    assert f"deployment {dep} failed or was cancelled" in out.stderr


def test_deployment_watch_unknown_id(marathon: FakeMarathon) -> None:
    out = run_lichen("deployment", "watch", "nope", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 1
    assert "no deployment nope is running" in out.stderr


def test_deployment_watch_timeout(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 1000
    dep = start_restart(marathon)
    out = run_lichen("deployment", "watch", dep, "--timeout", "0.5", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 1
    assert "timed out" in out.stderr


def test_deployment_rollback_starts_a_rollback(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 100
    dep = start_restart(marathon)
    out = run_lichen("deployment", "rollback", dep, env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0, out.stderr
    assert "rolling back" in out.stdout
    [(query, _)] = marathon.calls("DELETE", f"/v2/deployments/{dep}")
    assert "force" not in query


def test_deployment_rollback_force_cancels(marathon: FakeMarathon) -> None:
    marathon.polls_to_finish = 100
    dep = start_restart(marathon)
    out = run_lichen("deployment", "rollback", dep, "--force", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 0, out.stderr
    assert f"cancelled deployment {dep}" in out.stdout
    [(query, _)] = marathon.calls("DELETE", f"/v2/deployments/{dep}")
    assert query == {"force": "true"}


def test_deployment_rollback_unknown_is_404_message(marathon: FakeMarathon) -> None:
    out = run_lichen("deployment", "rollback", "nope", env={"LICHEN_MARATHON": marathon.url})
    assert out.returncode == 1
    assert "DeploymentPlan nope does not exist" in out.stderr


def test_unreachable_marathon() -> None:
    out = run_lichen("deployment", "list", env={"LICHEN_MARATHON": "http://127.0.0.1:1/"})
    assert out.returncode == 1
    assert out.stderr.strip() == "cannot reach Marathon at http://127.0.0.1:1: connection refused"
