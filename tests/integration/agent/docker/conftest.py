"""A real Docker Engine for the session, with two small busybox images loaded into it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dockerd import DockerEngine, dockerd_available, start_dockerd

BUSYBOX = "lichen-test/busybox:latest"
ECHO_ENTRYPOINT = "lichen-test/echo:latest"      # entrypoint ["/bin/echo", "ep"], cmd ["from", "cmd"]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    if not dockerd_available():
        pytest.skip("needs root and dockerd (Debian's docker.io)")
    # A short path: the engine's unix sockets must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="lichen-dockerd-"))
    engine = start_dockerd(root)
    try:
        engine.load_busybox(BUSYBOX)
        engine.load_busybox(ECHO_ENTRYPOINT, entrypoint=["/bin/echo", "ep"], cmd=["from", "cmd"])
        yield engine
    finally:
        engine.stop()
