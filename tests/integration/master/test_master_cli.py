"""`lichen master` flag errors are usage errors (exit 2) naming the flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_bad_weights_flag_is_a_usage_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "lichen.cli.main", "master", "--port", "0", "--work-dir", str(tmp_path),
         "--weights", "ops=two"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert r.returncode == 2
    assert "--weights" in r.stderr and "ops=two" in r.stderr
    assert not (tmp_path / "master.addr").exists()
