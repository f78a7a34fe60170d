"""Fixtures the agent tests share: the fake master an agent under test connects to, and
a loopback registry holding a busybox image (`<registry.addr>/test/busybox:v1`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.agent.agent_harness import FakeMaster
from tests.support.images import Registry, busybox_image, start_registry


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    m = FakeMaster()
    yield m
    m.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("registry")
    with start_registry(tmp / "storage") as r:
        busybox_image(tmp / "layout", "v1")
        r.push(tmp / "layout", "v1", "test/busybox:v1")
        yield r
