"""Unpack one layer tar into a directory, safely, with whiteouts in overlayfs form (blocking).

The layer is checked twice: the blob's sha256 against its manifest digest, and the sha256 of
the uncompressed tar stream against the config's `diff_id`. A mismatch (or a tar that does
not read) raises ImageError("corrupt layer sha256:..."); the caller unpacks into a staging
directory and throws it away then.

Safety: member names are normalised; a name with a `..` component, or whose parent path
goes through a symlink, is refused (so nothing lands outside the layer dir, whatever order
links and files come in). Hard links must point at a file already unpacked in this layer.
Modes, owners, mtimes, symlinks, hard links, fifos and devices are kept as far as the
running user may (owners and devices need root; without it they are skipped).

Whiteouts (OCI image spec, "Whiteouts") become what overlayfs reads in a lower layer:
  `dir/.wh.name`   ->  `dir/name` as a character device 0/0
  `dir/.wh..wh..opq` -> the xattr `trusted.overlay.opaque=y` on `dir`
Both need root (CAP_MKNOD, CAP_SYS_ADMIN); without it the layer fails to unpack with a
message saying so.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO, cast

from lichen.agent.images.errors import ImageError

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def unpack_layer(blob: Path, dest: Path, *, digest: str, diff_id: str) -> int:
    """Verify the layer blob and unpack it into `dest` (created). Returns its unpacked bytes."""
    if not digest.startswith("sha256:") or not diff_id.startswith("sha256:"):
        raise ImageError(f"layer {digest}: only sha256 digests are supported")
    actual = file_digest(blob)
    if actual != digest:
        raise ImageError(f"corrupt layer {digest}: its content has digest {actual}")
    dest.mkdir(parents=True)
    with open(blob, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(_ZSTD_MAGIC):
            raise ImageError(f"layer {digest}: zstd-compressed layers are not supported")
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if magic.startswith(_GZIP_MAGIC) else raw
        reader = _HashingReader(stream)
        try:
            size = _Extractor(dest).extract(reader)
            reader.drain()
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise ImageError(f"corrupt layer {digest}: {e}") from None
    if reader.digest() != diff_id:
        raise ImageError(
            f"corrupt layer {digest}: uncompressed content has digest {reader.digest()}, "
            f"expected {diff_id}"
        )
    return size


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


class _Extractor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.is_root = os.geteuid() == 0
        self.dirs: list[tuple[Path, tarfile.TarInfo]] = []

    def extract(self, stream: _HashingReader) -> int:
        size = 0
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                size += self._member(tar, member)
        # Directory modes and times last: entries written into them change their mtime,
        # and a read-only directory would refuse them.
        for path, member in reversed(self.dirs):
            self._finish(path, member)
        return size

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> int:
        name = _normalise(member.name)
        if name is None:
            raise ImageError(f"layer member '{member.name}' escapes the layer")
        if name == "":
            return 0                    # the layer's root directory itself
        parent_name, base = posixpath.split(name)
        parent = self._parent(parent_name, member.name)
        if base == OPAQUE_MARKER:
            self._set_opaque(parent, member.name)
            return 0
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent / base[len(WHITEOUT_PREFIX):], member.name)
            return 0
        target = parent / base
        if member.isdir():
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                _remove(target)
            target.mkdir(exist_ok=True)
            self.dirs.append((target, member))
            return 0
        _remove(target)
        if member.isreg():
            self._write_file(tar, member, target)
        elif member.issym():
            os.symlink(member.linkname, target)
        elif member.islnk():
            self._hardlink(member, target)
            return 0
        elif member.ischr() or member.isblk() or member.isfifo():
            if not self._device(member, target):
                return 0
        else:
            return 0                    # tar types with no file (GNU volume headers, ...)
        self._finish(target, member)
        return member.size if member.isreg() else 0

    def _parent(self, parent_name: str, original: str) -> Path:
        """The member's parent dir, created as needed; refuses a path through a symlink."""
        path = self.root
        for part in parent_name.split("/") if parent_name else []:
            path = path / part
            if path.is_symlink():
                raise ImageError(f"layer member '{original}' goes through the symlink '{part}'")
            if not path.exists():
                path.mkdir(mode=0o755)
            elif not path.is_dir():
                raise ImageError(f"layer member '{original}' is below the non-directory '{part}'")
        return path

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
        source = tar.extractfile(member)
        assert source is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)

    def _hardlink(self, member: tarfile.TarInfo, target: Path) -> None:
        link_name = _normalise(member.linkname)
        if not link_name:
            raise ImageError(f"hard link '{member.name}' points outside the layer")
        link_parent, link_base = posixpath.split(link_name)
        source = self._parent(link_parent, member.linkname) / link_base
        if source.is_symlink() or not source.is_file():
            raise ImageError(f"hard link '{member.name}' points at '{member.linkname}', "
                             "which is not a file of this layer")
        os.link(source, target, follow_symlinks=False)

    def _device(self, member: tarfile.TarInfo, target: Path) -> bool:
        kind = stat.S_IFIFO if member.isfifo() else stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        try:
            os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        except PermissionError:
            return False                # devices need root; a rootless store skips them
        return True

    def _whiteout(self, target: Path, original: str) -> None:
        _remove(target)
        try:
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        except PermissionError:
            raise ImageError(f"cannot store the whiteout '{original}': it needs root") from None

    def _set_opaque(self, directory: Path, original: str) -> None:
        try:
            os.setxattr(directory, OPAQUE_XATTR, b"y", follow_symlinks=False)
        except OSError as e:
            raise ImageError(f"cannot mark '{original}' opaque: {e.strerror} (it needs root)") from None

    def _finish(self, path: Path, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears set-id bits), xattrs, then times."""
        symlink = member.issym()
        if self.is_root:
            with contextlib.suppress(OSError):
                os.lchown(path, member.uid, member.gid)
        if not symlink:
            os.chmod(path, stat.S_IMODE(member.mode))
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                with contextlib.suppress(OSError):
                    os.setxattr(path, key[len("SCHILY.xattr."):],
                                value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        with contextlib.suppress(OSError):
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def _normalise(name: str) -> str | None:
    """`name` relative to the layer root ("" for the root), or None when it escapes it."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _remove(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
