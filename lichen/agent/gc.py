"""Sandbox garbage collection, as Mesos's --gc_delay and --gc_disk_headroom.

A finished sandbox is kept for `gc_delay` seconds, shortened as the disk fills:

    max_age = gc_delay * max(0, 1 - headroom - disk_usage_fraction)

so with the default headroom of 0.1 a disk 90% full keeps nothing. On top of Mesos's rule,
at most `max_finished` finished sandboxes are kept (oldest removed first), so a job that
runs every few seconds cannot pile up a week of sandboxes, and optionally at most
`max_total_bytes` of them.

`plan_gc` decides (pure); `collect` measures the disk, plans and removes (in a thread).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_FINISHED = 1000


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    path: Path
    finished_at: float              # epoch seconds when its task (or executor) ended
    size_bytes: int = 0


def max_age(*, gc_delay: float, disk_usage_fraction: float, headroom: float) -> float:
    """How long a finished sandbox may be kept at this disk usage (seconds)."""
    return gc_delay * max(0.0, 1.0 - headroom - disk_usage_fraction)


def plan_gc(
    sandboxes: list[SandboxInfo],
    *,
    now: float,
    gc_delay: float,
    disk_usage_fraction: float,
    headroom: float,
    max_finished: int = DEFAULT_MAX_FINISHED,
    max_total_bytes: int | None = None,
) -> list[Path]:
    """The finished sandboxes to remove now, oldest first."""
    keep_for = max_age(gc_delay=gc_delay, disk_usage_fraction=disk_usage_fraction, headroom=headroom)
    oldest_first = sorted(sandboxes, key=lambda s: (s.finished_at, str(s.path)))
    doomed = [s for s in oldest_first if now - s.finished_at >= keep_for]
    kept = [s for s in oldest_first if now - s.finished_at < keep_for]
    overflow = len(kept) - max(0, max_finished)
    if overflow > 0:
        doomed += kept[:overflow]
        kept = kept[overflow:]
    if max_total_bytes is not None:
        total = sum(s.size_bytes for s in kept)
        while kept and total > max_total_bytes:
            total -= kept[0].size_bytes
            doomed.append(kept.pop(0))
    return [s.path for s in doomed]


def disk_usage_fraction(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return usage.used / usage.total if usage.total else 0.0


async def remove(paths: list[Path]) -> list[Path]:
    """Remove the sandboxes (in a thread); return those that are gone."""
    return await asyncio.to_thread(_remove, paths)


def _remove(paths: list[Path]) -> list[Path]:
    gone = []
    for path in paths:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove sandbox %s: %s", path, e)
            continue
        gone.append(path)
    return gone


async def collect(
    sandboxes: list[SandboxInfo],
    *,
    work_dir: Path,
    now: float,
    gc_delay: float,
    headroom: float,
    max_finished: int = DEFAULT_MAX_FINISHED,
    max_total_bytes: int | None = None,
) -> list[Path]:
    """Measure the disk holding `work_dir`, plan, remove; return the removed sandboxes."""
    usage = await asyncio.to_thread(disk_usage_fraction, work_dir)
    doomed = plan_gc(
        sandboxes,
        now=now,
        gc_delay=gc_delay,
        disk_usage_fraction=usage,
        headroom=headroom,
        max_finished=max_finished,
        max_total_bytes=max_total_bytes,
    )
    if doomed:
        log.info("removing %d finished sandboxes (disk %.0f%% used)", len(doomed), usage * 100)
    return await remove(doomed)


def sandbox_size(path: Path) -> int:
    """Bytes under `path` (blocking; for SandboxInfo.size_bytes)."""
    total = 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
        except OSError:
            continue
    return total
