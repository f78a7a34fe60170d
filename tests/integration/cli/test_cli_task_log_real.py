"""`lichen task log` against a real lichen master and agent running a real command task."""

from __future__ import annotations

from tests.integration.cli.fake_servers import run_lichen
from tests.integration.master.simcluster import wait_for
from tests.integration.master.test_scheduler_api import Recorder, command_task
from tests.integration.test_cluster_pymesos import Cluster, cluster, driver_for

__all__ = ["cluster"]


def test_task_log_reads_a_running_and_a_finished_tasks_sandbox(cluster: Cluster) -> None:
    cluster.add_agent()
    sched = Recorder()
    sched.to_launch = [
        command_task("talker", "for i in 1 2 3 4 5; do echo line-$i; done; echo err-1 >&2; sleep 1000"),
        command_task("done", "echo finished-output"),
    ]
    d = driver_for(sched, cluster)
    try:
        wait_for(lambda: "TASK_RUNNING" in sched.states("talker"), 30, "talker running")
        wait_for(lambda: "TASK_FINISHED" in sched.states("done"), 30, "done finished")
        env = {"LICHEN_MASTER": cluster.master.addr}

        def tail() -> str:
            out = run_lichen("task", "log", "talker", "--lines", "2", env=env)
            return out.stdout if out.returncode == 0 else out.stderr

        wait_for(lambda: tail() == "line-4\nline-5\n", 20, "talker's output")
        err = run_lichen("task", "log", "talker", "--stderr", env=env)
        assert err.returncode == 0, err.stderr
        assert err.stdout.endswith("err-1\n")
        finished = run_lichen("task", "log", "done", env=env)
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout == "finished-output\n"
    finally:
        d.stop()
