"""Every command of `lichen` is registered, both as the console script and under `python -m`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

COMMANDS = {"master", "agent", "marathon", "up", "bench", "app", "task", "deployment"}


def _listed(argv: list[str]) -> set[str]:
    out = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    commands = out.split("Commands:", 1)[1]
    return {line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line.split()}


def test_python_m_lists_every_command() -> None:
    assert _listed([sys.executable, "-m", "lichen.cli.main"]) >= COMMANDS


def test_console_script_lists_every_command() -> None:
    script = shutil.which("lichen") or str(__import__("pathlib").Path(sys.executable).with_name("lichen"))
    if not __import__("pathlib").Path(script).exists():
        pytest.fail("the lichen console script is not installed next to the interpreter")
    assert _listed([script]) >= COMMANDS
