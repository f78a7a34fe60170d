from __future__ import annotations

import pytest

from lichen.agent.images import ImageError, ImageReference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("busybox", ImageReference("registry-1.docker.io", "library/busybox", "latest", None)),
    ("library/redis:7", ImageReference("registry-1.docker.io", "library/redis", "7", None)),
    ("team/app:v1.2", ImageReference("registry-1.docker.io", "team/app", "v1.2", None)),
    ("docker.io/busybox", ImageReference("registry-1.docker.io", "library/busybox", "latest", None)),
    ("127.0.0.1:5000/repo:tag", ImageReference("127.0.0.1:5000", "repo", "tag", None)),
    ("localhost/a/b", ImageReference("localhost", "a/b", "latest", None)),
    ("quay.io/org/x_y-z:1", ImageReference("quay.io", "org/x_y-z", "1", None)),
    (f"repo@{DIGEST}", ImageReference("registry-1.docker.io", "library/repo", None, DIGEST)),
    (f"h:1/r:t@{DIGEST}", ImageReference("h:1", "r", "t", DIGEST)),
])
def test_parse_reference_reads_docker_forms(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", [
    "", "Busybox", "busybox:", "busybox:-x", "a b", "repo@sha256:abc", "repo@md5:" + "a" * 32,
    "host:5000/", "a//b", "x:" + "t" * 200, "/busybox",
])
def test_parse_reference_refuses_bad_text(text: str) -> None:
    with pytest.raises(ImageError, match=f"invalid image reference '{text}'"):
        parse_reference(text)


def test_str_is_canonical_and_round_trips() -> None:
    ref = parse_reference("busybox")
    assert str(ref) == "registry-1.docker.io/library/busybox:latest"
    assert parse_reference(str(ref)) == ref


def test_transport_name_uses_docker_io_for_hub_and_prefers_digest() -> None:
    assert parse_reference("busybox:1").transport_name() == "docker.io/library/busybox:1"
    ref = parse_reference(f"127.0.0.1:5000/r:t@{DIGEST}")
    assert ref.transport_name() == f"127.0.0.1:5000/r@{DIGEST}"
