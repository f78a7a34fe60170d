"""Fixtures for the image store tests: registries that are always stopped, a layout dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import Registry, start_registry

USER, PASSWORD = "lichen", "s3cret"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """Debian's docker-registry on loopback, without auth."""
    with start_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """Debian's docker-registry on loopback with basic auth for USER / PASSWORD."""
    with start_registry(tmp_path / "auth-registry", auth=(USER, PASSWORD)) as reg:
        yield reg


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """Where a test builds its images (an OCI layout dir)."""
    return tmp_path / "layout"
