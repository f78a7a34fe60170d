"""The containerizer protocol.

A container is one process tree started for a task (or an executor) in its sandbox.
Containerizers keep what they need to find a container again in the sandbox itself, so
that an agent restarted with the same work dir recovers running containers (and the exit
status of those that ended while it was down) from the sandbox paths alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    container_id: str
    sandbox: Path                       # exists; stdout/stderr are written there
    argv: list[str]                     # exec'd as is (shell commands are ["/bin/sh", "-c", cmd])
    env: dict[str, str]                 # the complete environment
    user: str | None = None             # run as this user (only when the agent is root)
    cpus: float | None = None           # cgroup limits when the host offers them
    mem_mb: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # The task's (or executor's) Mesos ContainerInfo JSON, when it has one: image, network,
    # port mappings, volumes. The process containerizer ignores it.
    container: dict[str, Any] | None = None
    # Whether argv came from a shell command (`["/bin/sh", "-c", cmd]`): image containerizers
    # then run the command with the image's shell; with `shell: false` and no value they run
    # the image's entrypoint/cmd, as Docker does.
    shell: bool = True


@dataclass(frozen=True, slots=True)
class Termination:
    exit_code: int | None               # set when the process exited
    signal: int | None                  # set when it was killed by a signal
    oom_killed: bool = False            # the memory limit killed it
    message: str = ""                   # "Command exited with status 3", "Command terminated with signal Killed"


class Containerizer(Protocol):
    async def launch(self, spec: LaunchSpec) -> None:
        """Start the container. Raises LaunchError (with a message); leaves nothing behind when it does."""

    async def wait(self, container_id: str) -> Termination:
        """Wait until the container ends and return how. Works for recovered containers too."""

    async def kill(self, container_id: str, grace_period: float) -> None:
        """SIGTERM the container's process group, SIGKILL after `grace_period` s. Safe to call twice."""

    async def recover(self, sandboxes: dict[str, Path]) -> set[str]:
        """Re-attach to containers (id -> sandbox) after an agent restart; return the ids found
        (running or already ended with a recorded status)."""

    async def destroy(self, container_id: str) -> None:
        """Release what the container holds (cgroups). Safe to call twice or for an unknown id."""


class LaunchError(Exception):
    pass
