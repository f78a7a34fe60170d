"""Read one image out of an OCI image layout directory (blocking, no network).

The layout is the one skopeo writes for `oci:DIR:TAG`: `index.json` names manifests (or
image indexes) by digest, and every blob sits in `blobs/sha256/<hex>`. Docker's manifest
media types are read as well as OCI's. Every blob read here is checked against its digest.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lichen.agent.images.errors import ImageError
from lichen.agent.images.image import ImageConfig
from lichen.agent.images.unpack import file_digest

REF_NAME = "org.opencontainers.image.ref.name"
_INDEX_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    """The host's architecture as image platforms spell it (Go's GOARCH)."""
    machine = platform.machine().lower()
    return _GOARCH.get(machine, machine)


@dataclass(frozen=True, slots=True)
class LayerBlob:
    digest: str                         # of the blob as stored (maybe compressed)
    diff_id: str                        # of the uncompressed tar: the layer's identity
    path: Path


@dataclass(frozen=True, slots=True)
class LayoutImage:
    config_digest: str
    config: ImageConfig
    layers: tuple[LayerBlob, ...]       # lowest first


def read_layout(layout: Path, tag: str | None = None) -> LayoutImage:
    """The image tagged `tag` in `layout` (or its only image when `tag` is None)."""
    index = _read_json(layout / "index.json", "the layout's index.json")
    descriptor = _pick(index.get("manifests") or [], tag, layout)
    while descriptor.get("mediaType") in _INDEX_TYPES:
        nested = _read_blob_json(layout, descriptor["digest"], "image index")
        descriptor = _pick_platform(nested.get("manifests") or [], layout)
    manifest = _read_blob_json(layout, descriptor["digest"], "manifest")
    config_digest = manifest["config"]["digest"]
    config = _read_blob_json(layout, config_digest, "config")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = manifest.get("layers") or []
    if len(diff_ids) != len(layers):
        raise ImageError(f"image config {config_digest} lists {len(diff_ids)} layers, "
                         f"its manifest {len(layers)}")
    blobs = tuple(LayerBlob(layer["digest"], diff_id, _blob_path(layout, layer["digest"]))
                  for layer, diff_id in zip(layers, diff_ids, strict=True))
    return LayoutImage(config_digest, ImageConfig.from_json(config), blobs)


def _pick(manifests: list[dict[str, Any]], tag: str | None, layout: Path) -> dict[str, Any]:
    if tag is not None:
        for m in manifests:
            if (m.get("annotations") or {}).get(REF_NAME) == tag:
                return m
        raise ImageError(f"no image tagged '{tag}' in the OCI layout {layout}")
    if len(manifests) != 1:
        raise ImageError(f"the OCI layout {layout} holds {len(manifests)} images, not one")
    return manifests[0]


def _pick_platform(manifests: list[dict[str, Any]], layout: Path) -> dict[str, Any]:
    arch = host_arch()
    for m in manifests:
        p = m.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == arch:
            return m
    raise ImageError(f"no linux/{arch} image in the image index of {layout}")


def _read_blob_json(layout: Path, digest: str, what: str) -> dict[str, Any]:
    path = _blob_path(layout, digest)
    if not path.is_file():
        raise ImageError(f"{what} {digest} is missing from {layout}")
    actual = file_digest(path)
    if actual != digest:
        raise ImageError(f"corrupt {what} {digest}: its content has digest {actual}")
    return _read_json(path, f"{what} {digest}")


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise ImageError(f"unsupported digest '{digest}' in {layout}")
    return layout / "blobs" / algorithm / hexdigest


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ImageError(f"cannot read {what}: {e}") from None
    if not isinstance(value, dict):
        raise ImageError(f"cannot read {what}: not a JSON object")
    return value
