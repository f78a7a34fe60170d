"""BRIDGE networking for the `oci` containerizer: a network namespace per container, a veth
pair to a host bridge, host ports forwarded by a userland proxy, and source NAT for the
bridge's subnet so containers reach beyond the host, as Docker's default bridge does.

The pure part decides: which port mappings a ContainerInfo asks for, which subnet the
bridge uses (one that clashes with none of the host's), which address a container gets
from the pool, and the names of its namespace and veth devices (`NetworkPlan`).

The shell part acts: `BridgeNetwork` creates the bridge on demand, the namespace and the
veth pair (`ip` commands), under a file lock that also guards the address pool; the last
container to go removes the bridge. Whoever (re)addresses the bridge also turns on
`net.ipv4.ip_forward` and installs the bridge's NAT (`nft_install_script`: an nft table of
its own; `iptables_nat_rules` where nft is missing); whoever removes the bridge removes its
NAT. A NAT that cannot be installed is a warning, not a failed launch. `PortProxies` runs
one asyncio TCP server per mapping inside the agent process, forwarding `0.0.0.0:host_port`
to `address:container_port`; the containerizer starts them at launch and again at
recovery, and stops them at destroy.

Layout of the pool (host-wide, one per bridge, since every agent on the host shares the
bridge): `<state_dir>/<bridge>.json` = {"subnet": "172.31.0.0/16", "leases": {id: index}}
and `<state_dir>/<bridge>.lock`. A lease whose namespace no longer exists is stale (its
agent died and its work dir went) and is reclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "lichen0"
DEFAULT_STATE_DIR = Path("/run/lichen/network")
NETNS_DIR = Path("/var/run/netns")
# Tried in order; the first that overlaps none of the host's networks is the bridge's.
SUBNET_CANDIDATES = ("172.31.0.0/16", "172.30.0.0/16", "10.231.0.0/16", "192.168.231.0/24")
CONTAINER_IFACE = "eth0"
IP_TIMEOUT = 10.0
_PROTOCOLS = ("tcp", "udp")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NAT_TIMEOUT = 10.0


class NetworkError(Exception):
    """The network cannot be planned or set up; says why."""


@dataclass(frozen=True, slots=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    container_id: str
    bridge: str
    subnet: str                 # "172.31.0.0/16"
    gateway: str                # the bridge's address, the container's default route
    address: str                # the container's
    netns: str                  # the namespace's name under /var/run/netns
    host_veth: str              # the host's end, enslaved to the bridge
    peer_veth: str              # the container's end before it is renamed eth0
    mappings: tuple[PortMapping, ...] = ()

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> NetworkPlan:
        fields = dict(data)
        fields["mappings"] = tuple(PortMapping(**m) for m in data.get("mappings") or ())
        return NetworkPlan(**fields)


# -- pure --------------------------------------------------------------------------------------


def port_mappings(container: Mapping[str, Any]) -> tuple[PortMapping, ...]:
    """`docker.port_mappings` of a Mesos ContainerInfo; "tcp,udp" gives one of each. A
    mapping without a host port (Marathon's `hostPort: null`) forwards nothing; host port 0
    is refused: the scheduler picks a real one from the offer's `ports`."""
    found: list[PortMapping] = []
    for i, m in enumerate((container.get("docker") or {}).get("port_mappings") or []):
        if isinstance(m, Mapping) and m.get("host_port") is None and "container_port" in m:
            continue
        if isinstance(m, Mapping) and m.get("host_port") == 0:
            raise NetworkError(f"port mapping {i} has host port 0: the scheduler must choose one "
                               "from the offer's ports")
        try:
            host_port, container_port = int(m["host_port"]), int(m["container_port"])
        except (KeyError, TypeError, ValueError) as e:
            raise NetworkError(f"port mapping {i} needs integer host_port and container_port") from e
        if not (0 < host_port < 65536 and 0 < container_port < 65536):
            raise NetworkError(f"port mapping {i}: ports must be within 1-65535")
        for protocol in str(m.get("protocol") or "tcp").lower().split(","):
            if protocol not in _PROTOCOLS:
                raise NetworkError(f"port mapping {i}: unknown protocol '{protocol}'")
            found.append(PortMapping(host_port, container_port, protocol))
    seen = [(m.host_port, m.protocol) for m in found]
    if len(seen) != len(set(seen)):
        raise NetworkError("two port mappings use the same host port")
    return tuple(found)


def choose_subnet(host_networks: Iterable[str], candidates: Iterable[str] = SUBNET_CANDIDATES) -> str:
    """The first candidate overlapping none of the host's networks (default route aside)."""
    taken = [ipaddress.ip_network(n, strict=False) for n in host_networks]
    taken = [n for n in taken if n.version == 4 and n.prefixlen > 0]
    for candidate in candidates:
        net = ipaddress.ip_network(candidate)
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise NetworkError("every candidate subnet for the bridge clashes with the host's networks")


def pool_size(subnet: str) -> int:
    """Addresses for containers: all but the network, the gateway (.1) and broadcast."""
    return max(0, ipaddress.ip_network(subnet).num_addresses - 3)


def gateway(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet).network_address + 1)


