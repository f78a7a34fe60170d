"""The client verbs (`lichen app`, `task`, `deployment`) against a real lichen marathon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.marathon.stack import Stack
from tests.support import wait_for


def lichen(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env_args = ["--marathon", stack.marathon.url]
    group, rest = args[0], list(args[1:])
    argv = [sys.executable, "-m", "lichen.cli.main", group, *env_args, *rest]
    if group == "task":
        argv[4:4] = ["--master", stack.master.url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, input=stdin, check=False)


def test_app_verbs_drive_a_real_marathon(stack: Stack, tmp_path: Path) -> None:
    spec = tmp_path / "app.json"
    spec.write_text(json.dumps({"id": "/cli", "cmd": "echo hello-from-cli; sleep 3600", "cpus": 0.1,
                                "mem": 16, "instances": 2}))
    r = lichen(stack, "app", "add", str(spec))
    assert r.returncode == 0, r.stderr
    assert stack.settled("cli", 2)   # `app add` waited for its deployment
    r = lichen(stack, "app", "list")
    assert r.returncode == 0 and "/cli" in r.stdout
    listed = json.loads(lichen(stack, "app", "list", "--json").stdout)
    assert [a["id"] for a in listed["apps"]] == ["/cli"]
    r = lichen(stack, "app", "scale", "/cli", "3")
    assert r.returncode == 0, r.stderr
    assert stack.settled("cli", 3)
    r = lichen(stack, "app", "update", "/cli", "instances=1")
    assert r.returncode == 0, r.stderr
    assert stack.settled("cli", 1)
    tasks = json.loads(lichen(stack, "task", "list", "/cli", "--json").stdout)["tasks"]
    assert len(tasks) == 1
    log = wait_for(lambda: (p := lichen(stack, "task", "log", tasks[0]["id"])).returncode == 0
                   and "hello-from-cli" in p.stdout and p, 30, "task log")
    assert "hello-from-cli" in log.stdout
    assert len(json.loads(lichen(stack, "app", "versions", "/cli", "--json").stdout)["versions"]) == 3
    r = lichen(stack, "app", "remove", "/cli")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not stack.client.list_apps(), 30, "app removed")
    r = lichen(stack, "app", "show", "/cli")
    assert r.returncode == 1 and "does not exist" in r.stderr
