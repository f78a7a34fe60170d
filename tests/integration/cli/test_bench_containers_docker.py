"""`lichen bench containers` times `docker run` on a private engine and leaves nothing behind."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None
                             for t in ("runc", "dockerd", "docker", "skopeo", "docker-registry")),
    reason="needs root, runc, dockerd, the docker CLI, skopeo and docker-registry")

ENGINE_PREFIX = "lichen-bench-dockerd-"


def _processes_naming(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def _other_engines() -> bool:
    """Whether some dockerd not started by the benchmark runs (it may own a docker0)."""
    return any("dockerd" in p.split()[1] and ENGINE_PREFIX not in p for p in _processes_naming("dockerd "))


def _leftovers() -> set[str]:
    return {*glob.glob(f"/tmp/{ENGINE_PREFIX}*"), *glob.glob("/sys/fs/cgroup/*/lichen-bench-*"),
            *glob.glob("/sys/fs/cgroup/lichen-bench-*")}


def _bridge_exists() -> bool:
    return subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False).returncode == 0


def test_short_run_times_docker_run_on_a_private_engine_and_stops_it() -> None:
    before = _leftovers()
    bridge_before = _bridge_exists() or _other_engines()
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    run = subprocess.run([sys.executable, "-m", "lichen.cli.main", "bench", "containers", "--launches", "2"],
                         capture_output=True, text=True, timeout=120, env=env, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["docker_engine"] == "private"
    for key in ("docker_p50_ms", "docker_p99_ms", "docker_over_oci"):
        assert isinstance(result[key], float) and result[key] > 0, (key, result)
    assert result["docker_over_oci"] == pytest.approx(result["docker_p50_ms"] / result["oci_p50_ms"], abs=0.01)

    assert _processes_naming(f"/tmp/{ENGINE_PREFIX}") == []   # dockerd, its containerd, shims
    assert _leftovers() <= before                             # engine dir, cgroups
    assert [m for m in Path("/proc/mounts").read_text().splitlines() if ENGINE_PREFIX in m] == []
    if not bridge_before and not _other_engines():
        assert not _bridge_exists(), "the benchmark's engine left a docker0 bridge"


def test_no_docker_reports_docker_figures_as_null() -> None:
    run = subprocess.run([sys.executable, "-m", "lichen.cli.main", "bench", "containers", "--launches", "1",
                          "--no-docker"], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert [result[k] for k in ("docker_engine", "docker_p50_ms", "docker_p99_ms", "docker_over_oci")] == [None] * 4
    assert isinstance(result["oci_p50_ms"], float)


def test_a_docker_socket_where_no_engine_answers_is_an_error(tmp_path: Path) -> None:
    socket = tmp_path / "nothing.sock"
    run = subprocess.run([sys.executable, "-m", "lichen.cli.main", "bench", "containers", "--launches", "1",
                          "--docker-socket", str(socket)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    assert f"no Docker Engine answers on --docker-socket '{socket}'" in run.stderr