def address(subnet: str, index: int) -> str:
    if not 0 <= index < pool_size(subnet):
        raise NetworkError(f"address index {index} is outside {subnet}")
    return str(ipaddress.ip_network(subnet).network_address + 2 + index)


def allocate(leases: Mapping[str, int], container_id: str, size: int) -> int:
    """The container's index: the one it holds, else the lowest free one."""
    if container_id in leases:
        return leases[container_id]
    used = set(leases.values())
    for index in range(size):
        if index not in used:
            return index
    raise NetworkError(f"the bridge's address pool is exhausted ({size} containers)")


def device_names(container_id: str, bridge: str) -> tuple[str, str, str]:
    """(netns, host veth, peer veth); interface names must fit in 15 characters."""
    h = hashlib.sha256(f"{bridge}/{container_id}".encode()).hexdigest()[:10]
    return f"lichen-{h}", f"lv{h}", f"lp{h}"


def make_plan(container_id: str, bridge: str, subnet: str, index: int,
              mappings: tuple[PortMapping, ...]) -> NetworkPlan:
    netns, host_veth, peer_veth = device_names(container_id, bridge)
    return NetworkPlan(container_id, bridge, subnet, gateway(subnet), address(subnet, index),
                       netns, host_veth, peer_veth, mappings)


def save_plan(path: Path, plan: NetworkPlan) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(plan.to_json(), indent=1))
    os.replace(tmp, path)


def load_plan(path: Path) -> NetworkPlan | None:
    try:
        return NetworkPlan.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def resolv_conf(host_text: str) -> str:
    """/etc/resolv.conf for a container with a network namespace of its own, as Docker
    makes it: the host's, less the nameservers on loopback (they answer only inside the
    host's namespace); with none left, Google's public resolvers, as Docker falls back."""
    lines = []
    servers = 0
    for line in host_text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            try:
                if ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                continue
            servers += 1
        lines.append(line)
    if servers == 0:
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"


# -- pure: the bridge's NAT --------------------------------------------------------------------
#
# Docker's default bridge: `-t nat -A POSTROUTING -s <subnet> ! -o docker0 -j MASQUERADE`, and
# in the filter table's FORWARD (whose policy dockerd sets to DROP) accepts for what comes
# from the bridge and for replies going back into it. With nft lichen keeps the masquerade in
# a table of its own per bridge, so removing it is one `delete table` that touches nothing
# else. A forward accept in a table of its own could not outvote another table's DROP (a
# packet must pass every base chain at the hook), so the accepts go into the chain holding
# the DROP policy, iptables' FORWARD, and only when that policy is DROP.


def nat_table(bridge: str) -> str:
    """The nft table (family ip) holding `bridge`'s NAT."""
    return f"lichen-{bridge}"


def _check_nat_args(bridge: str, subnet: str) -> str:
    # Names go into nft scripts and iptables arguments: keep them plain.
    if not bridge or not all(ch.isalnum() or ch in "_.-" for ch in bridge) or not bridge[0].isalpha():
        raise NetworkError(f"bridge name '{bridge}' is not usable in a NAT rule")
    try:
        net = ipaddress.ip_network(subnet)
    except ValueError as e:
        raise NetworkError(f"bad bridge subnet '{subnet}': {e}") from e
    if net.version != 4:
        raise NetworkError(f"bridge subnet '{subnet}' is not IPv4")
    return str(net)


