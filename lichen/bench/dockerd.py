"""A private Docker Engine (Debian's `docker.io`) on a temp dir, for benchmarks and tests.

    engine = start_dockerd(root)                 # returns once the socket answers /_ping
    engine.socket                                # "unix:///<root>/docker.sock"
    engine.load_layout(layout, "latest", "lichen-bench/busybox:latest")   # OCI layout -> engine
    engine.stop()                                # containers removed, SIGTERM, SIGKILL later

Everything the engine keeps (images, containers, its own containerd's state) lives under
`root`, never in /var/lib/docker. It runs with `--iptables=false`, so it never touches the
host's firewall; published ports go through Docker's userland proxy.

The `docker0` bridge: with `bridge=True` (the default, what BRIDGE networking needs) the
engine creates it and `stop` deletes it. With `bridge=False` the engine runs with
`--bridge none`: no bridge is created, only host (and none) networking works, and `stop`
leaves any `docker0` alone, since it then belongs to some other engine on the host.

`stop` is safe to call twice and leaves nothing behind: every container is removed
through the API, the engine gets SIGTERM (SIGKILL after `STOP_TIMEOUT`), then any process
still naming `root` on its command line (the engine's containerd, its shims) is killed,
mounts under `root` are unmounted and `root` is deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

__all__ = ["READY_TIMEOUT", "STOP_TIMEOUT", "DockerEngine", "dockerd_available", "load_archive",
           "start_dockerd"]


def dockerd_available() -> bool:
    """True when `dockerd` is installed and we are root (the engine needs both)."""
    return shutil.which("dockerd") is not None and os.geteuid() == 0


def load_archive(host: str, archive: Path) -> None:
    """Load a `docker save`-style tar (skopeo's `docker-archive:`) into the engine at `host`."""
    import docker

    client = docker.DockerClient(base_url=host, version="auto")
    try:
        with open(archive, "rb") as f:
            client.api.load_image(f)
    finally:
        client.close()


def convert_layout(layout: Path, tag: str, name: str, archive: Path) -> None:
    """Write the image `tag` of the OCI layout dir `layout` as a docker-archive tar named `name`."""
    archive.unlink(missing_ok=True)  # skopeo refuses to overwrite one
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:{tag}",
                    f"docker-archive:{archive}:{name}"], check=True, capture_output=True, timeout=120)


@dataclass(frozen=True, slots=True)
class DockerEngine:
    socket_path: Path
    root: Path
    proc: subprocess.Popen[bytes]
    bridge: bool = True

    @property
    def socket(self) -> str:
        return f"unix://{self.socket_path}"

    def load_layout(self, layout: Path, tag: str, name: str) -> None:
        """Load the image `tag` of an OCI layout dir into the engine as `name` (no network)."""
        work = self.root / "images"
        work.mkdir(parents=True, exist_ok=True)
        archive = work / (name.replace("/", "_").replace(":", "_") + ".tar")
        convert_layout(layout, tag, name, archive)
        try:
            load_archive(self.socket, archive)
        finally:
            archive.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def remove_containers(self) -> None:
        """Force-remove every container the engine knows (a no-op once it has stopped)."""
        if self.proc.poll() is not None or not _pings(self.socket_path):
            return
        import docker

        client = docker.DockerClient(base_url=self.socket, version="auto", timeout=30)
        try:
            for c in client.api.containers(all=True, quiet=True):
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_container(c["Id"], force=True, v=True)
        except docker.errors.DockerException:
            pass  # the engine is going away anyway; the kill below covers what it leaves
        finally:
            client.close()

    def stop(self) -> None:
        """Remove the containers, stop the engine and its children, remove its files."""
        with contextlib.suppress(Exception):
            self.remove_containers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # A SIGKILLed engine leaves its containerd behind; shims live in their own groups.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        _kill_naming(self.root)
        if self.bridge:
            subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, check=False)
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def start_dockerd(root: Path, *, bridge: bool = True, args: Sequence[str] = (),
                  timeout: float = READY_TIMEOUT) -> DockerEngine:
    """Start `dockerd` with all its state under `root`; return it once it answers /_ping.

    Keep `root` short (a `tempfile.mkdtemp` in /tmp): the engine's containerd puts unix
    sockets under it, and their paths must fit in 108 bytes. `args` go to dockerd as they are
    (say `--cgroup-parent`).

    Raises RuntimeError (with the engine's log tail) when it does not come up in `timeout`
    seconds; nothing is left running then.
    """
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "docker.sock"
    log_path = root / "dockerd.log"
    network = [] if bridge else ["--bridge", "none"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["dockerd", "--host", f"unix://{socket_path}", "--data-root", str(root / "data"),
             "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
             "--iptables=false", "--ip-masq=false", "--userland-proxy=true", *network, *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    engine = DockerEngine(socket_path, root, proc, bridge)
    deadline = time.monotonic() + timeout
    while not _pings(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = engine.log_tail()
            engine.stop()
            raise RuntimeError(f"dockerd did not come up:\n{tail}")
        time.sleep(0.05)
    return engine


def _pings(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(socket_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(64).split(b"\r\n")[0]
    except OSError:
        return False


def _kill_naming(root: Path) -> None:
    """SIGKILL every process whose command line names `root` (containerd, its shims)."""
    needle = str(root.resolve()).encode()
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
