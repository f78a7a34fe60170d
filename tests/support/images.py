"""Small test images built from Debian's busybox-static, and a real registry to serve them.

    busybox_layer()                       a layer tar: /bin/busybox, applet symlinks, /etc files
    files_layer(files, whiteouts=..., opaque_dirs=...)   a layer tar of given files/whiteouts
    build_image(layout, tag, layers, entrypoint=..., cmd=..., env=..., working_dir=..., user=...)
                                          add an image to an OCI layout dir; returns its id
    build_index(layout, tag, {"amd64": tag1, "arm64": tag2})   a manifest list of those images
    host_arch()                           "amd64", "arm64": the host's platform architecture
    busybox_image(layout, tag, extra_layers=(), **config)   the busybox layer (+ extras)
    copy_image(source, dest, *args)       `skopeo copy`, e.g. to a docker-archive: tarball
    start_registry(work_dir, auth=None) -> Registry     Debian's docker-registry on loopback
    registry.push(layout, tag, "repo:tag", *args)       skopeo copy oci:... docker://... (args:
                                                        "--all" for a manifest list)
    registry.stop()                                     (or use it as a context manager)
    write_auth_config(path, registry.addr, user, password)   a Docker-style config.json

Layers are deterministic (fixed owners and times, gzip without a timestamp), so the same
layer built twice has the same digest: two images built on `busybox_layer()` share it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import gzip
import hashlib
import io
import json
import os
import platform
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "echo", "cat", "ls", "httpd", "env", "id", "pwd", "true", "false",
           "test", "kill", "ps", "wget", "nc", "mkdir", "rm", "head", "dd", "stat")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}

__all__ = [
    "APPLETS",
    "Registry",
    "build_image",
    "build_index",
    "busybox_image",
    "busybox_layer",
    "copy_image",
    "files_layer",
    "host_arch",
    "start_registry",
    "write_auth_config",
]


# --- layers ---------------------------------------------------------------------------

def busybox_layer(applets: Iterable[str] = APPLETS) -> bytes:
    """An uncompressed layer tar: /bin/busybox, `/bin/<applet>` -> busybox, /etc/passwd,
    /etc/group (root and nobody), /tmp (1777)."""
    entries = _Tar()
    for d in ("bin", "etc", "tmp", "root"):
        entries.dir(d, 0o1777 if d == "tmp" else 0o755)
    entries.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for applet in applets:
        entries.symlink(f"bin/{applet}", "busybox")
    entries.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    entries.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return entries.finish()


def files_layer(
    files: Mapping[str, bytes] = {}, *, dirs: Iterable[str] = (),
    whiteouts: Iterable[str] = (), opaque_dirs: Iterable[str] = (),
) -> bytes:
    """An uncompressed layer tar with `files` (path -> content, mode 0644), `dirs`,
    whiteouts (`a/b` writes `a/.wh.b`) and opaque dirs (`a` writes `a/.wh..wh..opq`)."""
    entries = _Tar()
    for d in dirs:
        entries.dir(d, 0o755)
    for d in opaque_dirs:
        entries.dir(d, 0o755)
        entries.file(f"{d}/.wh..wh..opq", b"", 0o644)
    for path in whiteouts:
        parent, _, name = path.rpartition("/")
        entries.file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"", 0o644)
    for path, content in files.items():
        entries.file(path, content, 0o644)
    return entries.finish()


class _Tar:
    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(  # noqa: SIM115 - closed by finish()
            fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
        return info

    def dir(self, name: str, mode: int) -> None:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, content: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(content)
        self._tar.addfile(info, io.BytesIO(content))

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def finish(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


# --- images in an OCI layout ----------------------------------------------------------

def build_image(
    layout: Path, tag: str, layers: Sequence[bytes], *,
    entrypoint: Sequence[str] = (), cmd: Sequence[str] = ("sh",), env: Sequence[str] = (PATH,),
    working_dir: str = "", user: str = "", compress: bool = True, architecture: str | None = None,
) -> str:
    """Add an image of `layers` (uncompressed tars, lowest first) tagged `tag` to the OCI
    layout dir `layout` (created when missing; an image with the same tag is replaced).
    Returns the image id (its config digest)."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layer_descriptors = []
    for tar in layers:
        blob = gzip.compress(tar, mtime=0) if compress else tar
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
        layer_descriptors.append(_put_blob(layout, blob, media))
    config = {
        "architecture": architecture or host_arch(), "os": "linux",
        "config": {"Entrypoint": list(entrypoint) or None, "Cmd": list(cmd) or None,
                   "Env": list(env), "WorkingDir": working_dir, "User": user},
        "rootfs": {"type": "layers", "diff_ids": [_digest(tar) for tar in layers]},
    }
    config_descriptor = _put_blob(layout, _json(config), "application/vnd.oci.image.config.v1+json")
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    manifest = {
        "schemaVersion": 2, "mediaType": manifest_type,
        "config": config_descriptor, "layers": layer_descriptors,
    }
    descriptor = _put_blob(layout, _json(manifest), manifest_type)
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index_path = layout / "index.json"
    index: dict[str, Any] = (
        json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2}
    )
    index["manifests"] = [
        m for m in index.get("manifests", [])
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [descriptor]
    index_path.write_text(json.dumps(index))
    return str(config_descriptor["digest"])


def build_index(layout: Path, tag: str, platform_tags: Mapping[str, str]) -> None:
    """Tag as `tag` an image index (manifest list) of images already in `layout`:
    `platform_tags` maps an architecture ("amd64") to the tag of its linux image."""
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    manifests = [
        {"mediaType": by_tag[t]["mediaType"], "digest": by_tag[t]["digest"], "size": by_tag[t]["size"],
         "platform": {"os": "linux", "architecture": arch}}
        for arch, t in platform_tags.items()
    ]
    index_type = "application/vnd.oci.image.index.v1+json"
    descriptor = _put_blob(
        layout, _json({"schemaVersion": 2, "mediaType": index_type, "manifests": manifests}), index_type)
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index["manifests"] = [m for t, m in by_tag.items() if t != tag] + [descriptor]
    index_path.write_text(json.dumps(index))


def host_arch() -> str:
    """The host's architecture as image platforms spell it ("amd64", "arm64")."""
    return _GOARCH.get(platform.machine(), platform.machine())


def busybox_image(layout: Path, tag: str = "latest", *, extra_layers: Sequence[bytes] = (),
                  **config: object) -> str:
    """`build_image` with `busybox_layer()` below `extra_layers`; `config` as build_image's."""
    return build_image(layout, tag, [busybox_layer(), *extra_layers], **config)  # type: ignore[arg-type]


def copy_image(source: str, dest: str, *args: str) -> None:
    """`skopeo copy ARGS SOURCE DEST` (e.g. `oci:DIR:TAG` to `docker-archive:FILE:name:tag`)."""
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", *args, source, dest],
                   check=True, capture_output=True, timeout=120)