def nft_install_script(bridge: str, subnet: str) -> str:
    """An `nft -f -` script that leaves exactly one table for `bridge`, masquerading `subnet`'s
    traffic that leaves by any other interface. Idempotent: the table is created (so that the
    delete cannot fail), deleted and made again in one transaction."""
    net = _check_nat_args(bridge, subnet)
    table = nat_table(bridge)
    return "\n".join([
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority 100; policy accept;",
        f'\t\tip saddr {net} oifname != "{bridge}" masquerade',
        "\t}",
        "}",
    ]) + "\n"


def nft_remove_script(bridge: str) -> str:
    """Removes `bridge`'s table; a no-op (not an error) when there is none."""
    table = nat_table(bridge)
    return f"table ip {table}\ndelete table ip {table}\n"


@dataclass(frozen=True, slots=True)
class IptablesRule:
    """One rule: `iptables -t <table> -A|-C|-D <chain> <*spec>`."""
    table: str
    chain: str
    spec: tuple[str, ...]


def _comment(bridge: str) -> tuple[str, ...]:
    return ("-m", "comment", "--comment", f"lichen:{bridge}")


def iptables_nat_rules(bridge: str, subnet: str) -> tuple[IptablesRule, ...]:
    """Docker's masquerade rule for the bridge, tagged with a comment naming it."""
    net = _check_nat_args(bridge, subnet)
    return (IptablesRule("nat", "POSTROUTING",
                         ("-s", net, "!", "-o", bridge, *_comment(bridge), "-j", "MASQUERADE")),)


def iptables_forward_rules(bridge: str) -> tuple[IptablesRule, ...]:
    """Accepts for the bridge in FORWARD, for when its policy is DROP: out of the bridge
    (to the world or back into it), and replies into it."""
    _check_nat_args(bridge, "0.0.0.0/0")
    return (
        IptablesRule("filter", "FORWARD", ("-i", bridge, *_comment(bridge), "-j", "ACCEPT")),
        IptablesRule("filter", "FORWARD", ("-o", bridge, "-m", "conntrack", "--ctstate",
                                           "RELATED,ESTABLISHED", *_comment(bridge), "-j", "ACCEPT")),
    )


def tagged_rules(listing: str, table: str, bridge: str) -> tuple[IptablesRule, ...]:
    """The rules of `iptables -t <table> -S <chain>` output that carry `bridge`'s comment."""
    found = []
    tag = _comment(bridge)[2:]
    for line in listing.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) > 2 and words[0] == "-A" and any(
                words[i:i + 2] == list(tag) for i in range(len(words) - 1)):
            found.append(IptablesRule(table, words[1], tuple(words[2:])))
    return tuple(found)


def forward_policy_drops(iptables_s_forward: str) -> bool:
    """Whether `iptables -S FORWARD` says the chain's policy is DROP."""
    return any(line.split() == ["-P", "FORWARD", "DROP"] for line in iptables_s_forward.splitlines())


# -- the shell: namespaces, veths, the bridge --------------------------------------------------


