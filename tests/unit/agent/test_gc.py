from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lichen.agent.gc import SandboxInfo, collect, max_age, plan_gc

DAY = 86400.0
WEEK = 7 * DAY
NOW = 10_000_000.0


def box(name: str, age: float, size: int = 0) -> SandboxInfo:
    return SandboxInfo(Path("/w") / name, NOW - age, size)


def plan(sandboxes: list[SandboxInfo], *, usage: float = 0.0, **kw: int) -> list[str]:
    paths = plan_gc(sandboxes, now=NOW, gc_delay=WEEK, disk_usage_fraction=usage, headroom=0.1, **kw)
    return [p.name for p in paths]


def test_effective_delay_shrinks_as_the_disk_fills() -> None:
    assert max_age(gc_delay=WEEK, disk_usage_fraction=0.0, headroom=0.1) == WEEK * 0.9
    assert max_age(gc_delay=WEEK, disk_usage_fraction=0.4, headroom=0.1) == WEEK * 0.5
    assert max_age(gc_delay=WEEK, disk_usage_fraction=0.95, headroom=0.1) == 0.0


def test_young_sandboxes_are_kept_on_an_empty_disk() -> None:
    assert plan([box("a", DAY), box("b", 6 * DAY)]) == []


def test_sandboxes_older_than_the_effective_delay_are_removed() -> None:
    assert plan([box("young", DAY), box("old", 6.5 * DAY)]) == ["old"]


def test_a_half_full_disk_halves_the_delay() -> None:
    assert plan([box("a", 3 * DAY), box("b", 4 * DAY)], usage=0.4) == ["b"]


def test_a_disk_past_the_headroom_removes_everything() -> None:
    assert plan([box("a", 1), box("b", 0)], usage=0.95) == ["a", "b"]


def test_too_many_finished_sandboxes_lose_the_oldest() -> None:
    boxes = [box(f"s{i}", age=i) for i in range(5)]
    assert plan(boxes, max_finished=3) == ["s4", "s3"]


def test_the_count_cap_applies_after_the_age_rule() -> None:
    boxes = [box("old", 8 * DAY), box("a", 3), box("b", 2), box("c", 1)]
    assert plan(boxes, max_finished=2) == ["old", "a"]


def test_a_byte_cap_keeps_the_youngest_that_fit() -> None:
    boxes = [box("a", 3, 100), box("b", 2, 100), box("c", 1, 100)]
    assert plan(boxes, max_total_bytes=250) == ["a"]


@given(
    st.lists(st.floats(min_value=0, max_value=2 * WEEK), max_size=30),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=40),
)
def test_plan_removes_only_given_sandboxes_oldest_first(
    ages: list[float], usage: float, cap: int
) -> None:
    boxes = [box(f"s{i}", age) for i, age in enumerate(ages)]
    doomed = plan_gc(boxes, now=NOW, gc_delay=WEEK, disk_usage_fraction=usage, headroom=0.1,
                     max_finished=cap)
    by_path = {b.path: b for b in boxes}
    assert len(set(doomed)) == len(doomed)
    assert all(p in by_path for p in doomed)
    assert len(boxes) - len(doomed) <= cap
    kept = [b for b in boxes if b.path not in set(doomed)]
    if doomed and kept:     # nothing kept is older than anything removed
        assert max(by_path[p].finished_at for p in doomed) <= min(b.finished_at for b in kept)


def test_collect_removes_the_planned_sandboxes(tmp_path: Path) -> None:
    old = tmp_path / "old"
    young = tmp_path / "young"
    for d in (old, young):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "stdout").write_text("x")
    infos = [SandboxInfo(old, NOW - 2 * WEEK), SandboxInfo(young, NOW - 1)]
    removed = asyncio.run(
        collect(infos, work_dir=tmp_path, now=NOW, gc_delay=WEEK, headroom=0.0)
    )
    assert removed == [old]
    assert not old.exists()
    assert young.exists()
