"""A real Docker Engine (Debian's `docker.io`) for a test session, on a private socket.

    engine = start_dockerd(tmp_dir)        # returns once the socket answers /_ping
    engine.socket                          # "unix:///.../docker.sock"
    engine.load_busybox("lichen-test/busybox:latest", entrypoint=..., cmd=...)   # see tests/support/images.py
    engine.stop()                          # SIGTERM, SIGKILL after a deadline; removes docker0

A thin layer over `lichen.bench.dockerd` (which starts, waits for and stops the engine,
and is documented there) that adds loading the tests' busybox images. Everything the
engine keeps lives under `tmp_dir`, never in /var/lib/docker. The engine runs with
`--iptables=false` and creates the `docker0` bridge (BRIDGE port mappings need it);
`stop` deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lichen.bench import dockerd as _engine
from lichen.bench.dockerd import READY_TIMEOUT, STOP_TIMEOUT, dockerd_available
from tests.support.images import busybox_image

__all__ = ["READY_TIMEOUT", "STOP_TIMEOUT", "DockerEngine", "dockerd_available", "start_dockerd"]


@dataclass(frozen=True, slots=True)
class DockerEngine(_engine.DockerEngine):
    def load_busybox(self, tag: str, *, entrypoint: Sequence[str] = (), cmd: Sequence[str] = ("sh",)) -> None:
        """Build a busybox image (OCI layout) and load it into the engine as `tag`."""
        layout = self.root / "images" / (tag.replace("/", "_").replace(":", "_") + "-layout")
        busybox_image(layout, "latest", entrypoint=entrypoint, cmd=cmd)
        self.load_layout(layout, "latest", tag)


def start_dockerd(root: Path, *, timeout: float = READY_TIMEOUT) -> DockerEngine:
    """Start `dockerd` with all its state under `root` (keep it short: the engine's unix
    sockets live below it); return it once it answers."""
    engine = _engine.start_dockerd(root, bridge=True, timeout=timeout)
    return DockerEngine(engine.socket_path, engine.root, engine.proc, engine.bridge)