class BridgeNetwork:
    def __init__(self, bridge: str = DEFAULT_BRIDGE, *, subnet: str | None = None,
                 state_dir: Path = DEFAULT_STATE_DIR) -> None:
        if not 0 < len(bridge) <= 15:
            raise ValueError(f"bad bridge name '{bridge}'")
        self.bridge = bridge
        self.subnet = subnet
        self.state_dir = Path(state_dir)

    @property
    def _pool_file(self) -> Path:
        return self.state_dir / f"{self.bridge}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The pool, read under the lock; written back when the block ends normally."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / f"{self.bridge}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                pool: dict[str, Any]
                try:
                    pool = json.loads(self._pool_file.read_text())
                except (OSError, ValueError):
                    pool = {}
                pool.setdefault("leases", {})
                yield pool
                if pool["leases"]:
                    tmp = self._pool_file.with_name(f".{self._pool_file.name}.tmp")
                    tmp.write_text(json.dumps(pool, indent=1))
                    os.replace(tmp, self._pool_file)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        self._pool_file.unlink()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def setup(self, container_id: str, mappings: tuple[PortMapping, ...]) -> NetworkPlan:
        """Blocking: the bridge (if missing), an address, the namespace and the veth pair.
        Raises NetworkError and leaves nothing of this container behind when it does."""
        with self._locked() as pool:
            leases: dict[str, int] = pool["leases"]
            for stale in [c for c in leases
                          if c != container_id and not (NETNS_DIR / device_names(c, self.bridge)[0]).exists()]:
                del leases[stale]
            if not leases or "subnet" not in pool:
                pool["subnet"] = self.subnet or _bridge_subnet(self.bridge) or choose_subnet(
                    _host_networks(exclude=self.bridge))
            subnet = pool["subnet"]
            index = allocate(leases, container_id, pool_size(subnet))
            plan = make_plan(container_id, self.bridge, subnet, index, mappings)
            try:
                configured = self._ensure_bridge(subnet, in_use=bool(leases))
                if (NETNS_DIR / plan.netns).exists():
                    _destroy(plan)               # left by a launch that died half-way
                _create(plan)
            except NetworkError:
                _destroy(plan)
                if not leases:
                    _ip("link", "del", self.bridge, check=False)
                    _remove_nat(self.bridge, pool.pop("nat", None))
                raise
            if configured:
                pool["nat"] = _install_nat(self.bridge, subnet)
            leases[container_id] = index
        return plan

    def teardown(self, plan: NetworkPlan) -> None:
        """Blocking: remove the veth pair and the namespace, free the address, and remove the
        bridge when no container uses it any more. Safe to call twice."""
        with self._locked() as pool:
            _destroy(plan)
            pool["leases"].pop(plan.container_id, None)
            if not pool["leases"]:
                _ip("link", "del", plan.bridge, check=False)
                _remove_nat(plan.bridge, pool.pop("nat", None))

    def _ensure_bridge(self, subnet: str, in_use: bool) -> bool:
        """Create and address the bridge; an existing one in use by leases is left as is.
        Returns whether it (re)configured the bridge, so its NAT must be (re)installed."""
        exists = Path("/sys/class/net", self.bridge).exists()
        if exists and in_use:
            return False
        if not exists:
            _ip("link", "add", self.bridge, "type", "bridge")
        if _bridge_subnet(self.bridge) != subnet:
            cidr = f"{gateway(subnet)}/{ipaddress.ip_network(subnet).prefixlen}"
            _ip("addr", "replace", cidr, "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return True


# -- the shell: NAT ----------------------------------------------------------------------------


def _install_nat(bridge: str, subnet: str) -> list[str]:
    """Blocking: turn on IP forwarding (never turned off again: Docker leaves it on, and other
    things on the host may rely on it) and install the bridge's NAT. Returns what it installed
    ("nft" or "iptables", and "forward" for FORWARD accepts) for `_remove_nat`. Never raises:
    what cannot be done is one warning, and the container keeps the bridge and its ports."""
    problems: list[str] = []
    installed: list[str] = []
    try:
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1\n")
    except OSError as e:
        problems.append(f"cannot turn on net.ipv4.ip_forward ({e})")
    nft, iptables = shutil.which("nft"), shutil.which("iptables")
    try:
        if nft:
            _run([nft, "-f", "-"], stdin=nft_install_script(bridge, subnet))
            installed.append("nft")
        elif iptables:
            for rule in iptables_nat_rules(bridge, subnet):
                _iptables_ensure(iptables, rule, "-A")
            installed.append("iptables")
        else:
            problems.append("neither nft (Debian package nftables) nor iptables is installed")
    except NetworkError as e:
        problems.append(f"cannot install the masquerade rule: {e}")
    if iptables:
        try:
            if forward_policy_drops(_run([iptables, "-w", "-S", "FORWARD"])):
                for rule in iptables_forward_rules(bridge):
                    _iptables_ensure(iptables, rule, "-I")
                installed.append("forward")
        except NetworkError as e:
            problems.append(f"cannot accept the bridge's traffic in FORWARD: {e}")
    if problems:
        log.warning("bridge %s (%s): no NAT, its containers may reach only this host: %s",
                    bridge, subnet, "; ".join(problems))
    return installed


def _remove_nat(bridge: str, installed: list[str] | None) -> None:
    """Blocking: remove what `_install_nat` said it installed; when that is not known (a pool
    written before NAT, or lost), whatever of the bridge's NAT the host's tools find. iptables
    rules are found by their comment, whatever subnet they were made for."""
    nft, iptables = shutil.which("nft"), shutil.which("iptables")
    if installed is None:
        installed = (["nft"] if nft else []) + (["iptables", "forward"] if iptables else [])
    if "nft" in installed and nft:
        with contextlib.suppress(NetworkError):
            _run([nft, "-f", "-"], stdin=nft_remove_script(bridge))
    if not iptables:
        return
    chains = ([("nat", "POSTROUTING")] if "iptables" in installed else []) + (
        [("filter", "FORWARD")] if "forward" in installed else [])
    for table, chain in chains:
        with contextlib.suppress(NetworkError):
            listing = _run([iptables, "-w", "-t", table, "-S", chain])
            for rule in tagged_rules(listing, table, bridge):
                _run([iptables, "-w", "-t", table, "-D", rule.chain, *rule.spec])


def _iptables_ensure(iptables: str, rule: IptablesRule, how: str) -> None:
    """Add `rule` (`-A` or `-I`) unless it is there already."""
    try:
        _run([iptables, "-w", "-t", rule.table, "-C", rule.chain, *rule.spec])
    except NetworkError:
        _run([iptables, "-w", "-t", rule.table, how, rule.chain, *rule.spec])


def _run(argv: list[str], stdin: str | None = None) -> str:
    """Run a netfilter tool; its stdout, or NetworkError with its stderr."""
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, input=stdin,
                                timeout=NAT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetworkError(f"{Path(argv[0]).name}: {e}") from e
    if result.returncode != 0:
        raise NetworkError(f"{Path(argv[0]).name} {' '.join(argv[1:3])}...: "
                           f"{result.stderr.strip() or f'exit {result.returncode}'}")
    return result.stdout


def _create(plan: NetworkPlan) -> None:
    # Four `ip` runs (each costs a few ms): the namespace; the pair, its peer created right
    # in the namespace (under a unique name: the host may have an eth0; renamed inside);
    # the host end on the bridge; the rest inside the namespace as one batch.
    ns = plan.netns
    _ip("netns", "add", ns)
    _ip("link", "add", plan.host_veth, "type", "veth", "peer", "name", plan.peer_veth, "netns", ns)
    _ip("link", "set", plan.host_veth, "master", plan.bridge, "up")
    _ip("-n", ns, "-batch", "-", stdin="\n".join([
        "link set lo up",
        f"link set {plan.peer_veth} name {CONTAINER_IFACE}",
        f"addr add {plan.address}/{plan.prefixlen} dev {CONTAINER_IFACE}",
        f"link set {CONTAINER_IFACE} up",
        f"route add default via {plan.gateway}",
    ]) + "\n")


def _destroy(plan: NetworkPlan) -> None:
    # Deleting either end of a veth pair deletes both; the namespace holds the peer.
    _ip("link", "del", plan.host_veth, check=False)
    if (NETNS_DIR / plan.netns).exists():
        _ip("netns", "del", plan.netns, check=False)


def _ip(*args: str, check: bool = True, stdin: str | None = None) -> int:
    try:
        result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True,
                                input=stdin, timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        if check:
            raise NetworkError(f"ip {' '.join(args)}: {e}") from e
        return -1
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.returncode


def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        result = subprocess.run(["ip", "-j", *args], check=False, capture_output=True, text=True,
                                timeout=IP_TIMEOUT)
        data = json.loads(result.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return data if isinstance(data, list) else []


def _host_networks(exclude: str) -> list[str]:
    nets = []
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst")
        if route.get("dev") == exclude or not dst or dst == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(str(ipaddress.ip_network(dst, strict=False)))
    for link in _ip_json("-4", "addr", "show"):
        if link.get("ifname") == exclude:
            continue
        for a in link.get("addr_info") or []:
            with contextlib.suppress(ValueError, KeyError):
                nets.append(str(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)))
    return nets


def _bridge_subnet(bridge: str) -> str | None:
    for link in _ip_json("-4", "addr", "show", "dev", bridge):
        for a in link.get("addr_info") or []:
            with contextlib.suppress(ValueError, KeyError):
                return str(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return None


# -- the shell: port forwarding ----------------------------------------------------------------


class _Closable(Protocol):
    def close(self) -> None: ...


class PortProxies:
    """Userland forwarding, one asyncio server (TCP) or endpoint (UDP) per mapping, grouped
    by container."""

    def __init__(self, bind: str = "0.0.0.0") -> None:
        self.bind = bind
        self._servers: dict[str, list[_Closable]] = {}
        self._connections: dict[str, set[asyncio.Task[None]]] = {}

    def running(self, container_id: str) -> bool:
        return container_id in self._servers

    async def start(self, plan: NetworkPlan) -> None:
        """Listen on every host port of `plan`. Raises NetworkError (nothing left listening)."""
        await self.stop(plan.container_id)
        servers: list[_Closable] = []
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        try:
            for m in plan.mappings:
                if m.protocol == "udp":
                    udp, _ = await loop.create_datagram_endpoint(
                        lambda m=m: _UdpProxy((plan.address, m.container_port)),  # type: ignore[misc]
                        local_addr=(self.bind, m.host_port))
                    servers.append(udp)
                else:
                    servers.append(await asyncio.start_server(
                        self._handler(plan.address, m.container_port, tasks),
                        self.bind, m.host_port, reuse_address=True))
        except OSError as e:
            for s in servers:
                s.close()
            raise NetworkError(f"cannot listen on a host port of {plan.container_id}: {e}") from e
        self._servers[plan.container_id] = servers
        self._connections[plan.container_id] = tasks

    async def stop(self, container_id: str) -> None:
        """Close the listeners and every forwarded connection. Safe to call twice."""
        for server in self._servers.pop(container_id, []):
            server.close()
        tasks = self._connections.pop(container_id, set())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop_all(self) -> None:
        for container_id in list(self._servers):
            await self.stop(container_id)

    def _handler(self, host: str, port: int, tasks: set[asyncio.Task[None]]) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                try:
                    up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), IP_TIMEOUT)
                except (OSError, TimeoutError):
                    return
                try:
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                finally:
                    up_writer.close()
            finally:
                writer.close()
                tasks.discard(task)

        return handle


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ConnectionError):
        writer.close()


