from __future__ import annotations

from pathlib import Path

from lichen.agent.checkpoint import Checkpoint, component, write_json


def test_component_quotes_slashes_and_dots() -> None:
    assert component("a/b") == "a%2Fb"
    assert component("..") not in ("..", ".")
    assert component("") != ""


def test_records_round_trip(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "meta")
    cp.save_agent_id("S1")
    cp.save_framework("fw/1", {"name": "f"})
    cp.save_executor("fw/1", "ex", {"kind": "command"})
    cp.save_task("fw/1", "ex", "t 1", {"state": "TASK_RUNNING"})
    got = cp.load()
    assert got.agent_id == "S1"
    assert got.frameworks["fw/1"].info == {"name": "f"}
    assert got.frameworks["fw/1"].executors["ex"].record == {"kind": "command"}
    assert got.frameworks["fw/1"].executors["ex"].tasks["t 1"] == {"state": "TASK_RUNNING"}
    cp.remove_task("fw/1", "ex", "t 1")
    assert cp.load().frameworks["fw/1"].executors["ex"].tasks == {}
    cp.remove_framework("fw/1")
    assert cp.load().frameworks == {}


def test_write_json_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_json(tmp_path / "x.json", {"a": 1})
    write_json(tmp_path / "x.json", {"a": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_unreadable_records_are_skipped(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "meta")
    cp.save_framework("fw", {"name": "f"})
    (tmp_path / "meta/frameworks/fw/executors/ex").mkdir(parents=True)
    (tmp_path / "meta/frameworks/fw/executors/ex/executor.json").write_text("{trunc")
    assert cp.load().frameworks["fw"].executors == {}
