"""BRIDGE networking of the oci containerizer against real runc, ip and busybox (root only).

Each test uses its own bridge (`lct<hex>`) and pool dir, and checks at the end that no
namespace, veth, bridge, mount or listener of its own is left.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lichen.agent.containerizer import oci_network as on
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
from tests.support.wait import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None or shutil.which("ip") is None
    or not Path(BUSYBOX).exists(),
    reason="needs root, runc, ip and busybox",
)


def _images(tmp_path: Path) -> DirImages:
    images = DirImages(busybox_layer(tmp_path, applets=("httpd", "ip", "hostname", "wget", "timeout"),
                                     dirs=("www",)))
    images.add("busybox", Config(env=["PATH=/bin"]))
    return images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def links(kind: str) -> str:
    return subprocess.run(["ip", "-o", "link", "show", "type", kind], check=False,
                          capture_output=True, text=True).stdout


@dataclass
class Env:
    tmp: Path
    root: str
    bridge: on.BridgeNetwork
    images: DirImages
    ids: list[tuple[Path, str]] = field(default_factory=list)

    def containerizer(self) -> OciContainerizer:
        return OciContainerizer(self.tmp / "work", self.images, cgroups_root=self.root, bridge=self.bridge)

    def spec(self, command: str, mappings: list[dict[str, Any]]) -> LaunchSpec:
        container_id = str(uuid.uuid4())
        sandbox = self.tmp / "sandboxes" / container_id
        sandbox.mkdir(parents=True)
        (sandbox / "index.html").write_text(f"hello from {container_id}\n")
        self.ids.append((sandbox, container_id))
        container = {"type": "DOCKER", "docker": {"image": "busybox", "network": "BRIDGE",
                                                  "port_mappings": mappings}}
        return LaunchSpec(container_id, sandbox, ["/bin/sh", "-c", command], {"PATH": "/bin"},
                          container=container, shell=True)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    root = f"lichen-test-oci-{uuid.uuid4().hex[:8]}"
    bridge = on.BridgeNetwork(f"lct{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "net")
    e = Env(tmp_path, root, bridge, _images(tmp_path))
    try:
        yield e
    finally:
        remove_leftovers(tmp_path / "work" / "oci-state", e.ids, root)
        for sandbox, _ in e.ids:
            plan = on.load_plan(sandbox / ".lichen" / "oci-network.json")
            if plan is not None:
                bridge.teardown(plan)
        subprocess.run(["ip", "link", "del", bridge.bridge], check=False, capture_output=True)
        on._remove_nat(bridge.bridge, None)          # a test that failed half-way


def http_get(port: int, deadline: float) -> str:
    """GET / on the host port, retrying while the server in the container starts."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if data:
                return data.decode(errors="replace")
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"no answer on port {port}: {last}")


def assert_gone(env: Env, c: OciContainerizer, plans: list[on.NetworkPlan]) -> None:
    for plan in plans:
        assert plan.host_veth not in links("veth")
        assert not Path(plan.netns_path).exists()
        assert not c._proxies.running(plan.container_id)
        for m in plan.mappings:
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", m.host_port)) != 0
    assert env.bridge.bridge not in links("bridge")


HTTPD = "exec httpd -f -p 8080 -h /mnt/mesos/sandbox"


def test_two_bridge_containers_answer_on_their_host_ports(env: Env) -> None:
    async def scenario() -> None:
        c = env.containerizer()
        ports = [free_port(), free_port()]
        specs = [env.spec(HTTPD, [{"host_port": p, "container_port": 8080, "protocol": "tcp"}]) for p in ports]
        plans = []
        try:
            for spec in specs:
                await c.launch(spec)
                plan = c._containers[spec.container_id].network
                assert plan is not None
                plans.append(plan)
            assert plans[0].address != plans[1].address
            assert env.bridge.bridge in links("bridge")
            deadline = time.monotonic() + 20
            for spec, port in zip(specs, ports):
                answer = await asyncio.to_thread(http_get, port, deadline)
                assert "200 OK" in answer and f"hello from {spec.container_id}" in answer
        finally:
            for spec in specs:
                await c.destroy(spec.container_id)
        assert_gone(env, c, plans)

    run(scenario())


