"""`create_args`: the engine's create arguments from a LaunchSpec (pure; no engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lichen.agent.containerizer.base import LaunchError, LaunchSpec
from lichen.agent.containerizer.docker import create_args


def args_for(docker: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    container = {"type": "DOCKER", "docker": {"image": "busybox", **(docker or {})}, **kwargs.pop("container", {})}
    spec = LaunchSpec("c1", Path("/sb/c1"), kwargs.pop("argv", ["/bin/sh", "-c", "true"]),
                      {"HOST_VAR": "h", "TASK": "t"}, container=container, **kwargs)
    return create_args(spec, allow_privileged=False, host_env={"HOST_VAR": "h"})


def test_limits_env_labels_and_sandbox() -> None:
    args = args_for(cpus=0.5, mem_mb=64)
    assert (args["nano_cpus"], args["cpu_shares"]) == (500_000_000, 512)
    assert args["mem_limit"] == args["memswap_limit"] == 64 * 1024 * 1024
    assert args["environment"] == {"TASK": "t", "MESOS_SANDBOX": "/mnt/mesos/sandbox"}
    assert args["labels"] == {"lichen.container_id": "c1", "lichen.sandbox": "/sb/c1"}
    assert args["volumes"][0] == "/sb/c1:/mnt/mesos/sandbox:rw"
    assert args["network_mode"] == "host"


def test_bridge_port_mappings_publish_each_protocol() -> None:
    args = args_for({"network": "BRIDGE", "port_mappings": [
        {"host_port": 31000, "container_port": 80, "protocol": "tcp,udp"}]})
    assert args["network_mode"] == "bridge"
    assert args["ports"] == {"80/tcp": [31000], "80/udp": [31000]}


def test_port_mappings_need_a_bridge() -> None:
    with pytest.raises(LaunchError, match="need network BRIDGE"):
        args_for({"network": "HOST", "port_mappings": [{"host_port": 1, "container_port": 2}]})


def test_none_network() -> None:
    assert args_for({"network": "NONE"})["network_mode"] == "none"


def test_memory_swap_and_user_parameters() -> None:
    args = args_for({"parameters": [{"key": "memory-swap", "value": "-1"}, {"key": "user", "value": "1000"}]},
                    mem_mb=64)
    assert (args["memswap_limit"], args["user"]) == (-1, "1000")


def test_capability_parameters_need_allow_privileged() -> None:
    with pytest.raises(LaunchError, match="'cap-add' are not allowed"):
        args_for({"parameters": [{"key": "cap-add", "value": "SYS_ADMIN"}]})


def test_reserved_labels_cannot_be_overridden() -> None:
    with pytest.raises(LaunchError, match="reserved"):
        args_for({"parameters": [{"key": "label", "value": "lichen.sandbox=/etc"}]})


def test_command_forms() -> None:
    assert args_for()["entrypoint"] == []
    assert args_for(argv=["/bin/sh", "-c", "true"])["command"] == ["/bin/sh", "-c", "true"]
    value = args_for(argv=["/app", "x"], shell=False)
    assert (value["entrypoint"], value["command"]) == (["/app"], ["x"])
    only_args = args_for(argv=["", "x"], shell=False)
    assert "entrypoint" not in only_args and only_args["command"] == ["x"]
    assert "command" not in args_for(argv=[""], shell=False)
