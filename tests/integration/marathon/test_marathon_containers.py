"""A Marathon app naming a Docker image runs on the agents' `oci` containerizer: the image
is pulled from a registry on loopback and run by runc."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.marathon.stack import Stack, sandbox_file
from tests.support import wait_for
from tests.support.images import Registry, busybox_image, start_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with start_registry(tmp_path / "registry") as reg:
        layout = tmp_path / "layout"
        busybox_image(layout, "1", env=["GREETING=hello-from-image"])
        reg.push(layout, "1", "tools/busybox:1")
        yield reg


@pytest.mark.parametrize("container_type", ["MESOS", "DOCKER"])
def test_app_with_an_image_runs_in_a_container(stack: Stack, registry: Registry, container_type: str) -> None:
    image = f"{registry.addr}/tools/busybox:1"
    container = ({"type": "MESOS", "docker": {"image": image}} if container_type == "MESOS"
                 else {"type": "DOCKER", "docker": {"image": image}})
    app = {"id": "/boxed", "instances": 2, "cpus": 0.1, "mem": 32, "container": container,
           "cmd": 'echo "$GREETING from $MARATHON_APP_ID in $(cat /etc/hostname 2>/dev/null || echo box)"; '
                  "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p $PORT0 -h /tmp/www",
           "portDefinitions": [{"port": 0}],
           "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30}]}
    r = requests.post(stack.marathon.url + "/v2/apps", json=app, timeout=10)
    assert r.status_code == 201, r.text

    def healthy() -> bool:
        a = requests.get(stack.marathon.url + "/v2/apps/boxed", timeout=5).json()["app"]
        return a["tasksHealthy"] == 2 and not a["deployments"]

    wait_for(healthy, 90, "two healthy container instances")
    tasks = requests.get(stack.marathon.url + "/v2/apps/boxed/tasks", timeout=5).json()["tasks"]
    for task in tasks:
        assert requests.get(f"http://127.0.0.1:{task['ports'][0]}/", timeout=5).text == "ok\n"
        out = wait_for(lambda t=task: sandbox_file(stack, t["id"]), 20, "output")
        assert out.startswith("hello-from-image from /boxed")
    requests.delete(stack.marathon.url + "/v2/apps/boxed", timeout=10)
    wait_for(lambda: not requests.get(stack.marathon.url + "/v2/apps", timeout=5).json()["apps"], 60, "removed")


def test_docker_app_runs_on_the_docker_containerizer(tmp_path: Path, start_master: Any, start_agent: Any,
                                                     daemons: Any) -> None:
    import tempfile

    from tests.support.daemons import start_daemon
    from tests.support.dockerd import start_dockerd

    engine = start_dockerd(Path(tempfile.mkdtemp(prefix="lichen-dockerd-")))
    try:
        engine.load_busybox("lichen-test/web:1")
        master = start_master(tmp_path, "--allocation-interval", "0.1")
        agent = start_agent(master.addr, tmp_path, "--containerizers", "process,oci,docker",
                            "--docker-socket", engine.socket)
        work = tmp_path / "marathon"
        marathon = daemons.add(start_daemon("marathon", work, [
            "--master", master.addr, "--port", "0", "--work-dir", str(work)]))
        app = {"id": "/dweb", "instances": 2, "cpus": 0.1, "mem": 32,
               "container": {"type": "DOCKER", "docker": {"image": "lichen-test/web:1"}},
               "cmd": 'echo "docker $MARATHON_APP_DOCKER_IMAGE"; mkdir -p /tmp/www && echo ok > /tmp/www/index.html'
                      " && exec httpd -f -p $PORT0 -h /tmp/www",
               "portDefinitions": [{"port": 0}],
               "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30}]}
        r = requests.post(marathon.url + "/v2/apps", json=app, timeout=10)
        assert r.status_code == 201, r.text
        def healthy() -> bool:
            # A task that fails (say its host port is taken by a process outside lichen)
            # is replaced, as Marathon does: only the end state counts.
            got = requests.get(marathon.url + "/v2/apps/dweb", timeout=5).json()["app"]
            return bool(got["tasksHealthy"] == 2)

        wait_for(healthy, 90, "two healthy docker instances")
        tasks = requests.get(marathon.url + "/v2/apps/dweb/tasks", timeout=5).json()["tasks"]
        for task in tasks:
            assert requests.get(f"http://127.0.0.1:{task['ports'][0]}/", timeout=5).text == "ok\n"
        import docker

        client = docker.DockerClient(base_url=engine.socket)
        try:
            assert len(client.containers.list(filters={"label": "lichen.container_id"})) == 2
        finally:
            client.close()
        requests.delete(marathon.url + "/v2/apps/dweb", timeout=10)
        wait_for(lambda: not requests.get(marathon.url + "/v2/apps", timeout=5).json()["apps"], 60, "removed")
        del agent
    finally:
        daemons.stop_all()
        engine.stop()


def test_bridge_app_answers_on_its_host_ports(stack: Stack, registry: Registry) -> None:
    image = f"{registry.addr}/tools/busybox:1"
    app = {"id": "/bridged", "instances": 3, "cpus": 0.1, "mem": 32,
           "container": {"type": "DOCKER", "docker": {"image": image, "network": "BRIDGE",
                                                       "portMappings": [{"containerPort": 8080, "hostPort": 0}]}},
           "cmd": "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"}
    r = requests.post(stack.marathon.url + "/v2/apps", json=app, timeout=10)
    assert r.status_code == 201, r.text

    def running() -> list[dict[str, object]]:
        a = requests.get(stack.marathon.url + "/v2/apps/bridged", timeout=5).json()["app"]
        return a["tasks"] if a["tasksRunning"] == 3 and not a["deployments"] else []

    try:
        tasks = wait_for(running, 90, "three bridged instances")
    except AssertionError as e:
        got = requests.get(stack.marathon.url + "/v2/apps/bridged", params={"embed": "app.lastTaskFailure"},
                           timeout=5).json()["app"]
        raise AssertionError(f"{e}; the app: {got}") from None
    got = requests.get(stack.marathon.url + "/v2/apps/bridged", timeout=5).json()["app"]
    assert got["networks"] == [{"mode": "container/bridge"}]
    assert 10000 <= got["container"]["portMappings"][0]["servicePort"] <= 20000
    answers = set()
    for task in tasks:
        port = task["ports"][0]
        text = wait_for(lambda p=port: _get(f"http://127.0.0.1:{p}/"), 20, f"an answer on host port {port}")
        answers.add(text)
    assert len(answers) == 3   # three containers, three hostnames
    requests.delete(stack.marathon.url + "/v2/apps/bridged", timeout=10)
    wait_for(lambda: not requests.get(stack.marathon.url + "/v2/apps", timeout=5).json()["apps"], 60, "removed")


def _get(url: str) -> str:
    try:
        r = requests.get(url, timeout=2)
    except requests.RequestException:
        return ""
    return r.text if r.status_code == 200 else ""