def test_the_container_sees_its_own_network(env: Env) -> None:
    async def scenario() -> None:
        c = env.containerizer()
        spec = env.spec("ip -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf; "
                        "echo name=$(cat /etc/hostname)=$(hostname)", [])
        try:
            await c.launch(spec)
            plan = c._containers[spec.container_id].network
            assert plan is not None
            ended = await c.wait(spec.container_id)
            assert ended.exit_code == 0
            out = (spec.sandbox / "stdout").read_text()
            assert f"{plan.address}/16" in out and f"default via {plan.gateway}" in out
            name = out.split("name=")[1].split("=")[0]
            assert out.split("name=")[1].strip() == f"{name}={name}"     # /etc/hostname is the uts name
            assert f"{plan.address}\t{name}\n" in out                     # its name in /etc/hosts
            assert "nameserver 127." not in out and "nameserver" in out  # no loopback resolver
        finally:
            await c.destroy(spec.container_id)
        assert_gone(env, c, [plan])

    run(scenario())


def test_proxies_come_back_after_an_agent_restart(env: Env) -> None:
    async def scenario() -> None:
        port = free_port()
        spec = env.spec(HTTPD, [{"host_port": port, "container_port": 8080}])
        first = env.containerizer()
        await first.launch(spec)
        plan = first._containers[spec.container_id].network
        assert plan is not None
        try:
            await asyncio.to_thread(http_get, port, time.monotonic() + 20)
            await first._proxies.stop_all()              # the old agent process is gone
            second = env.containerizer()
            try:
                assert await second.recover({spec.container_id: spec.sandbox}) == {spec.container_id}
                answer = await asyncio.to_thread(http_get, port, time.monotonic() + 20)
                assert f"hello from {spec.container_id}" in answer
            finally:
                await second.destroy(spec.container_id)
            assert_gone(env, second, [plan])
        finally:
            await first._proxies.stop_all()

    run(scenario())


def test_a_host_port_in_use_fails_the_launch_and_leaves_nothing(env: Env) -> None:
    async def scenario() -> None:
        c = env.containerizer()
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            spec = env.spec(HTTPD, [{"host_port": port, "container_port": 8080}])
            with pytest.raises(LaunchError, match="host port"):
                await c.launch(spec)
        netns, host_veth, _ = on.device_names(spec.container_id, env.bridge.bridge)
        assert host_veth not in links("veth")
        assert not (on.NETNS_DIR / netns).exists()
        assert env.bridge.bridge not in links("bridge")
        assert not _is_mounted(spec.sandbox / ".lichen" / "oci" / "rootfs")

    run(scenario())


def test_teardown_under_cleans_up_after_a_dead_agent(env: Env) -> None:
    async def scenario() -> None:
        c = env.containerizer()
        spec = env.spec("exec sleep 60", [{"host_port": free_port(), "container_port": 8080}])
        await c.launch(spec)
        plan = c._containers[spec.container_id].network
        assert plan is not None
        # The agent dies: its proxies go with it; `lichen up` deletes the container, then
        # the network.
        await c._proxies.stop_all()
        await asyncio.to_thread(subprocess.run, ["runc", "--root", str(env.tmp / "work" / "oci-state"),
                                "delete", "--force", spec.container_id], check=False, capture_output=True)
        assert on.teardown_under(env.tmp / "sandboxes", state_dir=env.bridge.state_dir) == 1
        assert_gone(env, c, [plan])
        await c.destroy(spec.container_id)

    run(scenario())


# -- NAT: a BRIDGE container reaches "another host" ---------------------------------------------

# A /30 between the host and a namespace standing for another machine. The namespace has a
# route to this /30 only, none back to the bridge's subnet: only NAT brings replies back.
FAR_HOST_SIDE, FAR_ADDRESS, FAR_PREFIX = "192.168.251.1", "192.168.251.2", 30
FAR_PORT = 8080
ADDR_CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "remote=$REMOTE_ADDR"\n'


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=10)


def nat_installed(bridge: str) -> bool:
    if shutil.which("nft"):
        tables = subprocess.run(["nft", "list", "tables"], check=True, capture_output=True, text=True).stdout
        return f"table ip {on.nat_table(bridge)}" in tables.splitlines()
    listing = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"], check=True,
                             capture_output=True, text=True).stdout
    return bool(on.tagged_rules(listing, "nat", bridge))


