from __future__ import annotations

import os
from pathlib import Path

import pytest

from lichen.agent.files import Sandboxes
from lichen.errors import Forbidden, InvalidRequest, NotFound


@pytest.fixture
def root(tmp_path: Path) -> Path:
    box = tmp_path / "slaves" / "a" / "runs" / "c"
    box.mkdir(parents=True)
    (box / "stdout").write_bytes(b"x" * 100_000)
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", box / "link")
    return tmp_path / "slaves"


def test_read_without_length_is_capped_at_64k(root: Path) -> None:
    out = Sandboxes(root).read(str(root / "a/runs/c/stdout"), None, None)
    assert len(out["data"]) == 64 * 1024 and out["offset"] == 0


def test_offset_minus_one_gives_the_size(root: Path) -> None:
    assert Sandboxes(root).read(str(root / "a/runs/c/stdout"), "-1", None) == {"data": "", "offset": 100_000}


def test_symlink_out_of_the_root_is_forbidden(root: Path) -> None:
    with pytest.raises(Forbidden):
        Sandboxes(root).read(str(root / "a/runs/c/link"), None, None)


def test_dotdot_escape_is_forbidden(root: Path) -> None:
    with pytest.raises(Forbidden):
        Sandboxes(root).read(str(root / "a/../../secret"), None, None)


def test_missing_file_and_bad_args(root: Path) -> None:
    s = Sandboxes(root)
    with pytest.raises(NotFound):
        s.read(str(root / "a/nope"), None, None)
    with pytest.raises(InvalidRequest):
        s.read(None, None, None)
    with pytest.raises(InvalidRequest):
        s.read(str(root / "a/runs/c/stdout"), "abc", None)
    with pytest.raises(InvalidRequest):
        s.read(str(root / "a/runs/c/stdout"), "-5", None)


def test_browse_lists_entries(root: Path) -> None:
    entries = Sandboxes(root).browse(str(root / "a/runs/c"))
    assert sorted(Path(e["path"]).name for e in entries) == ["link", "stdout"]
