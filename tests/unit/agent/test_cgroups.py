from __future__ import annotations

from pathlib import Path

from lichen.agent.containerizer import cgroups as cg


def test_cpu_shares_are_1024_per_cpu_with_a_floor() -> None:
    assert cg.cpu_shares(1.0) == 1024
    assert cg.cpu_shares(0.5) == 512
    assert cg.cpu_shares(0.001) == cg.MIN_CPU_SHARES


def test_cfs_quota_is_cpus_times_the_period_at_least_1ms() -> None:
    assert cg.cfs_quota_us(2.0) == 200_000
    assert cg.cfs_quota_us(0.25) == 25_000
    assert cg.cfs_quota_us(0.001) == 1000


def test_cpu_weight_maps_the_shares_range_onto_1_to_10000() -> None:
    assert cg.cpu_weight(2) == 1
    assert cg.cpu_weight(1024) == 39          # systemd's mapping: 1024 shares ~ weight 39
    assert cg.cpu_weight(262144) == 10_000


def test_v1_oom_is_read_from_oom_control(tmp_path: Path) -> None:
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (tmp_path / "memory.failcnt").write_text("0\n")
    cgroup = cg.ContainerCgroup(1, (tmp_path,), None, tmp_path)
    assert cgroup.oom_killed()


def test_v1_oom_falls_back_to_failcnt_on_old_kernels(tmp_path: Path) -> None:
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (tmp_path / "memory.failcnt").write_text("0\n")
    cgroup = cg.ContainerCgroup(1, (tmp_path,), None, tmp_path)
    assert not cgroup.oom_killed()
    (tmp_path / "memory.failcnt").write_text("4\n")
    assert cgroup.oom_killed()


def test_v2_oom_is_read_from_memory_events(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    cgroup = cg.ContainerCgroup(2, (tmp_path,), tmp_path, tmp_path)
    assert not cgroup.oom_killed()
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.oom_killed()


def test_v1_paths_are_one_per_hierarchy_under_the_root(tmp_path: Path) -> None:
    both = tmp_path / "cpu,cpuacct"
    host = cg.CgroupsV1({"cpu": both, "cpuacct": both, "memory": tmp_path / "memory"}, "lichen")
    cgroup = host.find("c1")
    assert cgroup.dirs == (both / "lichen" / "c1", tmp_path / "memory" / "lichen" / "c1")
    assert cgroup.cpu == both / "lichen" / "c1"
    assert cgroup.memory == tmp_path / "memory" / "lichen" / "c1"
