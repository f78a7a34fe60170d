"""The agent's flags, with Mesos's defaults (durations in seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AgentFlags:
    master: str                                  # host:port of the master
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 5051
    hostname: str | None = None
    resources: str | None = None                 # Mesos resource syntax; detected when None
    attributes: str | None = None                # "rack:a;zone:1"
    containerizers: str = "process,oci"         # any of process, oci, docker
    executor_shutdown_grace_period: float = 5.0
    executor_registration_timeout: float = 60.0
    status_update_retry_interval: float = 10.0
    gc_delay: float = 604800.0                   # one week, as Mesos
    gc_disk_headroom: float = 0.1
    cgroups_root: str = "lichen"
    oci_runtime: str = "runc"
    image_store_budget: int | None = None         # bytes of unpacked layers kept; None: no limit
    allow_privileged: bool = False
    seccomp_profile: str = "default"              # default, unconfined, or a JSON profile file
    registry_config: Path | None = None           # a Docker-style config.json with credentials
    insecure_registries: str = ""                 # comma-separated host:port spoken to over HTTP
    docker_socket: str | None = None              # unix://... ; DOCKER_HOST when None