@pytest.fixture
def far_host(tmp_path: Path) -> Iterator[str]:
    """A namespace at FAR_ADDRESS serving busybox httpd, whose CGI answers the client's
    address; removed whatever happens."""
    if any(FAR_ADDRESS in line for line in subprocess.run(
            ["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True).stdout.splitlines()):
        pytest.skip(f"{FAR_ADDRESS} is in use on this host")
    tag = uuid.uuid4().hex[:8]
    netns, host_veth, far_veth = f"lctfar-{tag}", f"lfh{tag}", f"lff{tag}"
    www = tmp_path / "far-www"
    (www / "cgi-bin").mkdir(parents=True)
    (www / "cgi-bin" / "addr").write_text(ADDR_CGI)
    (www / "cgi-bin" / "addr").chmod(0o755)
    server: subprocess.Popen[bytes] | None = None
    try:
        sh("ip", "netns", "add", netns)
        sh("ip", "link", "add", host_veth, "type", "veth", "peer", "name", far_veth, "netns", netns)
        sh("ip", "addr", "add", f"{FAR_HOST_SIDE}/{FAR_PREFIX}", "dev", host_veth)
        sh("ip", "link", "set", host_veth, "up")
        sh("ip", "-n", netns, "addr", "add", f"{FAR_ADDRESS}/{FAR_PREFIX}", "dev", far_veth)
        sh("ip", "-n", netns, "link", "set", far_veth, "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        server = subprocess.Popen(["ip", "netns", "exec", netns, BUSYBOX, "httpd", "-f",
                                   "-p", f"{FAR_ADDRESS}:{FAR_PORT}", "-h", str(www)])

        def serving() -> bool:
            with socket.create_connection((FAR_ADDRESS, FAR_PORT), timeout=1):
                return True

        wait_for(serving, 10, "the far host's httpd")
        yield FAR_ADDRESS
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        subprocess.run(["ip", "link", "del", host_veth], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


def test_a_bridge_container_reaches_another_host_through_nat(env: Env, far_host: str) -> None:
    async def scenario() -> None:
        c = env.containerizer()
        # busybox 1.35's wget -T segfaults in the container, so `timeout` bounds it; not as the
        # last command, which sh would exec as pid 1, deaf to timeout's SIGTERM.
        spec = env.spec(f"timeout 15 wget -q -O - http://{far_host}:{FAR_PORT}/cgi-bin/addr; echo wget=$?", [])
        try:
            await c.launch(spec)
            plan = c._containers[spec.container_id].network
            assert plan is not None
            assert nat_installed(env.bridge.bridge)
            assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
            ended = await c.wait(spec.container_id)
            out = (spec.sandbox / "stdout").read_text()
            err = (spec.sandbox / "stderr").read_text()
            assert ended.exit_code == 0 and "wget=0" in out, f"wget failed: {out!r} {err!r}"
            # The far host saw the host's address on its link, not the container's.
            assert f"remote={FAR_HOST_SIDE}" in out
            assert plan.address not in out
        finally:
            await c.destroy(spec.container_id)
        assert_gone(env, c, [plan])
        assert not nat_installed(env.bridge.bridge)

    run(scenario())


def test_nat_is_installed_once_and_goes_with_teardown_under(env: Env) -> None:
    async def scenario() -> None:
        c = env.containerizer()
        specs = [env.spec("exec sleep 60", []) for _ in range(2)]
        for spec in specs:
            await c.launch(spec)
        assert nat_installed(env.bridge.bridge)
        if not shutil.which("nft"):
            listing = await asyncio.to_thread(subprocess.run, ["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"],
                                              check=True, capture_output=True, text=True)
            assert len(on.tagged_rules(listing.stdout, "nat", env.bridge.bridge)) == 1
        else:
            table = await asyncio.to_thread(subprocess.run, ["nft", "list", "table", "ip",
                                            on.nat_table(env.bridge.bridge)], check=True, capture_output=True, text=True)
            assert table.stdout.count("masquerade") == 1
        await c._proxies.stop_all()
        for spec in specs:
            await asyncio.to_thread(subprocess.run, ["runc", "--root", str(env.tmp / "work" / "oci-state"),
                                    "delete", "--force", spec.container_id], check=False, capture_output=True)
        assert on.teardown_under(env.tmp / "sandboxes", state_dir=env.bridge.state_dir) == 2
        assert not nat_installed(env.bridge.bridge)
        for spec in specs:
            await c.destroy(spec.container_id)

    run(scenario())
