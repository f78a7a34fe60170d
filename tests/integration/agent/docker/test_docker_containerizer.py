"""The docker containerizer against a real Docker Engine (root only; see conftest.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
import requests

from lichen.agent.containerizer.base import LaunchError, LaunchSpec, Termination
from lichen.agent.containerizer.docker import LABEL_CONTAINER, DockerContainerizer, create_args
from tests.integration.agent.docker.conftest import BUSYBOX, ECHO_ENTRYPOINT
from tests.support.dockerd import DockerEngine
from tests.support.wait import wait_for

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 90) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@dataclass
class Env:
    tmp: Path
    engine: DockerEngine
    ids: list[str] = field(default_factory=list)

    def containerizer(self, **kwargs: Any) -> DockerContainerizer:
        return DockerContainerizer(self.tmp / "work", socket=self.engine.socket, **kwargs)

    def spec(self, command: str | None, image: str = BUSYBOX, **kwargs: Any) -> LaunchSpec:
        container_id = str(uuid.uuid4())
        sandbox = self.tmp / "sandboxes" / container_id
        sandbox.mkdir(parents=True)
        self.ids.append(container_id)
        argv = ["/bin/sh", "-c", command] if command is not None else [""]
        docker_info = {"image": image, **kwargs.pop("docker", {})}
        container = {"type": "DOCKER", "docker": docker_info, **kwargs.pop("container", {})}
        env = {**os.environ, "TASK_VAR": "1", **kwargs.pop("env", {})}
        return LaunchSpec(container_id, sandbox, argv, env, container=container,
                          shell=command is not None, **kwargs)


@pytest.fixture
def env(tmp_path: Path, docker_engine: DockerEngine) -> Iterator[Env]:
    e = Env(tmp_path, docker_engine)
    try:
        yield e
    finally:
        client = docker.DockerClient(base_url=docker_engine.socket, version="auto")
        try:
            for c in client.api.containers(all=True, filters={"label": LABEL_CONTAINER}):
                if c["Labels"][LABEL_CONTAINER] in e.ids:
                    client.api.remove_container(c["Id"], force=True)
        finally:
            client.close()


def launch_and_wait(env: Env, spec: LaunchSpec, **kwargs: Any) -> Termination:
    async def go() -> Termination:
        c = env.containerizer(**kwargs)
        try:
            await c.launch(spec)
            try:
                return await c.wait(spec.container_id)
            finally:
                await c.destroy(spec.container_id)
        finally:
            await c.close()

    return run(go())


def launch_error(env: Env, spec: LaunchSpec, **kwargs: Any) -> str:
    async def go() -> str:
        c = env.containerizer(**kwargs)
        try:
            with pytest.raises(LaunchError) as e:
                await c.launch(spec)
            return str(e.value)
        finally:
            await c.close()

    return run(go())


def test_echo_lands_in_sandbox_stdout_and_stderr(env: Env) -> None:
    spec = env.spec("echo hello from docker; echo oops >&2")
    termination = launch_and_wait(env, spec)
    assert termination.exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "hello from docker\n"
    assert (spec.sandbox / "stderr").read_text() == "oops\n"


def test_exit_code_is_the_containers(env: Env) -> None:
    termination = launch_and_wait(env, env.spec("exit 3"))
    assert (termination.exit_code, termination.oom_killed) == (3, False)
    assert termination.message == "Container exited with status 3"


def test_task_env_and_sandbox_mount(env: Env) -> None:
    spec = env.spec('echo "$TASK_VAR $MESOS_SANDBOX" > $MESOS_SANDBOX/out; ls -A $MESOS_SANDBOX/.lichen | wc -l',
                    env={"TASK_VAR": "from-task"})
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "out").read_text() == "from-task /mnt/mesos/sandbox\n"
    assert (spec.sandbox / "stdout").read_text().strip() == "0"     # our files are hidden


def test_parameters_set_env_workdir_and_label(env: Env) -> None:
    parameters = [{"key": "env", "value": "EXTRA=yes"}, {"key": "workdir", "value": "/tmp"},
                  {"key": "label", "value": "team=core"}, {"key": "hostname", "value": "box1"}]
    spec = env.spec('echo "$EXTRA $(pwd) $(cat /etc/hostname)"', docker={"parameters": parameters})
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "yes /tmp box1\n"


def test_unknown_parameters_are_refused_by_name(env: Env) -> None:
    spec = env.spec("true", docker={"parameters": [{"key": "bogus", "value": "1"}, {"key": "name", "value": "x"}]})
    assert launch_error(env, spec) == "unsupported docker parameters: 'bogus', 'name'"


def test_privileged_is_refused_unless_allowed(env: Env) -> None:
    spec = env.spec("true", docker={"privileged": True})
    assert "--allow-privileged" in launch_error(env, spec)
    # This machine's own sandbox cannot grant a privileged container its capabilities, so
    # with the flag we only check what the engine is asked for.
    assert create_args(spec, allow_privileged=True, host_env=os.environ)["privileged"] is True


def test_volumes_relative_to_sandbox_and_read_only(env: Env, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from host\n")
    volumes = [{"host_path": str(shared), "container_path": "/data", "mode": "RO"},
               {"host_path": "scratch", "container_path": "/scratch", "mode": "RW"}]
    spec = env.spec("cat /data/in; echo w > /scratch/f; echo x > /data/nope || echo refused",
                    container={"volumes": volumes})
    (spec.sandbox / "scratch").mkdir()
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "from host\nrefused\n"
    assert (spec.sandbox / "scratch" / "f").read_text() == "w\n"


def test_shell_command_replaces_the_image_entrypoint(env: Env) -> None:
    spec = env.spec("echo plain", image=ECHO_ENTRYPOINT)
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "plain\n"


def test_no_command_runs_entrypoint_and_cmd(env: Env) -> None:
    spec = env.spec(None, image=ECHO_ENTRYPOINT)
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "ep from cmd\n"


def test_arguments_replace_the_image_cmd(env: Env) -> None:
    spec = env.spec(None, image=ECHO_ENTRYPOINT)
    spec = LaunchSpec(spec.container_id, spec.sandbox, ["", "given", "args"], spec.env,
                      container=spec.container, shell=False)
    assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "ep given args\n"


def test_kill_stops_with_the_grace_period(env: Env) -> None:
    spec = env.spec("trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done")

    async def go() -> Termination:
        c = env.containerizer()
        try:
            await c.launch(spec)
            await asyncio.to_thread(wait_for, lambda: "ready" in (spec.sandbox / "stdout").read_text(),
                                    30, "the task to start")
            await c.kill(spec.container_id, 5.0)
            await c.kill(spec.container_id, 5.0)          # twice is fine
            termination = await c.wait(spec.container_id)
            await c.destroy(spec.container_id)
            await c.destroy(spec.container_id)
            return termination
        finally:
            await c.close()

    termination = run(go())
    assert termination.exit_code == 7
    assert "got TERM" in (spec.sandbox / "stdout").read_text()


def test_kill_after_grace_uses_sigkill(env: Env) -> None:
    spec = env.spec("trap '' TERM; echo ready; while true; do sleep 0.1; done")

    async def go() -> Termination:
        c = env.containerizer()
        try:
            await c.launch(spec)
            await asyncio.to_thread(wait_for, lambda: "ready" in (spec.sandbox / "stdout").read_text(),
                                    30, "the task to start")
            await c.kill(spec.container_id, 1.0)
            termination = await c.wait(spec.container_id)
            await c.destroy(spec.container_id)
            return termination
        finally:
            await c.close()

    assert run(go()).exit_code == 137      # Docker's 128 + SIGKILL


def test_memory_limit_is_oom_killed(env: Env) -> None:
    spec = env.spec("dd if=/dev/zero bs=64M count=4 | cat > /dev/null; head -c 100000000 /dev/zero | tail > /dev/null",
                    mem_mb=32)
    termination = launch_and_wait(env, spec)
    assert termination.oom_killed
    assert termination.message.startswith("Memory limit exceeded")


def test_bridge_port_mapping_answers_on_the_host_port(env: Env) -> None:
    host_port = _free_port()
    spec = env.spec("mkdir -p /www; echo hi from httpd > /www/index.html; exec httpd -f -p 8080 -h /www",
                    docker={"network": "BRIDGE",
                            "port_mappings": [{"host_port": host_port, "container_port": 8080, "protocol": "tcp"}]})

    async def go() -> str:
        c = env.containerizer()
        try:
            await c.launch(spec)
            response = await asyncio.to_thread(
                wait_for, lambda: _get(f"http://127.0.0.1:{host_port}/"), 30, "httpd on the host port")
            await c.kill(spec.container_id, 1.0)
            await c.wait(spec.container_id)
            await c.destroy(spec.container_id)
            return response
        finally:
            await c.close()

    assert run(go()) == "hi from httpd\n"


def test_recover_after_the_containerizer_is_recreated(env: Env) -> None:
    spec = env.spec("echo before; while [ ! -e $MESOS_SANDBOX/go ]; do sleep 0.1; done; echo after; exit 4")

    async def first() -> None:
        c = env.containerizer()
        await c.launch(spec)
        await asyncio.to_thread(wait_for, lambda: "before" in (spec.sandbox / "stdout").read_text(),
                                30, "the task to start")
        await c.close()                     # the agent goes away; the container stays

    async def second() -> tuple[set[str], Termination]:
        c = env.containerizer()
        try:
            found = await c.recover({spec.container_id: spec.sandbox, "unknown": env.tmp / "nothing"})
            (spec.sandbox / "go").touch()
            termination = await c.wait(spec.container_id)
            await c.destroy(spec.container_id)
            return found, termination
        finally:
            await c.close()

    run(first())
    found, termination = run(second())
    assert found == {spec.container_id}
    assert termination.exit_code == 4
    assert (spec.sandbox / "stdout").read_text() == "before\nafter\n"   # resumed, nothing twice


def test_recover_finds_an_ended_container_after_destroy(env: Env) -> None:
    spec = env.spec("exit 5")
    launch_and_wait(env, spec)

    async def go() -> tuple[set[str], Termination]:
        c = env.containerizer()
        try:
            found = await c.recover({spec.container_id: spec.sandbox})
            return found, await c.wait(spec.container_id)
        finally:
            await c.close()

    found, termination = run(go())
    assert found == {spec.container_id} and termination.exit_code == 5


def test_unknown_image_in_a_registry_is_a_launch_error(env: Env) -> None:
    from tests.support.images import start_registry

    with start_registry(env.tmp / "registry") as registry:
        message = launch_error(env, env.spec("true", image=f"{registry.addr}/nothing/here:1"))
    assert "not found in its registry" in message


def test_image_is_pulled_from_a_loopback_registry(env: Env) -> None:
    from tests.support.images import busybox_image, start_registry

    busybox_image(env.tmp / "layout", "latest")
    with start_registry(env.tmp / "registry") as registry:
        registry.push(env.tmp / "layout", "latest", "pulled/busybox:1")
        spec = env.spec("echo pulled", image=f"{registry.addr}/pulled/busybox:1", docker={"force_pull_image": True})
        assert launch_and_wait(env, spec).exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == "pulled\n"


def test_registry_down_is_a_launch_error(env: Env) -> None:
    message = launch_error(env, env.spec("true", image=f"127.0.0.1:{_free_port()}/busybox:latest"))
    assert "unreachable" in message


def test_bad_tag_is_a_launch_error(env: Env) -> None:
    message = launch_error(env, env.spec("true", image="busybox:bad tag!"))
    assert message.startswith("bad image reference 'busybox:bad tag!'")


def test_force_pull_of_a_local_only_image_fails(env: Env) -> None:
    spec = env.spec("true", docker={"force_pull_image": True}, image="127.0.0.1:1/lichen/busybox:latest")
    assert "unreachable" in launch_error(env, spec)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    response = requests.get(url, timeout=2)
    return response.text if response.ok else ""
