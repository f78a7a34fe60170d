"""Helpers every test can use: real daemons on loopback, polling with a deadline, HTTP.

    wait_for(predicate, timeout, message)      poll until truthy; AssertionError on timeout
    http_get_json(url), http_post_json(url, body)
    read_addr(path)                            a `<component>.addr` file's host:port, or None
    start_master(tmp_path, *flags) -> Daemon   a real `lichen master` on 127.0.0.1:0
    start_agent(master_addr, tmp_path, *flags) a real `lichen agent` on 127.0.0.1:0
    Cluster(master, agents)                    what the `cluster` fixture gives
    stop_daemon(daemon)                        SIGTERM, SIGKILL after a deadline, kill its tasks
    kill_tasks(root)                           what `lichen up` does to leftover task processes

tests/conftest.py wraps the starters in fixtures that stop everything after the test.
"""

from tests.support.daemons import (
    Cluster,
    Daemon,
    kill_tasks,
    start_agent,
    start_daemon,
    start_master,
    stop_daemon,
)
from tests.support.net import http_get_json, http_post_json, read_addr
from tests.support.wait import wait_for

__all__ = [
    "Cluster",
    "Daemon",
    "http_get_json",
    "http_post_json",
    "kill_tasks",
    "read_addr",
    "start_agent",
    "start_daemon",
    "start_master",
    "stop_daemon",
    "wait_for",
]
