"""Images served from a directory, for the oci containerizer's tests: a second
implementation of the image store's surface (`get`, `cached`, `acquire`, `release`) over
a busybox layer built in a temp dir, so those tests need no registry.

    images = DirImages(busybox_layer(tmp_path, applets=("httpd",)))
    images.add("busybox", Config())

and `remove_leftovers` cleans up after a test that failed half-way.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lichen.agent.containerizer import cgroups as cg
from lichen.agent.containerizer.oci import _is_mounted

T = TypeVar("T")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BASE_APPLETS = ("sh", "echo", "cat", "sleep", "true")


@dataclass(frozen=True)
class Config:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=lambda: ["sh"])
    env: list[str] = field(default_factory=lambda: ["PATH=/bin", "FROM_IMAGE=yes"])
    working_dir: str = ""
    user: str = ""


@dataclass(frozen=True)
class DirImage:
    layers: tuple[Path, ...]
    config: Config
    reference: str = ""


class DirImages:
    def __init__(self, layer: Path) -> None:
        self.images: dict[str, DirImage] = {}
        self.layer = layer
        self.held: dict[str, DirImage] = {}

    def add(self, name: str, config: Config) -> None:
        self.images[name] = DirImage((self.layer,), config, name)

    async def get(self, reference: str, force_pull: bool = False) -> DirImage:
        if reference not in self.images:
            raise LookupError(f"image '{reference}' not found")
        return self.images[reference]

    def cached(self, reference: str) -> DirImage | None:
        return self.images.get(reference)

    def acquire(self, image: DirImage, container_id: str) -> None:
        self.held[container_id] = image

    def release(self, container_id: str) -> None:
        self.held.pop(container_id, None)


def busybox_layer(root: Path, applets: Iterable[str] = (), dirs: Iterable[str] = (),
                  passwd: str = "root:x:0:0::/root:/bin/sh\n", group: str = "root:x:0:\n") -> Path:
    """`root/layer`: the host's static busybox with `BASE_APPLETS` and `applets` linked."""
    layer = root / "layer"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", *dirs):
        (layer / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, layer / "bin" / "busybox")
    for applet in dict.fromkeys((*BASE_APPLETS, *applets)):
        (layer / "bin" / applet).symlink_to("busybox")
    (layer / "etc" / "passwd").write_text(passwd)
    (layer / "etc" / "group").write_text(group)
    return layer


def run(coro: Awaitable[T]) -> T:
    """Run `coro` on a fresh event loop, failing after 60 s."""
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


def remove_leftovers(state_dir: Path, containers: Iterable[tuple[Path, str]], cgroups_root: str) -> None:
    """What a failed test may leave: runc containers (`(sandbox, container id)` pairs) in
    `state_dir`, their rootfs mounts, and every cgroup under `cgroups_root`."""
    for sandbox, container_id in containers:
        subprocess.run(["runc", "--root", str(state_dir), "delete", "--force", container_id],
                       check=False, capture_output=True)
        rootfs = sandbox / ".lichen" / "oci" / "rootfs"
        if _is_mounted(rootfs):
            subprocess.run(["umount", "-l", str(rootfs)], check=False)
    cg.remove_root(cgroups_root)
    for base in Path("/sys/fs/cgroup").iterdir():
        leftover = base / cgroups_root
        if leftover.is_dir():
            for child in sorted(leftover.rglob("*"), reverse=True):
                if child.is_dir():
                    child.rmdir()
            leftover.rmdir()
