"""What the store hands out: an image's identity, layers and run-time config (values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config's `config` object a container runtime needs."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)          # "NAME=value", in image order
    working_dir: str = ""
    user: str = ""                                         # "", "name", "uid", "uid:gid"

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> ImageConfig:
        """From an OCI or Docker image config (`{"config": {"Entrypoint": ...}, ...}`)."""
        run = config.get("config") or {}
        return cls(
            entrypoint=list(run.get("Entrypoint") or []),
            cmd=list(run.get("Cmd") or []),
            env=list(run.get("Env") or []),
            working_dir=run.get("WorkingDir") or "",
            user=run.get("User") or "",
        )

    def to_json(self) -> dict[str, Any]:
        return {"Entrypoint": self.entrypoint, "Cmd": self.cmd, "Env": self.env,
                "WorkingDir": self.working_dir, "User": self.user}


@dataclass(frozen=True, slots=True)
class Image:
    id: str                             # the config digest, "sha256:<hex>"
    reference: str                      # canonical reference it was pulled or loaded as
    layers: tuple[Path, ...]            # unpacked layer dirs, lowest first (overlay lowerdirs)
    config: ImageConfig
    size: int                           # unpacked bytes of all its layers
