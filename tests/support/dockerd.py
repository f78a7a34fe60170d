"""A real Docker Engine (Debian's `docker.io`) for a test session, on a private socket.

    engine = start_dockerd(tmp_dir)        # returns once the socket answers /_ping
    engine.socket                          # "unix:///.../docker.sock"
    engine.load_busybox("lichen-test/busybox:latest", entrypoint=..., cmd=...)   # see tests/support/images.py
    engine.stop()                          # SIGTERM, SIGKILL after a deadline; removes docker0

Everything the engine keeps (images, containers, its own containerd's state) lives under
`tmp_dir`, never in /var/lib/docker. The engine runs with `--iptables=false`: published
ports go through Docker's userland proxy, so BRIDGE port mappings work without touching
the host's firewall. It creates the `docker0` bridge; `stop` deletes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import busybox_image, copy_image

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

__all__ = ["DockerEngine", "dockerd_available", "start_dockerd"]


def dockerd_available() -> bool:
    return shutil.which("dockerd") is not None and os.geteuid() == 0


@dataclass(frozen=True, slots=True)
class DockerEngine:
    socket_path: Path
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def socket(self) -> str:
        return f"unix://{self.socket_path}"

    def load_busybox(self, tag: str, *, entrypoint: Sequence[str] = (), cmd: Sequence[str] = ("sh",)) -> None:
        """Build a busybox image (OCI layout), convert it to a `docker save` tar, load it."""
        import docker

        work = self.root / "images" / tag.replace("/", "_").replace(":", "_")
        work.mkdir(parents=True, exist_ok=True)
        busybox_image(work / "layout", "latest", entrypoint=entrypoint, cmd=cmd)
        archive = work / "image.tar"
        copy_image(f"oci:{work / 'layout'}:latest", f"docker-archive:{archive}:{tag}")
        client = docker.DockerClient(base_url=self.socket, version="auto")
        try:
            with open(archive, "rb") as f:
                client.api.load_image(f)
        finally:
            client.close()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Stop the engine (its containers die with it), delete docker0, remove its files."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # A SIGKILLed engine may leave its containerd and shims behind (same session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, check=False)
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def start_dockerd(root: Path, *, timeout: float = READY_TIMEOUT) -> DockerEngine:
    """Start `dockerd` with all its state under `root`; return it once it answers."""
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "docker.sock"
    log_path = root / "dockerd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["dockerd", "--host", f"unix://{socket_path}", "--data-root", str(root / "data"),
             "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
             "--iptables=false", "--ip-masq=false", "--userland-proxy=true"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    engine = DockerEngine(socket_path, root, proc)
    deadline = time.monotonic() + timeout
    while not _pings(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = engine.log_tail()
            engine.stop()
            raise RuntimeError(f"dockerd did not come up:\n{tail}")
        time.sleep(0.05)
    return engine


def _pings(socket_path: Path) -> bool:
    import socket

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


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
