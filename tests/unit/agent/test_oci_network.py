"""The pure part of BRIDGE networking: mappings, subnets, the address pool, names."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.agent.containerizer import oci_bundle as ob
from lichen.agent.containerizer import oci_network as on


def test_port_mappings_from_a_marathon_container() -> None:
    container = {"type": "DOCKER", "docker": {"image": "x", "network": "BRIDGE", "port_mappings": [
        {"host_port": 31000, "container_port": 8080, "protocol": "tcp"},
        {"host_port": 31001, "container_port": 53, "protocol": "tcp,udp"},
        {"host_port": 31002, "container_port": 9000},
    ]}}
    assert on.port_mappings(container) == (
        on.PortMapping(31000, 8080, "tcp"),
        on.PortMapping(31001, 53, "tcp"),
        on.PortMapping(31001, 53, "udp"),
        on.PortMapping(31002, 9000, "tcp"),
    )
    assert on.port_mappings({"type": "DOCKER", "docker": {}}) == ()
    # No host port: nothing to forward (the port is reachable on the container's address).
    assert on.port_mappings({"docker": {"port_mappings": [{"host_port": None, "container_port": 80}]}}) == ()


@pytest.mark.parametrize("mapping", [
    {"host_port": 0, "container_port": 80},
    {"host_port": 31000},
    {"host_port": 31000, "container_port": 70000},
    {"host_port": "x", "container_port": 80},
    {"host_port": 31000, "container_port": 80, "protocol": "sctp"},
])
def test_bad_port_mappings_are_refused(mapping: dict[str, object]) -> None:
    with pytest.raises(on.NetworkError):
        on.port_mappings({"docker": {"port_mappings": [mapping]}})


def test_a_host_port_used_twice_is_refused() -> None:
    with pytest.raises(on.NetworkError, match="same host port"):
        on.port_mappings({"docker": {"port_mappings": [
            {"host_port": 31000, "container_port": 80}, {"host_port": 31000, "container_port": 81}]}})


def test_the_subnet_avoids_the_hosts_networks() -> None:
    assert on.choose_subnet(["192.0.2.0/24", "127.0.0.0/8"]) == "172.31.0.0/16"
    assert on.choose_subnet(["172.31.5.0/24"]) == "172.30.0.0/16"
    assert on.choose_subnet(["172.16.0.0/12"]) == "10.231.0.0/16"
    # The default route overlaps everything and is not a clash.
    assert on.choose_subnet(["0.0.0.0/0"]) == "172.31.0.0/16"
    with pytest.raises(on.NetworkError):
        on.choose_subnet(["172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16"])


def test_addresses_skip_the_network_and_the_gateway() -> None:
    assert on.gateway("172.31.0.0/16") == "172.31.0.1"
    assert on.address("172.31.0.0/16", 0) == "172.31.0.2"
    assert on.address("172.31.0.0/16", 300) == "172.31.1.46"
    assert on.pool_size("192.168.231.0/24") == 253
    assert on.address("192.168.231.0/24", 252) == "192.168.231.254"
    with pytest.raises(on.NetworkError):
        on.address("192.168.231.0/24", 253)


def test_allocation_keeps_a_lease_and_fills_holes() -> None:
    assert on.allocate({}, "a", 10) == 0
    assert on.allocate({"a": 0, "b": 2}, "c", 10) == 1
    assert on.allocate({"a": 0, "b": 2}, "b", 10) == 2
    with pytest.raises(on.NetworkError, match="exhausted"):
        on.allocate({"a": 0, "b": 1}, "c", 2)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 20), max_size=15), st.text(min_size=1))
def test_allocation_never_hands_out_a_used_index(leases: dict[str, int], container_id: str) -> None:
    leases = {c: i for c, i in leases.items() if c != container_id}
    if len(set(leases.values())) >= 21:
        return
    index = on.allocate(leases, container_id, 21)
    assert index not in leases.values() and 0 <= index < 21


def test_device_names_fit_the_kernels_limit_and_differ() -> None:
    a = on.device_names("app.instance-" + "x" * 200, "lichen0")
    b = on.device_names("app.instance-y", "lichen0")
    assert all(len(n) <= 15 for n in a[1:]) and a != b
    assert len(set(a)) == 3


def test_a_plan_round_trips_through_json() -> None:
    plan = on.make_plan("c1", "lichen0", "172.31.0.0/16", 5, (on.PortMapping(31000, 80),))
    assert plan.address == "172.31.0.7" and plan.gateway == "172.31.0.1" and plan.prefixlen == 16
    assert plan.netns_path == f"/var/run/netns/{plan.netns}"
    assert on.NetworkPlan.from_json(plan.to_json()) == plan


def test_the_bundle_joins_the_planned_namespace() -> None:
    spec = ob.BundleSpec(rootfs="/r", args=("sh",), env=(), cwd="/", user=ob.UserIds(0, 0),
                         sandbox="/s", cgroups_path="/x/ctr", network="BRIDGE",
                         network_namespace="/var/run/netns/lichen-abc")
    namespaces = ob.build_config(spec)["linux"]["namespaces"]
    assert {"type": "network", "path": "/var/run/netns/lichen-abc"} in namespaces
    assert {"type": "uts"} in namespaces


# -- the port proxies, against echo servers on loopback -------------------------------------


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)  # type: ignore[attr-defined]


def test_proxies_forward_tcp_and_udp_and_stop() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"echo:" + await reader.read(100))
            await writer.drain()
            writer.close()

        tcp_target, host_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_STREAM)
        udp_target = _free_port(socket.SOCK_DGRAM)
        server = await asyncio.start_server(echo, "127.0.0.1", tcp_target)
        udp_server, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("127.0.0.1", udp_target))
        plan = on.make_plan("c1", "br", "127.0.0.0/8", 0, (
            on.PortMapping(host_port, tcp_target, "tcp"), on.PortMapping(host_port, udp_target, "udp")))
        plan = on.NetworkPlan(**{**plan.to_json(), "address": "127.0.0.1", "mappings": plan.mappings})
        proxies = on.PortProxies(bind="127.0.0.1")
        try:
            await proxies.start(plan)
            reader, writer = await asyncio.open_connection("127.0.0.1", host_port)
            writer.write(b"hi")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(100), 5) == b"echo:hi"
            writer.close()

            replies: asyncio.Queue[bytes] = asyncio.Queue()

            class Client(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    replies.put_nowait(data)

            client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", host_port))
            client.sendto(b"one")
            client.sendto(b"two")
            assert {await asyncio.wait_for(replies.get(), 5) for _ in range(2)} == {b"echo:one", b"echo:two"}
            client.close()

            with pytest.raises(on.NetworkError, match="host port"):
                await on.PortProxies(bind="127.0.0.1").start(plan)     # the port is taken
        finally:
            await proxies.stop("c1")
            server.close()
            udp_server.close()
        assert not proxies.running("c1")
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", host_port)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_resolv_conf_drops_loopback_nameservers_and_keeps_the_rest() -> None:
    host = "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n"
    assert on.resolv_conf(host) == "# generated\nsearch example.org\nnameserver 10.0.0.2\noptions edns0\n"


def test_resolv_conf_falls_back_to_public_resolvers_as_docker_does() -> None:
    text = on.resolv_conf("nameserver 127.0.0.53\nsearch lan\n")
    assert text == "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert on.resolv_conf("") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


# -- the bridge's NAT ---------------------------------------------------------------------------


def test_the_nft_script_replaces_one_table_per_bridge_with_dockers_masquerade() -> None:
    script = on.nft_install_script("lichen0", "172.31.0.0/16")
    lines = script.splitlines()
    # Created, deleted and made again in one transaction: a second run leaves no duplicate.
    assert lines[:3] == ["table ip lichen-lichen0", "delete table ip lichen-lichen0", "table ip lichen-lichen0 {"]
    assert "type nat hook postrouting priority 100; policy accept;" in script
    assert 'ip saddr 172.31.0.0/16 oifname != "lichen0" masquerade' in script
    assert script.count("masquerade") == 1
    assert on.nft_remove_script("lichen0") == "table ip lichen-lichen0\ndelete table ip lichen-lichen0\n"


def test_nat_rules_are_keyed_by_bridge_and_subnet() -> None:
    a = on.nft_install_script("lct1", "172.31.0.0/16")
    assert on.nat_table("lct1") != on.nat_table("lct2")
    assert a != on.nft_install_script("lct2", "172.31.0.0/16")
    assert a != on.nft_install_script("lct1", "172.30.0.0/16")
    assert a == on.nft_install_script("lct1", "172.31.0.0/16")


def test_the_iptables_fallback_is_dockers_rule_tagged_with_the_bridge() -> None:
    (rule,) = on.iptables_nat_rules("lichen0", "172.31.0.0/16")
    assert (rule.table, rule.chain) == ("nat", "POSTROUTING")
    assert rule.spec == ("-s", "172.31.0.0/16", "!", "-o", "lichen0",
                         "-m", "comment", "--comment", "lichen:lichen0", "-j", "MASQUERADE")
    forward = on.iptables_forward_rules("lichen0")
    assert {(r.table, r.chain) for r in forward} == {("filter", "FORWARD")}
    assert [r.spec[:2] for r in forward] == [("-i", "lichen0"), ("-o", "lichen0")]
    assert "RELATED,ESTABLISHED" in forward[1].spec


@pytest.mark.parametrize(("bridge", "subnet"), [
    ("br 0", "172.31.0.0/16"), ('br"0', "172.31.0.0/16"), ("", "172.31.0.0/16"),
    ("-br", "172.31.0.0/16"), ("lichen0", "172.31.0.1/16"), ("lichen0", "fd00::/64"), ("lichen0", "x"),
])
def test_nat_refuses_names_and_subnets_it_cannot_write_safely(bridge: str, subnet: str) -> None:
    with pytest.raises(on.NetworkError):
        on.nft_install_script(bridge, subnet)
    with pytest.raises(on.NetworkError):
        on.iptables_nat_rules(bridge, subnet)


def test_tagged_rules_finds_only_this_bridges_rules_in_a_listing() -> None:
    listing = (
        "-P POSTROUTING ACCEPT\n"
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n"
        '-A POSTROUTING -s 172.31.0.0/16 ! -o lichen0 -m comment --comment "lichen:lichen0" -j MASQUERADE\n'
        '-A POSTROUTING -s 172.30.0.0/16 ! -o lichen1 -m comment --comment "lichen:lichen1" -j MASQUERADE\n'
        '-A POSTROUTING -s 10.231.0.0/16 ! -o lichen0 -m comment --comment "lichen:lichen0" -j MASQUERADE\n'
    )
    found = on.tagged_rules(listing, "nat", "lichen0")
    assert [r.spec[1] for r in found] == ["172.31.0.0/16", "10.231.0.0/16"]
    # What was installed is found again, so it can be deleted by the same spec.
    (installed,) = on.iptables_nat_rules("lichen0", "172.31.0.0/16")
    assert found[0] == installed
    assert on.tagged_rules(listing, "nat", "lichen") == ()


def test_forward_policy_drops_reads_iptables_s() -> None:
    assert on.forward_policy_drops("-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n")
    assert not on.forward_policy_drops("-P FORWARD ACCEPT\n")
    assert not on.forward_policy_drops("")