class _UdpProxy(asyncio.DatagramProtocol):
    """Datagrams from each client go out through a socket of its own to the container, so
    the replies find their way back; the oldest client is forgotten past MAX_UDP_CLIENTS."""

    MAX_UDP_CLIENTS = 256

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[tuple[Any, ...], asyncio.DatagramTransport] = {}
        self.pending: dict[tuple[Any, ...], list[bytes]] = {}
        self.opening: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        upstream = self.clients.get(addr)
        if upstream is not None:
            upstream.sendto(data)
        elif addr in self.pending:
            self.pending[addr].append(data)
        else:
            self.pending[addr] = [data]
            task = asyncio.get_running_loop().create_task(self._open(addr))
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)

    async def _open(self, addr: tuple[Any, ...]) -> None:
        host = self
        loop = asyncio.get_running_loop()

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _: tuple[Any, ...]) -> None:
                if host.transport is not None and not host.transport.is_closing():
                    host.transport.sendto(data, addr)

        try:
            upstream, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        except OSError:
            self.pending.pop(addr, None)
            return
        if self.transport is None or self.transport.is_closing():
            upstream.close()
            return
        if len(self.clients) >= self.MAX_UDP_CLIENTS:
            oldest = next(iter(self.clients))
            self.clients.pop(oldest).close()
        self.clients[addr] = upstream
        for data in self.pending.pop(addr, []):
            upstream.sendto(data)

    def connection_lost(self, exc: Exception | None) -> None:
        for upstream in self.clients.values():
            upstream.close()
        self.clients.clear()
        self.pending.clear()


def teardown_under(root: Path, state_dir: Path = DEFAULT_STATE_DIR) -> int:
    """Blocking: tear down the network of every BRIDGE container whose sandbox is below
    `root` (for `lichen up`'s shutdown and test teardown, after the containers are gone).
    Returns how many plans were found."""
    found = 0
    for path in Path(root).rglob(".lichen/oci-network.json"):
        plan = load_plan(path)
        if plan is None:
            continue
        found += 1
        with contextlib.suppress(NetworkError, OSError, ValueError):
            BridgeNetwork(plan.bridge, state_dir=state_dir).teardown(plan)
    return found
