"""Wait for a file to appear without polling: Linux inotify, through libc.

    watcher = FileWatcher()
    await watcher.wait(sandbox / ".lichen" / "pid", timeout=10, abandon=proc_ended)
    watcher.close()

A launch waits twice for a file another process writes (the task wrapper's pid file, then
the OCI runtime's `--pid-file`); polling them costs half a polling interval per launch on
average, and fine polling costs CPU. One inotify descriptor per watcher, read by the event
loop while anyone waits (and closed when nobody does), wakes each waiter as soon as a
file is created or renamed into its directory.

Where inotify is unavailable (no libc symbol, out of watches), `wait` falls back to polling
every `FALLBACK_POLL` seconds; callers see no difference but latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Callable
from pathlib import Path

IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_CLOSE_WRITE = 0x8
IN_IGNORED = 0x8000
FALLBACK_POLL = 0.005
RECHECK = 0.05        # with inotify, `abandon` and the file are still checked this often
_EVENT = struct.Struct("iIII")        # wd, mask, cookie, len


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 (probe the symbol)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class FileWatcher:
    """Waiters for files to appear, woken by one inotify descriptor on the running loop."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirs: dict[str, int] = {}                   # directory -> watch descriptor
        self._waiters: dict[int, dict[Path, list[asyncio.Future[None]]]] = {}

    async def wait(self, path: Path, timeout: float, abandon: Callable[[], bool] | None = None) -> bool:
        """True once `path` exists; False when `abandon()` turns true first (it is checked
        on every wake-up, and at least every RECHECK seconds). Raises TimeoutError after `timeout`
        seconds."""
        path = Path(path)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wd = self._watch(path.parent)
        interval = FALLBACK_POLL if wd is None else RECHECK
        try:
            while True:
                if path.exists():
                    return True
                if abandon is not None and abandon():
                    return False
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"{path} did not appear within {timeout:g}s")
                if wd is None:
                    await asyncio.sleep(min(interval, remaining))
                    continue
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(wd, {}).setdefault(path, []).append(future)
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(future), min(interval, remaining))
                finally:
                    self._forget(wd, path, future)
        finally:
            if wd is not None:
                self._unwatch_if_idle(path.parent, wd)

    def close(self) -> None:
        """Drop every watch and the descriptor; pending waiters fall back to their deadline."""
        if self._fd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        self._dirs.clear()
        for by_path in self._waiters.values():
            for futures in by_path.values():
                for f in futures:
                    if not f.done():
                        with contextlib.suppress(RuntimeError):   # its loop is closed
                            f.set_result(None)
        self._waiters.clear()

    # -- inotify -------------------------------------------------------------------------------

    def _descriptor(self) -> int | None:
        if self._fd is not None and self._loop is asyncio.get_running_loop():
            return self._fd
        self.close()                         # first use, or a new event loop
        if _LIBC is None:
            return None
        fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return None
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)
        return fd

    def _watch(self, directory: Path) -> int | None:
        fd = self._descriptor()
        if fd is None or _LIBC is None:
            return None
        wd = self._dirs.get(str(directory))
        if wd is not None:
            return wd
        wd = _LIBC.inotify_add_watch(fd, os.fsencode(str(directory)), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)
        if wd < 0:
            return None                     # ENOENT, ENOSPC (out of watches): poll instead
        self._dirs[str(directory)] = wd
        return wd

    def _unwatch_if_idle(self, directory: Path, wd: int) -> None:
        if self._waiters.get(wd) or self._fd is None or _LIBC is None:
            return
        if self._dirs.pop(str(directory), None) is not None:
            _LIBC.inotify_rm_watch(self._fd, wd)
        self._waiters.pop(wd, None)
        if not self._waiters:
            # Nobody waits: give the descriptor back (a user may hold only 128 inotify
            # instances, fs.inotify.max_user_instances); the next wait opens one again.
            self.close()

    def _forget(self, wd: int, path: Path, future: asyncio.Future[None]) -> None:
        by_path = self._waiters.get(wd)
        if by_path is None:
            return
        futures = by_path.get(path, [])
        with contextlib.suppress(ValueError):
            futures.remove(future)
        if not futures:
            by_path.pop(path, None)
        if not by_path:
            self._waiters.pop(wd, None)

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & IN_IGNORED:          # the directory went away: wake everyone to re-check
                for directory in [d for d, w in self._dirs.items() if w == wd]:
                    del self._dirs[directory]
            by_path = self._waiters.get(wd)
            if not by_path:
                continue
            if mask & IN_IGNORED:
                targets = [f for fs in by_path.values() for f in fs]
            else:
                name = os.fsdecode(raw)
                targets = [f for p, fs in by_path.items() if p.name == name for f in fs]
            for f in targets:
                if not f.done():
                    f.set_result(None)
