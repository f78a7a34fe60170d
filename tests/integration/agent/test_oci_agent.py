"""`lichen agent` running image tasks on the oci containerizer, images from a loopback registry."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.agent_harness import (
    AgentProcess,
    FakeMaster,
    command_task,
    remove_tree,
    wait_for,
)
from tests.support.images import Registry

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("runc", "skopeo", "docker-registry")),
    reason="needs runc, skopeo and docker-registry",
)


@pytest.fixture
def agent(master: FakeMaster, tmp_path: Path) -> Iterator[AgentProcess]:
    a = AgentProcess(master, tmp_path / "agent")
    try:
        a.start()
        yield a
    finally:
        a.kill()
        cleanup_oci(a.work_dir)
        a.cleanup()
        remove_tree(tmp_path)


def cleanup_oci(work_dir: Path) -> None:
    """runc delete every container of this work dir, unmount their rootfs."""
    state = work_dir / "oci-state"
    if state.is_dir():
        for entry in state.iterdir():
            subprocess.run(["runc", "--root", str(state), "delete", "--force", entry.name],
                           check=False, capture_output=True, timeout=30)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target.startswith(str(work_dir.resolve())):
            subprocess.run(["umount", "-l", target], check=False)


def image_task(task_id: str, command: str, image: str, *, mem: float = 64, kind: str = "MESOS") -> dict[str, Any]:
    task = command_task(task_id, command)
    if kind == "MESOS":
        container = {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": image}}}}
    else:
        container = {"type": "DOCKER", "docker": {"image": image}}
    task["container"] = container
    for r in task.get("resources", []):
        if r.get("name") == "mem":
            r["scalar"]["value"] = mem
    if not any(r.get("name") == "mem" for r in task.get("resources", [])):
        task.setdefault("resources", []).append({"name": "mem", "type": "SCALAR", "scalar": {"value": mem}})
    return task


def sandbox_of(agent: AgentProcess, task_id: str) -> Path:
    return next(agent.work_dir.glob(f"slaves/*/frameworks/fw-1/executors/{task_id}/runs/latest"))


def test_mesos_image_task_finishes_with_output(master: FakeMaster, agent: AgentProcess, registry: Registry) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(image_task("t1", "echo in-image $MESOS_SANDBOX", f"{registry.addr}/test/busybox:v1"))
    final = master.wait_state("t1", "TASK_FINISHED", timeout=60)
    assert final["message"] == "Command exited with status 0"
    assert (sandbox_of(agent, "t1") / "stdout").read_text() == "in-image /mnt/mesos/sandbox\n"


def test_docker_type_oom_reports_memory_limitation(master: FakeMaster, agent: AgentProcess, registry: Registry) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(image_task("t2", "dd if=/dev/zero of=/dev/null bs=128M count=1",
                               f"{registry.addr}/test/busybox:v1", mem=32, kind="DOCKER"))
    final = master.wait_state("t2", "TASK_FAILED", timeout=60)
    assert final["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY", json.dumps(final)
    # A DOCKER container on an agent without a Docker Engine runs on oci, and says so.
    running = [s for s in master.statuses("t2") if s["state"] == "TASK_RUNNING"]
    assert running and "no Docker Engine" in running[0].get("message", ""), running


def test_unknown_image_fails_the_task(master: FakeMaster, agent: AgentProcess, registry: Registry) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(image_task("t3", "true", f"{registry.addr}/test/nope:v1"))
    final = master.wait_state("t3", "TASK_FAILED", timeout=60)
    assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "nope" in final["message"]


def test_agent_restart_keeps_running_container(master: FakeMaster, agent: AgentProcess, registry: Registry) -> None:
    wait_for(master.connected, what="stream")
    master.run_task(image_task("t4", "echo start; sleep 3; echo end", f"{registry.addr}/test/busybox:v1"))
    master.wait_state("t4", "TASK_RUNNING", timeout=60)
    agent.signal(signal.SIGTERM)
    agent.wait_exit()
    agent.start()
    final = master.wait_state("t4", "TASK_FINISHED", timeout=60)
    assert final["message"] == "Command exited with status 0"
    assert (sandbox_of(agent, "t4") / "stdout").read_text() == "start\nend\n"
