"""The oci containerizer against real runc, overlayfs and cgroups (root only).

Images come from `DirImages`, a second implementation of the image store's surface that
serves a busybox layer built in a temp dir, so these tests need no registry.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lichen.agent.containerizer import cgroups as cg
from lichen.agent.containerizer.base import LaunchError, LaunchSpec
from lichen.agent.containerizer.oci import OciContainerizer, _is_mounted
from tests.integration.agent.dir_images import (
    BUSYBOX,
    Config,
    DirImages,
    busybox_layer,
    remove_leftovers,
    run,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None or not Path(BUSYBOX).exists(),
    reason="needs root, runc and busybox",
)


def image_container(name: str, **docker: Any) -> dict[str, Any]:
    return {"type": "DOCKER", "docker": {"image": name, **docker}}


@dataclass
class Env:
    tmp: Path
    root: str
    images: DirImages
    ids: list[tuple[Path, str]] = field(default_factory=list)

    def containerizer(self) -> OciContainerizer:
        return OciContainerizer(self.tmp / "work", self.images, cgroups_root=self.root)

    def spec(self, command: str | None, image: str = "busybox", **kwargs: Any) -> LaunchSpec:
        container_id = str(uuid.uuid4())
        sandbox = self.tmp / "sandboxes" / container_id
        sandbox.mkdir(parents=True)
        self.ids.append((sandbox, container_id))
        argv = ["/bin/sh", "-c", command] if command is not None else [""]
        container = kwargs.pop("container", image_container(image))
        env = {"PATH": os.environ.get("PATH", "/bin"), "TASK_VAR": "1", **kwargs.pop("env", {})}
        return LaunchSpec(container_id, sandbox, argv, env, container=container,
                          shell=command is not None, **kwargs)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    root = f"lichen-test-oci-{uuid.uuid4().hex[:8]}"
    images = DirImages(busybox_layer(tmp_path, applets=("id", "env", "pwd", "dd", "ls"), dirs=("srv",),
                                     passwd="root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
                                     group="root:x:0:\napp:x:1000:\n"))
    images.add("busybox", Config())
    e = Env(tmp_path, root, images)
    try:
        yield e
    finally:
        remove_leftovers(tmp_path / "work" / "oci-state", e.ids, root)


def launch_and_wait(env: Env, spec: LaunchSpec) -> Any:
    async def go() -> Any:
        c = env.containerizer()
        await c.launch(spec)
        try:
            return await c.wait(spec.container_id)
        finally:
            await c.destroy(spec.container_id)

    return run(go())


def test_echo_lands_in_sandbox_stdout(env: Env) -> None:
    spec = env.spec("echo hello from busybox")
    termination = launch_and_wait(env, spec)
    assert termination.exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "hello from busybox\n"


def test_exit_code_is_the_containers(env: Env) -> None:
    termination = launch_and_wait(env, env.spec("exit 3"))
    assert (termination.exit_code, termination.signal) == (3, None)
    assert termination.message == "Command exited with status 3"


def test_destroy_unmounts_and_removes_cgroups(env: Env) -> None:
    spec = env.spec("true")
    launch_and_wait(env, spec)
    assert not _is_mounted(spec.sandbox / ".lichen" / "oci" / "rootfs")
    assert not any((m / env.root / spec.container_id).exists() for m in Path("/sys/fs/cgroup").iterdir())
    assert env.images.held == {}


def test_image_env_workdir_and_sandbox_mount(env: Env) -> None:
    env.images.add("cfg", Config(env=["PATH=/bin", "FROM_IMAGE=yes", "TASK_VAR=image"], working_dir="/srv"))
    spec = env.spec('echo "$FROM_IMAGE $TASK_VAR $MESOS_SANDBOX $(pwd)" > $MESOS_SANDBOX/out', image="cfg")
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "out").read_text() == "yes 1 /mnt/mesos/sandbox /srv\n"


def test_user_from_image(env: Env) -> None:
    env.images.add("app", Config(user="app"))
    spec = env.spec("id -u; id -g", image="app")
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "1000\n1000\n"


def test_entrypoint_and_cmd_when_task_has_no_command(env: Env) -> None:
    env.images.add("ep", Config(entrypoint=["/bin/echo"], cmd=["from", "cmd"]))
    spec = env.spec(None, image="ep")
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "from cmd\n"


def test_agent_files_are_hidden_from_the_container(env: Env) -> None:
    spec = env.spec("ls -A /mnt/mesos/sandbox/.lichen | wc -l; echo x > /mnt/mesos/sandbox/.lichen/status")
    termination = launch_and_wait(env, spec)
    assert termination.exit_code != 0           # read-only
    assert (spec.sandbox / "stdout").read_text().split() == ["0"]


def test_memory_limit_kills_with_oom(env: Env) -> None:
    spec = env.spec("dd if=/dev/zero of=/dev/null bs=128M count=1", mem_mb=32)
    termination = launch_and_wait(env, spec)
    assert termination.oom_killed
    assert termination.message.startswith("Memory limit exceeded")


def test_cpus_become_shares_and_a_quota_on_the_containers_cgroup(env: Env) -> None:
    # The quota is set once runc has created the container (its own set-up is not
    # throttled), on the cgroup above the runtime's, where it bounds every process.
    spec = env.spec("cat /proc/self/cgroup; sleep 30", cpus=0.25)

    async def go() -> tuple[int, int, int | None]:
        c = env.containerizer()
        await c.launch(spec)
        try:
            cgroup = cg.detect(env.root)
            assert cgroup is not None
            cpu = cgroup.find(spec.container_id).cpu
            assert cpu is not None
            if cgroup.version == 1:
                quota = int((cpu / "cpu.cfs_quota_us").read_text())
                shares = int((cpu / "cpu.shares").read_text())
                inner = int((cpu / "ctr" / "cpu.cfs_quota_us").read_text())
            else:
                quota = int((cpu / "cpu.max").read_text().split()[0])
                shares = int((cpu / "cpu.weight").read_text())
                inner = None
            return quota, shares, inner
        finally:
            await c.destroy(spec.container_id)

    quota, shares, inner = run(go())
    assert quota == 25_000
    assert shares in (256, cg.cpu_weight(256))
    assert inner in (-1, None)          # the runtime's own cgroup adds no second limit


def test_kill_with_grace_sends_term_first(env: Env) -> None:
    spec = env.spec("trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done")

    async def go() -> Any:
        c = env.containerizer()
        await c.launch(spec)
        try:
            deadline = time.monotonic() + 20
            while "ready" not in (spec.sandbox / "stdout").read_text():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await c.kill(spec.container_id, 5.0)
            return await c.wait(spec.container_id)
        finally:
            await c.destroy(spec.container_id)

    termination = run(go())
    assert termination.exit_code == 7
    assert "got-term" in (spec.sandbox / "stdout").read_text()


def test_kill_escalates_to_sigkill(env: Env) -> None:
    spec = env.spec("trap '' TERM; echo ready; while true; do sleep 0.1; done")

    async def go() -> Any:
        c = env.containerizer()
        await c.launch(spec)
        try:
            deadline = time.monotonic() + 20
            while "ready" not in (spec.sandbox / "stdout").read_text():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await c.kill(spec.container_id, 0.3)
            return await c.wait(spec.container_id)
        finally:
            await c.destroy(spec.container_id)

    termination = run(go())
    assert termination.signal == 9


def test_recover_after_restart_keeps_running_container(env: Env) -> None:
    spec = env.spec("echo ready; sleep 1; echo done")

    async def go() -> Any:
        await env.containerizer().launch(spec)       # that containerizer is "the old agent"
        env.images.held.clear()                      # a new agent's store holds nothing yet
        c = env.containerizer()
        try:
            assert await c.recover({spec.container_id: spec.sandbox}) == {spec.container_id}
            # The recovered container holds its image again, so GC keeps its layers.
            assert spec.container_id in env.images.held
            return await c.wait(spec.container_id)
        finally:
            await c.destroy(spec.container_id)

    termination = run(go())
    assert termination.exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "ready\ndone\n"


def test_unknown_image_fails_launch_cleanly(env: Env) -> None:
    spec = env.spec("true", image="nope")
    with pytest.raises(LaunchError, match="'nope'"):
        run(env.containerizer().launch(spec))


def test_user_network_is_refused_for_now(env: Env) -> None:
    spec = env.spec("true", container=image_container("busybox", network="USER"))
    with pytest.raises(LaunchError, match="USER"):
        run(env.containerizer().launch(spec))
    assert not _is_mounted(spec.sandbox / ".lichen" / "oci" / "rootfs")


def test_none_network_has_only_loopback(env: Env) -> None:
    spec = env.spec("ls /sys/class/net", container=image_container("busybox", network="NONE"))
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text().split() == ["lo"]
