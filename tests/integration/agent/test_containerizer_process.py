"""The process containerizer against real processes and (where the host has them) cgroups."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from lichen.agent.containerizer import cgroups as cg
from lichen.agent.containerizer.base import LaunchError, LaunchSpec, Termination
from lichen.agent.containerizer.process import ProcessContainerizer, build_wrapper

T = TypeVar("T")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"}
IS_ROOT = os.geteuid() == 0


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


def poll(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@dataclass
class Env:
    tmp: Path
    cgroups_root: str

    def containerizer(self, *, cgroups: bool = True) -> ProcessContainerizer:
        return ProcessContainerizer(self.tmp / "work", cgroups_root=self.cgroups_root, cgroups=cgroups)

    def spec(self, container_id: str, argv: list[str], **kwargs: object) -> LaunchSpec:
        sandbox = self.tmp / "sandboxes" / container_id
        sandbox.mkdir(parents=True, exist_ok=True)
        env = dict(ENV)
        env.update(kwargs.pop("env", {}))  # type: ignore[call-overload]
        return LaunchSpec(container_id, sandbox, argv, env, **kwargs)  # type: ignore[arg-type]


def _host(root: str) -> cg.CgroupHost | None:
    return cg.detect(root)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    root = f"lichen-test-{uuid.uuid4().hex[:10]}"
    yield Env(tmp_path, root)
    _remove_cgroup_root(root)


def _remove_cgroup_root(root: str) -> None:
    """Kill whatever a failed test left in our cgroups and remove them."""
    cg.remove_root(root)


cgroups_only = pytest.mark.skipif(
    not IS_ROOT or _host(f"lichen-probe-{os.getpid()}") is None, reason="needs writable cgroups"
)
_remove_cgroup_root(f"lichen-probe-{os.getpid()}")


async def _launch_and_wait(c: ProcessContainerizer, spec: LaunchSpec) -> Termination:
    await c.launch(spec)
    try:
        return await c.wait(spec.container_id)
    finally:
        await c.destroy(spec.container_id)


def test_zero_exit_reports_status_0(env: Env) -> None:
    t = run(_launch_and_wait(env.containerizer(), env.spec("ok", ["true"])))
    assert t == Termination(exit_code=0, signal=None, message="Command exited with status 0")


def test_nonzero_exit_reports_its_status(env: Env) -> None:
    t = run(_launch_and_wait(env.containerizer(), env.spec("three", ["/bin/sh", "-c", "exit 3"])))
    assert (t.exit_code, t.signal, t.message) == (3, None, "Command exited with status 3")


def test_death_by_signal_reports_the_signal_name(env: Env) -> None:
    spec = env.spec("sig", ["/bin/sh", "-c", "kill -TERM $$"])
    t = run(_launch_and_wait(env.containerizer(), spec))
    assert (t.exit_code, t.signal) == (None, signal.SIGTERM)
    assert t.message == "Command terminated with signal Terminated"


def test_exec_failure_exits_127_with_a_message(env: Env) -> None:
    spec = env.spec("noexec", ["/nonexistent/program"])
    t = run(_launch_and_wait(env.containerizer(), spec))
    assert t.exit_code == 127
    assert "/nonexistent/program" in (spec.sandbox / "stderr").read_text()


def test_environment_cwd_and_output_files(env: Env) -> None:
    script = 'echo "$GREETING"; pwd; echo oops >&2'
    spec = env.spec("io", ["/bin/sh", "-c", script], env={"GREETING": "hello"})
    t = run(_launch_and_wait(env.containerizer(), spec))
    assert t.exit_code == 0
    assert (spec.sandbox / "stdout").read_text() == f"hello\n{spec.sandbox}\n"
    assert (spec.sandbox / "stderr").read_text() == "oops\n"


def test_kill_sends_sigterm_first(env: Env) -> None:
    async def body() -> Termination:
        c = env.containerizer()
        await c.launch(env.spec("sleepy", ["sleep", "30"]))
        try:
            await c.kill("sleepy", 5.0)
            return await c.wait("sleepy")
        finally:
            await c.destroy("sleepy")

    t = run(body())
    assert t.signal == signal.SIGTERM
    assert t.message == "Command terminated with signal Terminated"


def test_kill_escalates_to_sigkill_after_the_grace_period(env: Env) -> None:
    spec = env.spec("stubborn", ["/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30 & wait; sleep 30"])

    async def body() -> tuple[Termination, float]:
        c = env.containerizer()
        await c.launch(spec)
        try:
            await asyncio.to_thread(poll, lambda: (spec.sandbox / "stdout").read_text() == "ready\n")
            started = time.monotonic()
            await c.kill("stubborn", 0.5)
            await c.kill("stubborn", 0.5)          # idempotent
            return await c.wait("stubborn"), time.monotonic() - started
        finally:
            await c.destroy("stubborn")

    t, elapsed = run(body())
    assert t.signal == signal.SIGKILL
    assert t.message == "Command terminated with signal Killed"
    assert elapsed >= 0.5


def test_wait_reaps_the_wrapper(env: Env) -> None:
    async def body() -> int:
        c = env.containerizer()
        await c.launch(env.spec("reaped", ["true"]))
        wrapper_pid = c._containers["reaped"].wrapper_pid
        assert wrapper_pid is not None
        await c.wait("reaped")
        await c.destroy("reaped")
        return wrapper_pid

    wrapper_pid = run(body())
    with pytest.raises(ChildProcessError):
        os.waitpid(wrapper_pid, os.WNOHANG)


def test_unknown_container_is_safe_to_kill_and_destroy(env: Env) -> None:
    async def body() -> None:
        c = env.containerizer()
        await c.kill("nope", 1.0)
        await c.destroy("nope")
        with pytest.raises(KeyError):
            await c.wait("nope")

    run(body())


def test_unknown_user_is_a_launch_error(env: Env) -> None:
    spec = env.spec("baduser", ["true"], user="no-such-user-lichen")
    with pytest.raises(LaunchError, match="no-such-user-lichen"):
        run(env.containerizer().launch(spec))


@pytest.mark.skipif(not IS_ROOT, reason="switching users needs root")
def test_runs_as_the_requested_user(env: Env) -> None:
    spec = env.spec("asnobody", ["/bin/sh", "-c", "id -u; touch mine"], user="nobody")
    t = run(_launch_and_wait(env.containerizer(), spec))
    assert t.exit_code == 0, (spec.sandbox / "stderr").read_text()
    nobody = pwd.getpwnam("nobody")
    assert (spec.sandbox / "stdout").read_text() == f"{nobody.pw_uid}\n"
    assert (spec.sandbox / "mine").stat().st_uid == nobody.pw_uid


def test_leftover_children_die_with_destroy_without_cgroups(env: Env) -> None:
    spec = env.spec("bg", ["/bin/sh", "-c", "sleep 60 & echo $! > bgpid; exit 0"])

    async def body() -> int:
        c = env.containerizer(cgroups=False)
        await c.launch(spec)
        assert (await c.wait("bg")).exit_code == 0
        bg = int((spec.sandbox / "bgpid").read_text())
        os.kill(bg, 0)                       # still running after the leader exited
        await c.destroy("bg")
        return bg

    bg = run(body())
    poll(lambda: not _alive(bg))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat[stat.rfind(")") + 2 :].startswith("Z")


def test_recovers_a_running_container_after_a_restart(env: Env) -> None:
    spec = env.spec("survivor", ["sleep", "30"])
    run(env.containerizer().launch(spec))          # the "agent" goes away without waiting

    async def after_restart() -> tuple[set[str], Termination]:
        c = env.containerizer()
        found = await c.recover({"survivor": spec.sandbox, "ghost": env.tmp / "missing"})
        try:
            assert c._check(c._containers["survivor"]) is None   # still running
            await c.kill("survivor", 2.0)
            return found, await c.wait("survivor")
        finally:
            await c.destroy("survivor")

    found, t = run(after_restart())
    assert found == {"survivor"}
    assert t.signal in (signal.SIGTERM, signal.SIGKILL)
    assert t.message in (
        "Command terminated with signal Terminated",
        "Command terminated with signal Killed",
    )


def test_recovery_through_another_spelling_of_the_sandbox_path(env: Env) -> None:
    spec = env.spec("linked", ["sleep", "30"])
    run(env.containerizer().launch(spec))
    alias = env.tmp / "alias"
    alias.symlink_to(spec.sandbox)

    async def after_restart() -> tuple[Termination | None, Termination]:
        c = env.containerizer()
        await c.recover({"linked": alias})
        try:
            running = c._check(c._containers["linked"])
            await c.kill("linked", 2.0)
            return running, await c.wait("linked")
        finally:
            await c.destroy("linked")

    running, t = run(after_restart())
    assert running is None
    assert t.signal == signal.SIGTERM


def test_recovers_the_status_of_a_container_that_ended_while_down(env: Env) -> None:
    spec = env.spec("quick", ["/bin/sh", "-c", "exit 7"])
    run(env.containerizer().launch(spec))
    poll(lambda: (spec.sandbox / ".lichen" / "status").exists())

    async def after_restart() -> tuple[set[str], Termination]:
        c = env.containerizer()
        found = await c.recover({"quick": spec.sandbox})
        try:
            return found, await c.wait("quick")
        finally:
            await c.destroy("quick")

    found, t = run(after_restart())
    assert found == {"quick"}
    assert t.exit_code == 7
    assert t.message == "Command exited with status 7"


def test_wrapper_is_built_once_per_source(tmp_path: Path) -> None:
    first = build_wrapper(tmp_path / "bin")
    mtime = first.stat().st_mtime_ns
    second = build_wrapper(tmp_path / "bin")
    assert first == second
    assert second.stat().st_mtime_ns == mtime
    assert first.name.startswith("lichen-wrap-")
    assert os.access(first, os.X_OK)
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == [first.name]


@cgroups_only
def test_cpu_and_memory_limits_are_written_to_the_cgroup(env: Env) -> None:
    async def body() -> cg.ContainerCgroup:
        c = env.containerizer()
        await c.launch(env.spec("limited", ["sleep", "30"], cpus=0.5, mem_mb=128))
        try:
            cgroup = c.cgroup("limited")
            assert cgroup is not None
            pid = c.pid("limited")
            assert pid in cgroup.pids()
            _assert_limits(cgroup, cpus=0.5, mem_mb=128)
            return cgroup
        finally:
            await c.kill("limited", 1.0)
            await c.wait("limited")
            await c.destroy("limited")

    cgroup = run(body())
    assert not any(d.exists() for d in cgroup.dirs)


def _assert_limits(cgroup: cg.ContainerCgroup, *, cpus: float, mem_mb: int) -> None:
    assert cgroup.cpu is not None and cgroup.memory is not None
    if cgroup.version == 1:
        assert (cgroup.cpu / "cpu.shares").read_text().strip() == str(int(1024 * cpus))
        assert (cgroup.cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert (cgroup.cpu / "cpu.cfs_quota_us").read_text().strip() == str(int(100000 * cpus))
        assert (cgroup.memory / "memory.limit_in_bytes").read_text().strip() == str(mem_mb << 20)
    else:
        assert (cgroup.cpu / "cpu.max").read_text().split() == [str(int(100000 * cpus)), "100000"]
        assert (cgroup.memory / "memory.max").read_text().strip() == str(mem_mb << 20)


@cgroups_only
def test_memory_limit_oom_kills_and_is_reported(env: Env) -> None:
    spec = env.spec("hog", ["python3", "-c", "b = bytearray(300 * 2**20)"], mem_mb=64)
    t = run(_launch_and_wait(env.containerizer(), spec))
    assert t.oom_killed
    assert t.signal == signal.SIGKILL
    assert t.message.startswith("Memory limit exceeded: Requested: 64MB")


@cgroups_only
def test_destroy_kills_what_escaped_the_process_group(env: Env) -> None:
    # setsid puts the sleeper in a new session and group: only the cgroup still holds it.
    script = "setsid sleep 60 & echo $! > bgpid"
    spec = env.spec("escapee", ["/bin/sh", "-c", script])

    async def body() -> int:
        c = env.containerizer()
        await c.launch(spec)
        await asyncio.to_thread(poll, lambda: (spec.sandbox / "bgpid").exists())
        await c.wait("escapee")
        bg = int((spec.sandbox / "bgpid").read_text())
        await c.destroy("escapee")
        return bg

    bg = run(body())
    poll(lambda: not _alive(bg))


@pytest.mark.skipif(
    not IS_ROOT or not Path("/sys/fs/cgroup/unified/cgroup.procs").exists(),
    reason="needs a writable v2 hierarchy",
)
def test_v2_hierarchy_tracks_and_destroys_processes(env: Env) -> None:
    host = cg.CgroupsV2(Path("/sys/fs/cgroup/unified"), env.cgroups_root)
    cgroup = host.create("c1", cpus=None, mem_mb=None)
    import subprocess

    proc = subprocess.Popen(["sleep", "60"])
    try:
        (cgroup.dirs[0] / "cgroup.procs").write_text(f"{proc.pid}\n")
        assert cgroup.pids() == {proc.pid}
        assert host.find("c1") == cgroup
        cgroup.destroy()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert not cgroup.dirs[0].exists()
    finally:
        proc.kill()
        proc.wait()
