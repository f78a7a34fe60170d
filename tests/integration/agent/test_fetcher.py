"""The fetcher against a loopback HTTP server and local files."""

from __future__ import annotations

import asyncio
import io
import os
import pwd
import socket
import stat
import tarfile
import zipfile
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from lichen.agent.fetcher import FetchError, fetch

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coro

    return asyncio.run(bounded())


@asynccontextmanager
async def serving(files: dict[str, bytes], hits: list[str]) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits.append(name)
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name])

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    path.mkdir()
    return path


def test_http_uri_lands_in_the_sandbox_under_its_name(sandbox: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with serving({"hello.txt": b"hi"}, []) as base:
            await fetch([{"value": f"{base}/hello.txt"}], sandbox, tmp_path / "cache")

    run(body())
    assert (sandbox / "hello.txt").read_bytes() == b"hi"


def test_output_file_renames_the_download(sandbox: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with serving({"a": b"data"}, []) as base:
            uri = {"value": f"{base}/a", "output_file": "sub/b.txt"}
            await fetch([uri], sandbox, tmp_path / "cache")

    run(body())
    assert (sandbox / "sub" / "b.txt").read_bytes() == b"data"


def test_output_file_outside_the_sandbox_is_refused(sandbox: Path, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(FetchError, match="not inside the sandbox"):
        run(fetch([{"value": str(src), "output_file": "../escape"}], sandbox, tmp_path / "cache"))
    assert not (tmp_path / "escape").exists()


def test_http_404_names_the_uri_and_the_status(sandbox: Path, tmp_path: Path) -> None:
    async def body() -> str:
        async with serving({}, []) as base:
            uri = f"{base}/missing.tgz"
            with pytest.raises(FetchError) as caught:
                await fetch([{"value": uri}], sandbox, tmp_path / "cache")
            assert uri in str(caught.value)
            return str(caught.value)

    assert "404" in run(body())
    assert not (sandbox / "missing.tgz").exists()


def test_connection_refused_is_a_fetch_error(sandbox: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # closed again: nobody listens there
    uri = f"http://127.0.0.1:{port}/x"
    with pytest.raises(FetchError, match="connection failed") as caught:
        run(fetch([{"value": uri}], sandbox, tmp_path / "cache"))
    assert uri in str(caught.value)


def test_file_uri_and_plain_path_are_copied(sandbox: Path, tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("A")
    b = tmp_path / "b.txt"
    b.write_text("B")
    run(fetch([{"value": a.as_uri()}, {"value": str(b)}], sandbox, tmp_path / "cache"))
    assert (sandbox / "a.txt").read_text() == "A"
    assert (sandbox / "b.txt").read_text() == "B"


def test_missing_local_file_is_a_fetch_error(sandbox: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no such file"):
        run(fetch([{"value": str(tmp_path / "nope")}], sandbox, tmp_path / "cache"))


def test_unsupported_scheme_is_a_fetch_error(sandbox: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unsupported scheme 'ftp'"):
        run(fetch([{"value": "ftp://example.com/x"}], sandbox, tmp_path / "cache"))


def test_tar_gz_is_extracted_keeping_modes(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "app.tar.gz"
    archive.write_bytes(_tar_gz({"app/run.sh": b"#!/bin/sh\n", "app/conf": b"c"}))
    run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache"))
    assert (sandbox / "app" / "conf").read_bytes() == b"c"
    assert os.access(sandbox / "app" / "run.sh", os.X_OK)
    assert (sandbox / "app.tar.gz").exists()     # Mesos keeps the archive too


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")])
def test_other_tar_compressions_are_extracted(
    sandbox: Path, tmp_path: Path, suffix: str, mode: str
) -> None:
    archive = tmp_path / f"a{suffix}"
    with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"1"))
    run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache"))
    assert (sandbox / "f").read_bytes() == b"1"


def test_zip_is_extracted_keeping_modes(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(_zip({"bin/go.sh": b"#!/bin/sh\n", "data.txt": b"d"}))
    run(fetch([{"value": archive.as_uri()}], sandbox, tmp_path / "cache"))
    assert (sandbox / "data.txt").read_bytes() == b"d"
    assert os.access(sandbox / "bin" / "go.sh", os.X_OK)


def test_extract_false_leaves_the_archive_alone(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "app.tgz"
    archive.write_bytes(_tar_gz({"inside": b"x"}))
    run(fetch([{"value": str(archive), "extract": False}], sandbox, tmp_path / "cache"))
    assert (sandbox / "app.tgz").exists()
    assert not (sandbox / "inside").exists()


def test_executable_sets_the_x_bits_and_does_not_extract(sandbox: Path, tmp_path: Path) -> None:
    tool = tmp_path / "tool.tar.gz"
    tool.write_bytes(_tar_gz({"inside": b"x"}))
    tool.chmod(0o644)
    run(fetch([{"value": str(tool), "executable": True}], sandbox, tmp_path / "cache"))
    mode = (sandbox / "tool.tar.gz").stat().st_mode
    assert mode & stat.S_IXUSR and mode & stat.S_IXOTH
    assert not (sandbox / "inside").exists()


def test_tar_with_path_traversal_is_refused(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar_gz({"../../evil": b"x"}))
    with pytest.raises(FetchError, match="cannot extract"):
        run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache"))
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path.parent / "evil").exists()


def test_tar_with_absolute_symlink_is_refused(sandbox: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("etc")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc"
        tar.addfile(link)
    archive = tmp_path / "link.tar"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(FetchError, match="cannot extract"):
        run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache"))


def test_zip_with_path_traversal_is_refused(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"../evil": b"x"}))
    with pytest.raises(FetchError, match="outside the sandbox"):
        run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache"))
    assert not (tmp_path / "evil").exists()


def test_corrupt_archive_is_a_fetch_error(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"this is not gzip")
    with pytest.raises(FetchError, match="broken.tar.gz"):
        run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache"))


def test_cached_uri_is_downloaded_once(tmp_path: Path) -> None:
    hits: list[str] = []

    async def body() -> None:
        async with serving({"big.bin": b"0123"}, hits) as base:
            uri: dict[str, Any] = {"value": f"{base}/big.bin", "cache": True}
            for n in range(2):
                box = tmp_path / f"sandbox{n}"
                box.mkdir()
                await fetch([uri], box, tmp_path / "cache")

    run(body())
    assert hits == ["big.bin"]
    assert (tmp_path / "sandbox1" / "big.bin").read_bytes() == b"0123"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_fetched_files_belong_to_the_user(sandbox: Path, tmp_path: Path) -> None:
    archive = tmp_path / "app.tgz"
    archive.write_bytes(_tar_gz({"app/conf": b"c"}))
    run(fetch([{"value": str(archive)}], sandbox, tmp_path / "cache", user="nobody"))
    nobody = pwd.getpwnam("nobody").pw_uid
    assert (sandbox / "app.tgz").stat().st_uid == nobody
    assert (sandbox / "app" / "conf").stat().st_uid == nobody
