from __future__ import annotations

from lichen.agent.images.skopeo import classify

DESCRIBE = "image '127.0.0.1:5000/bb:v1'"


def message(stderr: str) -> str:
    return classify(stderr, DESCRIBE, "127.0.0.1:5000").message


def test_a_refused_connection_means_the_registry_is_unreachable() -> None:
    stderr = ('time="x" level=fatal msg="initializing source docker://127.0.0.1:5000/bb:v1: '
              'dial tcp 127.0.0.1:5000: connect: connection refused"')
    assert message(stderr).startswith("registry 127.0.0.1:5000 is unreachable (initializing")


def test_manifest_unknown_means_not_found() -> None:
    stderr = 'msg="reading manifest v1 in 127.0.0.1:5000/bb: manifest unknown: manifest unknown"'
    assert message(stderr) == f"{DESCRIBE} not found in registry 127.0.0.1:5000"


def test_unauthorized_means_authentication_failed() -> None:
    stderr = 'msg="reading manifest v1: unauthorized: authentication required"'
    assert message(stderr).startswith(f"authentication failed for {DESCRIBE} in registry")


def test_a_digest_mismatch_names_the_layer() -> None:
    digest = "sha256:" + "ab" * 32
    stderr = f'msg="writing blob: Digest did not match, expected {digest}, got sha256:{"cd" * 32}"'
    assert message(stderr) == f"corrupt layer {digest} of {DESCRIBE}"