def _put_blob(layout: Path, blob: bytes, media_type: str) -> dict[str, object]:
    digest = _digest(blob)
    (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(blob)
    return {"mediaType": media_type, "digest": digest, "size": len(blob)}


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


# --- a registry -----------------------------------------------------------------------

@dataclass
class Registry:
    """Debian's docker-registry serving on `addr` (127.0.0.1:port) from `storage`."""

    addr: str
    storage: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    auth: tuple[str, str] | None = None

    def push(self, layout: Path, tag: str, name: str, *extra: str) -> None:
        """Push the image tagged `tag` in `layout` as `name` ("repo:tag") to this registry,
        with `extra` skopeo copy flags ("--all" pushes every image of a manifest list)."""
        args = ["--dest-tls-verify=false", *extra]
        if self.auth is not None:
            args += ["--dest-creds", f"{self.auth[0]}:{self.auth[1]}"]
        copy_image(f"oci:{layout}:{tag}", f"docker://{self.addr}/{name}", *args)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 10 s. Safe to call twice."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> Registry:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_registry(work_dir: Path, *, auth: tuple[str, str] | None = None,
                   timeout: float = 20) -> Registry:
    """Start `docker-registry serve` on a free loopback port, storing in `work_dir`, with
    htpasswd basic auth for the one user `auth` = (user, password) when given."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = [
        "version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
        f"    rootdirectory: {work_dir / 'storage'}", "http:", f"  addr: 127.0.0.1:{port}",
    ]
    if auth is not None:
        htpasswd = work_dir / "htpasswd"
        htpasswd.write_text(f"{auth[0]}:{_bcrypt(auth[1])}\n")
        config += ["auth:", "  htpasswd:", "    realm: lichen-test", f"    path: {htpasswd}"]
    config_path = work_dir / "config.yml"
    config_path.write_text("\n".join(config) + "\n")
    log_path = work_dir / "registry.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config_path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    registry = Registry(f"127.0.0.1:{port}", work_dir / "storage", proc, log_path, auth)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"docker-registry exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"http://{registry.addr}/v2/", timeout=2).status_code in (200, 401):
                return registry
        if time.monotonic() > deadline:
            registry.stop()
            raise AssertionError(f"docker-registry not ready: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)


def write_auth_config(path: Path, registry_addr: str, user: str, password: str) -> Path:
    """A Docker-style config.json with basic credentials for `registry_addr`."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry_addr: {"auth": token}}}))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bcrypt(password: str) -> str:
    """A bcrypt hash (what docker-registry's htpasswd wants), from the system's libcrypt."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2y$", 5, None, 0)
    hashed = lib.crypt(password.encode(), salt)
    assert hashed and hashed.startswith(b"$2"), "libcrypt cannot make bcrypt hashes"
    return str(hashed.decode())
