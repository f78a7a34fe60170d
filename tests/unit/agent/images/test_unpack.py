"""Layer unpacking on the local file system (no registry, no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from lichen.agent.images import ImageError
from lichen.agent.images.unpack import unpack_layer


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, link: str = "",
          uid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.uid, info.gid, info.mtime = kind, mode, link, uid, uid, 1000
    return info


def unpack(tmp_path: Path, tar: bytes, *, compress: bool = True, diff_id: str | None = None) -> Path:
    blob = gzip.compress(tar, mtime=0) if compress else tar
    path = tmp_path / "blob"
    path.write_bytes(blob)
    dest = tmp_path / "rootfs"
    unpack_layer(path, dest, digest="sha256:" + hashlib.sha256(blob).hexdigest(),
                 diff_id=diff_id or "sha256:" + hashlib.sha256(tar).hexdigest())
    return dest


def test_files_links_modes_and_owners_are_kept(tmp_path: Path) -> None:
    rootfs = unpack(tmp_path, tar_of(
        (entry("usr/bin", tarfile.DIRTYPE, mode=0o555), b""),
        (entry("usr/bin/tool", mode=0o4755, uid=1234), b"#!"),
        (entry("usr/bin/alias", tarfile.SYMTYPE, link="/usr/bin/tool"), b""),
        (entry("usr/bin/hard", tarfile.LNKTYPE, link="usr/bin/tool"), b""),
        (entry("dev/null", tarfile.CHRTYPE, mode=0o666), b""),
    ))
    tool = (rootfs / "usr/bin/tool").stat()
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and tool.st_uid == 1234
    assert tool.st_mtime == 1000
    assert os.readlink(rootfs / "usr/bin/alias") == "/usr/bin/tool"
    assert (rootfs / "usr/bin/hard").stat().st_ino == tool.st_ino
    assert stat.S_IMODE((rootfs / "usr/bin").stat().st_mode) == 0o555
    assert stat.S_ISCHR(os.lstat(rootfs / "dev/null").st_mode)


def test_an_uncompressed_layer_unpacks(tmp_path: Path) -> None:
    rootfs = unpack(tmp_path, tar_of((entry("a"), b"x")), compress=False)
    assert (rootfs / "a").read_bytes() == b"x"


@pytest.mark.parametrize("members", [
    [(entry("../escape"), b"x")],
    [(entry("a/../../escape"), b"x")],
    [(entry("link", tarfile.SYMTYPE, link="/tmp"), b""), (entry("link/escape"), b"x")],
    [(entry("hard", tarfile.LNKTYPE, link="../../etc/passwd"), b"")],
    [(entry("hard", tarfile.LNKTYPE, link="missing"), b"")],
])
def test_members_that_would_land_outside_the_layer_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    with pytest.raises(ImageError):
        unpack(tmp_path, tar_of(*members))
    assert not (tmp_path / "escape").exists()
    assert not Path("/tmp/escape").exists()


def test_a_blob_with_another_digest_is_a_corrupt_layer(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(gzip.compress(tar_of((entry("a"), b"x"))))
    with pytest.raises(ImageError, match="corrupt layer sha256:0000"):
        unpack_layer(path, tmp_path / "rootfs", digest="sha256:" + "0" * 64, diff_id="sha256:" + "0" * 64)


def test_content_with_another_diff_id_is_a_corrupt_layer(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="uncompressed content has digest"):
        unpack(tmp_path, tar_of((entry("a"), b"x")), diff_id="sha256:" + "1" * 64)


def test_a_truncated_blob_is_a_corrupt_layer(tmp_path: Path) -> None:
    blob = gzip.compress(tar_of((entry("a"), b"x" * 100_000)))[:200]
    path = tmp_path / "blob"
    path.write_bytes(blob)
    with pytest.raises(ImageError, match="corrupt layer"):
        unpack_layer(path, tmp_path / "rootfs", digest="sha256:" + hashlib.sha256(blob).hexdigest(),
                     diff_id="sha256:" + "1" * 64)
