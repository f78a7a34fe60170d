"""FileWatcher: a waiter wakes when its file is created or renamed into place, gives up
when told to, times out, and leaves no watch behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from lichen.agent.containerizer import filewatch
from lichen.agent.containerizer.filewatch import FileWatcher


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_an_existing_file_returns_at_once(tmp_path: Path) -> None:
    (tmp_path / "pid").write_text("1")

    async def main() -> bool:
        w = FileWatcher()
        try:
            return await w.wait(tmp_path / "pid", 1)
        finally:
            w.close()

    assert run(main()) is True


@pytest.mark.parametrize("how", ["create", "rename"])
def test_a_waiter_wakes_when_the_file_appears(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filewatch, "RECHECK", 30.0)     # only the inotify event can wake it in time
    target = tmp_path / "container.pid"

    def write() -> None:
        if how == "create":
            target.write_text("42")
        else:
            tmp = tmp_path / ".pid.tmp"
            tmp.write_text("42")
            os.replace(tmp, target)

    async def main() -> float:
        w = FileWatcher()
        try:
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, write)
            started = time.monotonic()
            assert await w.wait(target, 5)
            return time.monotonic() - started
        finally:
            w.close()

    elapsed = run(main())
    assert elapsed < 10.0


def test_other_files_in_the_directory_do_not_satisfy_a_waiter(tmp_path: Path) -> None:
    async def main() -> None:
        w = FileWatcher()
        try:
            asyncio.get_running_loop().call_later(0.01, (tmp_path / "other").write_text, "x")
            with pytest.raises(TimeoutError):
                await w.wait(tmp_path / "mine", 0.2)
        finally:
            w.close()

    run(main())


def test_abandon_ends_the_wait(tmp_path: Path) -> None:
    async def main() -> bool:
        w = FileWatcher()
        flag = {"gone": False}
        asyncio.get_running_loop().call_later(0.02, flag.__setitem__, "gone", True)
        try:
            return await w.wait(tmp_path / "never", 5, abandon=lambda: flag["gone"])
        finally:
            w.close()

    assert run(main()) is False


def test_many_waiters_in_many_directories_and_no_watch_left(tmp_path: Path) -> None:
    dirs = [tmp_path / f"d{i}" for i in range(20)]
    for d in dirs:
        d.mkdir()

    async def main() -> None:
        w = FileWatcher()
        try:
            loop = asyncio.get_running_loop()
            for i, d in enumerate(dirs):
                loop.call_later(0.001 * i, (d / "pid").write_text, str(i))
            results = await asyncio.gather(*(w.wait(d / "pid", 5) for d in dirs))
            assert all(results)
            assert w._dirs == {} and w._waiters == {}
            assert w._fd is None          # no inotify instance held while nobody waits
        finally:
            w.close()

    run(main())


def test_a_removed_directory_wakes_its_waiters_to_time_out(tmp_path: Path) -> None:
    d = tmp_path / "gone"
    d.mkdir()

    async def main() -> None:
        w = FileWatcher()
        try:
            asyncio.get_running_loop().call_later(0.02, d.rmdir)
            with pytest.raises(TimeoutError):
                await w.wait(d / "pid", 0.3)
        finally:
            w.close()

    run(main())


def test_without_inotify_it_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filewatch, "_LIBC", None)

    async def main() -> bool:
        w = FileWatcher()
        try:
            asyncio.get_running_loop().call_later(0.02, (tmp_path / "pid").write_text, "1")
            return await w.wait(tmp_path / "pid", 5)
        finally:
            w.close()

    assert run(main()) is True


def test_one_watcher_serves_successive_event_loops(tmp_path: Path) -> None:
    w = FileWatcher()

    async def once(name: str) -> bool:
        asyncio.get_running_loop().call_later(0.01, (tmp_path / name).write_text, "1")
        return await w.wait(tmp_path / name, 5)

    try:
        assert run(once("a")) and run(once("b"))
    finally:
        w.close()
