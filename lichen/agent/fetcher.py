"""The fetcher: puts a task's CommandInfo.uris into its sandbox before it starts.

Each URI is `{value, executable?, extract? (default true), cache?, output_file?}` as in
Mesos. `value` is an http(s) URL, a file:// URL or an absolute path. The file lands in the
sandbox under `output_file` or the URI's last path segment. `executable: true` sets the
+x bits and never extracts; otherwise a recognised archive (.tar, .tar.gz/.tgz, .tar.bz2,
.tar.xz, .zip) is extracted into the sandbox as well (members that would land outside the
sandbox, links pointing out of it and device files are refused). `cache: true` keeps a
copy in `cache_dir`, keyed by the URI, and later fetches of the same URI copy it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import shutil
import stat
import tarfile
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

from lichen.agent.containerizer.base import LaunchError

CHUNK = 1 << 16
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=60)

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class FetchError(LaunchError):
    """A URI could not be fetched; the message names it and says why."""


async def fetch(
    uris: list[dict[str, Any]], sandbox: Path, cache_dir: Path, *, user: str | None = None
) -> None:
    """Fetch every URI into `sandbox` (in order). Raises FetchError on the first failure."""
    sandbox = Path(sandbox)
    owner = _owner(user)
    for uri in uris:
        value = str(uri.get("value", ""))
        if not value:
            raise FetchError("a URI without a value")
        target = sandbox / _output_name(uri, value)
        if bool(uri.get("cache", False)):
            cached = await _fetch_cached(value, Path(cache_dir))
            await asyncio.to_thread(_copy, cached, target, value)
        else:
            await _download(value, target)
        if bool(uri.get("executable", False)):
            await asyncio.to_thread(_make_executable, target)
            extracted: list[Path] = []
        elif bool(uri.get("extract", True)) and _is_archive(target.name):
            extracted = await asyncio.to_thread(_extract, target, sandbox, value)
        else:
            extracted = []
        if owner is not None:
            await asyncio.to_thread(_chown, [target, *extracted], owner)


def _output_name(uri: dict[str, Any], value: str) -> str:
    name = str(uri.get("output_file") or "") or _basename(value)
    path = Path(name)
    if not name or path.is_absolute() or ".." in path.parts:
        raise FetchError(f"cannot fetch '{value}': output file '{name}' is not inside the sandbox")
    return name


def _basename(value: str) -> str:
    parsed = urllib.parse.urlparse(value)
    return os.path.basename(urllib.parse.unquote(parsed.path).rstrip("/"))


def _is_archive(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(_TAR_SUFFIXES) or lower.endswith(".zip")


async def _fetch_cached(value: str, cache_dir: Path) -> Path:
    entry = cache_dir / hashlib.sha256(value.encode()).hexdigest()[:32]
    cached = entry / (_basename(value) or "file")
    if cached.exists():
        return cached
    entry.mkdir(parents=True, exist_ok=True)
    tmp = entry / f".{cached.name}.{os.getpid()}.{id(cached)}.tmp"
    try:
        await _download(value, tmp)
        os.replace(tmp, cached)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return cached


async def _download(value: str, target: Path) -> None:
    scheme = urllib.parse.urlparse(value).scheme.lower()
    target.parent.mkdir(parents=True, exist_ok=True)
    if scheme in ("http", "https"):
        await _download_http(value, target)
    elif scheme == "file":
        source = Path(urllib.parse.unquote(urllib.parse.urlparse(value).path))
        await asyncio.to_thread(_copy, source, target, value)
    elif scheme == "" and value.startswith("/"):
        await asyncio.to_thread(_copy, Path(value), target, value)
    else:
        raise FetchError(f"cannot fetch '{value}': unsupported scheme '{scheme or value}'")


async def _download_http(value: str, target: Path) -> None:
    try:
        async with (
            aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
            session.get(value) as response,
        ):
            if response.status != 200:
                reason = f"HTTP {response.status} {response.reason or ''}".rstrip()
                raise FetchError(f"cannot fetch '{value}': {reason}")
            out = await asyncio.to_thread(target.open, "wb")
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise FetchError(f"cannot fetch '{value}': {_describe(e)}") from e


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"connection failed: {e.os_error.strerror or e.os_error}"
    return str(e) or type(e).__name__


def _copy(source: Path, target: Path, value: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except FileNotFoundError:
        raise FetchError(f"cannot fetch '{value}': no such file '{source}'") from None
    except IsADirectoryError:
        raise FetchError(f"cannot fetch '{value}': '{source}' is a directory") from None
    except OSError as e:
        raise FetchError(f"cannot fetch '{value}': {e.strerror or e}") from e


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _extract(archive: Path, sandbox: Path, value: str) -> list[Path]:
    """Extract into the sandbox; return the top-level paths created (for chown)."""
    try:
        if archive.name.lower().endswith(".zip"):
            names = _extract_zip(archive, sandbox)
        else:
            with tarfile.open(archive) as tar:
                names = tar.getnames()
                tar.extractall(sandbox, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise FetchError(f"cannot extract '{value}': {e}") from e
    tops = {Path(n).parts[0] for n in names if Path(n).parts and Path(n).parts[0] not in ("/", "..", ".")}
    return [sandbox / t for t in sorted(tops)]


def _extract_zip(archive: Path, sandbox: Path) -> list[str]:
    root = sandbox.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            dest = (root / info.filename).resolve()
            if dest != root and root not in dest.parents:
                raise ValueError(f"member '{info.filename}' would land outside the sandbox")
        for info in members:
            path = Path(zf.extract(info, root))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)
        return [info.filename for info in members]


def _owner(user: str | None) -> pwd.struct_passwd | None:
    if user is None or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise FetchError(f"unknown user '{user}'") from None


def _chown(paths: list[Path], owner: pwd.struct_passwd) -> None:
    for top in paths:
        if not top.exists():
            continue
        os.chown(top, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
        if top.is_dir() and not top.is_symlink():
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)
