"""Image containers under seccomp: a real `lichen agent` running busybox with runc.

`unshare -U` is the probe: creating a user namespace needs no capability, so only the
seccomp profile stops it (as Docker's default does).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.agent_harness import (
    PYTHON,
    REPO,
    AgentProcess,
    FakeMaster,
    remove_tree,
    wait_for,
)
from tests.integration.agent.test_oci_agent import cleanup_oci, image_task, sandbox_of
from tests.support.images import Registry

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("runc", "skopeo", "docker-registry")),
    reason="needs runc, skopeo and docker-registry",
)

PROBE = ("busybox grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; "
         "busybox unshare -U true; echo unshare=$?")


@pytest.fixture
def start_agent(master: FakeMaster, tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(*flags: str) -> AgentProcess:
        agent = AgentProcess(master, tmp_path / "agent", *flags)
        started.append(agent)
        agent.start()
        wait_for(master.connected, what="stream")
        return agent

    try:
        yield start
    finally:
        for agent in started:
            agent.kill()
            cleanup_oci(agent.work_dir)
            agent.cleanup()
        remove_tree(tmp_path)


def run_probe(master: FakeMaster, agent: AgentProcess, registry: Registry, task_id: str,
              *, privileged: bool = False) -> tuple[str, str]:
    task = image_task(task_id, PROBE, f"{registry.addr}/test/busybox:v1", kind="DOCKER" if privileged else "MESOS")
    if privileged:
        task["container"]["docker"]["privileged"] = True
    master.run_task(task)
    return wait_probe(master, agent, task_id)


def wait_probe(master: FakeMaster, agent: AgentProcess, task_id: str) -> tuple[str, str]:
    final = wait_for(lambda: next((s for s in master.statuses(task_id)
                                   if s["state"] in ("TASK_FINISHED", "TASK_FAILED", "TASK_ERROR")), None),
                     60, f"{task_id} to end")
    sandbox = sandbox_of(agent, task_id)
    stdout, stderr = (sandbox / "stdout").read_text(), (sandbox / "stderr").read_text()
    assert final["state"] == "TASK_FINISHED", (final.get("message"), stdout, stderr)
    return stdout, stderr


def test_default_profile_filters_and_refuses_user_namespaces(
        master: FakeMaster, start_agent: Callable[..., AgentProcess], registry: Registry) -> None:
    agent = start_agent()
    stdout, stderr = run_probe(master, agent, registry, "default")
    assert "NoNewPrivs:\t1\n" in stdout
    assert "Seccomp:\t2\n" in stdout
    assert "unshare=1\n" in stdout
    assert "Operation not permitted" in stderr


def test_unconfined_containers_have_no_filter_and_may_unshare(
        master: FakeMaster, start_agent: Callable[..., AgentProcess], registry: Registry) -> None:
    agent = start_agent("--seccomp-profile", "unconfined")
    stdout, _ = run_probe(master, agent, registry, "unconfined")
    assert "Seccomp:\t0\n" in stdout
    assert "NoNewPrivs:\t1\n" in stdout
    assert "unshare=0\n" in stdout          # so the default profile, not a capability, refused it


def _mask(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in {status!r}")


def _bounding_set() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


def test_privileged_containers_are_unconfined(
        master: FakeMaster, start_agent: Callable[..., AgentProcess], registry: Registry) -> None:
    agent = start_agent("--allow-privileged")
    task = image_task("privileged", PROBE, f"{registry.addr}/test/busybox:v1", kind="DOCKER")
    task["container"]["docker"]["privileged"] = True
    master.run_task(task)
    config = wait_for(lambda: _bundle_config(agent, "privileged"), 60, "the privileged container's bundle")
    assert "seccomp" not in config["linux"]
    assert config["process"]["noNewPrivileges"] is False
    # It gets every capability the agent holds (this host's agent lacks CAP_SYS_RESOURCE).
    stdout, _ = wait_probe(master, agent, "privileged")
    assert "Seccomp:\t0\n" in stdout
    assert "NoNewPrivs:\t0\n" in stdout
    assert _mask(stdout, "CapEff") == _bounding_set()


def _bundle_config(agent: AgentProcess, task_id: str) -> dict[str, Any] | None:
    try:
        path = sandbox_of(agent, task_id) / ".lichen" / "oci" / "bundle" / "config.json"
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (StopIteration, OSError, ValueError):
        return None


def test_a_docker_format_profile_file_is_applied(
        master: FakeMaster, start_agent: Callable[..., AgentProcess], registry: Registry, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }))
    agent = start_agent("--seccomp-profile", str(profile))
    stdout, stderr = run_probe(master, agent, registry, "custom")
    assert "Seccomp:\t2\n" in stdout
    assert "unshare=1\n" in stdout
    assert "Invalid argument" in stderr


def test_a_bad_profile_file_stops_the_agent_at_start(tmp_path: Path) -> None:
    profile = tmp_path / "bad.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"]}]}))
    result = subprocess.run(
        [PYTHON, "-c", "from lichen.cli.main import cli; cli(prog_name='lichen')", "agent",
         "--master", "127.0.0.1:9", "--port", "0", "--work-dir", str(tmp_path / "agent"),
         "--seccomp-profile", str(profile)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert f"--seccomp-profile: {profile}: syscalls[0].action: is missing" in result.stderr
    assert not (tmp_path / "agent" / "agent.addr").exists()
