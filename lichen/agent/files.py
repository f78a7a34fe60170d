"""`/files/*`: reading sandboxes over HTTP, confined to the agent's work dir.

A path is an absolute path on the host (what `/state` reports as an executor's
`directory`). It is resolved (symlinks followed) and must land inside
`<work-dir>/slaves/`; anything else is 403, a missing file 404, bad arguments 400.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Any

from lichen.errors import Forbidden, InvalidRequest, NotFound

DEFAULT_READ_LENGTH = 64 * 1024


class Sandboxes:
    """File access rooted at `root` (the agent's `<work-dir>/slaves`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, path: str | None) -> Path:
        """The real path for a request's `path`, or 400/403/404."""
        if not path:
            raise InvalidRequest("Expecting 'path' query parameter")
        root = self.root.resolve()
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = root / candidate
        try:
            real = candidate.resolve(strict=False)
        except (OSError, RuntimeError):
            raise NotFound(f"Failed to find '{path}'") from None
        if real != root and root not in real.parents:
            raise Forbidden(f"Access to '{path}' is forbidden")
        if not real.exists():
            raise NotFound(f"Failed to find '{path}'")
        return real

    def browse(self, path: str | None) -> list[dict[str, Any]]:
        real = self.resolve(path)
        if not real.is_dir():
            return [_entry(real, Path(path or str(real)))]
        base = Path(path or str(real))
        out = []
        for child in sorted(real.iterdir()):
            out.append(_entry(child, base / child.name))
        return out

    def read(self, path: str | None, offset: str | None, length: str | None) -> dict[str, Any]:
        real = self.resolve(path)
        if real.is_dir():
            raise InvalidRequest(f"Cannot read a directory: '{path}'")
        off = _int_arg("offset", offset, default=0)
        size = real.stat().st_size
        if off == -1:
            return {"data": "", "offset": size}
        if off < 0:
            raise InvalidRequest(f"Negative offset provided: {off}")
        n = _int_arg("length", length, default=DEFAULT_READ_LENGTH)
        if n < 0:
            raise InvalidRequest(f"Negative length provided: {n}")
        n = min(n, DEFAULT_READ_LENGTH) if length is None else n
        with open(real, "rb") as f:
            f.seek(off)
            data = f.read(n)
        return {"data": data.decode("utf-8", errors="replace"), "offset": off}

    def download(self, path: str | None) -> Path:
        real = self.resolve(path)
        if real.is_dir():
            raise InvalidRequest(f"Cannot download a directory: '{path}'")
        return real


def _int_arg(name: str, value: str | None, *, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"Failed to parse {name}: '{value}' is not a number") from None


def _entry(real: Path, shown: Path) -> dict[str, Any]:
    st = real.lstat()
    return {
        "path": str(shown),
        "nlink": st.st_nlink,
        "size": st.st_size,
        "mtime": int(st.st_mtime),
        "mode": stat.filemode(st.st_mode),
        "uid": _user(st.st_uid),
        "gid": _group(st.st_gid),
    }


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def ensure_dir(path: Path) -> None:
    os.makedirs(path, exist_ok=True)
