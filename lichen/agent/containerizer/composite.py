"""Routes each container to the containerizer that runs its kind, as Mesos's composing one.

A LaunchSpec whose ContainerInfo names an image goes to `docker` when its type is DOCKER
and a Docker Engine is configured, else to `oci` (else to `docker`); anything else goes
to `process`. The choice is written to `<sandbox>/.lichen/containerizer` before the
launch, so wait/kill/destroy after an agent restart reach the same containerizer.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lichen.agent.containerizer.base import Containerizer, LaunchError, LaunchSpec, Termination
from lichen.agent.containerizer.oci_bundle import BundleError, image_name

_CHOICE_FILE = "containerizer"


def choose(spec: LaunchSpec, available: set[str]) -> str:
    """The name of the containerizer that runs `spec` among `available` (pure)."""
    try:
        image = image_name(spec.container)
    except BundleError as e:
        raise LaunchError(str(e)) from e
    if image is None:
        if "process" not in available:
            raise LaunchError("this agent runs no plain processes (--containerizers has no 'process')")
        return "process"
    kind = (spec.container or {}).get("type", "MESOS")
    if kind == "DOCKER" and "docker" in available:
        return "docker"
    if "oci" in available:
        return "oci"
    if "docker" in available:
        return "docker"
    raise LaunchError(f"this agent runs no images (image '{image}'; --containerizers has neither 'oci' nor 'docker')")


class CompositeContainerizer:
    def __init__(self, containerizers: dict[str, Containerizer]) -> None:
        if not containerizers:
            raise ValueError("no containerizers")
        self.containerizers = dict(containerizers)
        self._owner: dict[str, str] = {}
        self.notes: dict[str, str] = {}   # container id -> what the task's RUNNING status should say

    async def close(self) -> None:
        """The agent is going away: stop the containerizers' own background work (log
        streams); containers keep running."""
        for c in self.containerizers.values():
            close = getattr(c, "close", None)
            if close is not None:
                await close()

    async def launch(self, spec: LaunchSpec) -> None:
        name = choose(spec, set(self.containerizers))
        meta = Path(spec.sandbox) / ".lichen"
        try:
            meta.mkdir(parents=True, exist_ok=True)
            tmp = meta / f".{_CHOICE_FILE}.tmp"
            tmp.write_text(name + "\n")
            os.replace(tmp, meta / _CHOICE_FILE)
        except OSError as e:
            raise LaunchError(f"cannot prepare sandbox {spec.sandbox}: {e}") from e
        self._owner[spec.container_id] = name
        if name == "oci" and (spec.container or {}).get("type") == "DOCKER":
            self.notes[spec.container_id] = (
                "Docker image run by the oci containerizer: this agent has no Docker Engine")
        try:
            await self.containerizers[name].launch(spec)
        except BaseException:
            self._owner.pop(spec.container_id, None)
            raise

    async def wait(self, container_id: str) -> Termination:
        return await self._of(container_id).wait(container_id)

    async def kill(self, container_id: str, grace_period: float) -> None:
        name = self._owner.get(container_id)
        if name is not None:
            await self.containerizers[name].kill(container_id, grace_period)

    async def recover(self, sandboxes: dict[str, Path]) -> set[str]:
        groups: dict[str, dict[str, Path]] = {}
        for container_id, sandbox in sandboxes.items():
            name = _recorded_choice(Path(sandbox))
            if name not in self.containerizers:
                # Launched by a containerizer this agent no longer runs, or before this
                # file existed (then it was a process).
                name = "process" if name == "process" or name is None else name
                if name not in self.containerizers:
                    continue
            groups.setdefault(name, {})[container_id] = Path(sandbox)
        found: set[str] = set()
        for name, group in groups.items():
            for container_id in await self.containerizers[name].recover(group):
                self._owner[container_id] = name
                found.add(container_id)
        return found

    async def destroy(self, container_id: str) -> None:
        name = self._owner.pop(container_id, None)
        if name is not None:
            await self.containerizers[name].destroy(container_id)
        else:
            for containerizer in self.containerizers.values():
                await containerizer.destroy(container_id)

    def _of(self, container_id: str) -> Containerizer:
        try:
            return self.containerizers[self._owner[container_id]]
        except KeyError:
            raise KeyError(f"unknown container '{container_id}'") from None


def _recorded_choice(sandbox: Path) -> str | None:
    with contextlib.suppress(OSError):
        return (sandbox / ".lichen" / _CHOICE_FILE).read_text().strip() or None
    return None
