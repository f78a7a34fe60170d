"""Image references as Docker users write them (pure).

    busybox                          registry-1.docker.io / library/busybox : latest
    library/redis:7                  registry-1.docker.io / library/redis   : 7
    127.0.0.1:5000/team/app:v1       127.0.0.1:5000       / team/app        : v1
    repo@sha256:<64 hex>             registry-1.docker.io / library/repo, digest only
    repo:tag@sha256:<64 hex>         both; the digest is what is pulled

The first path component is a registry when it has a `.` or a `:` or is `localhost`, as in
Docker. `docker.io` and `index.docker.io` mean Docker Hub, stored as `registry-1.docker.io`.
A reference without tag or digest gets the tag `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lichen.agent.images.errors import ImageError

DEFAULT_REGISTRY = "registry-1.docker.io"
DEFAULT_TAG = "latest"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DEFAULT_REGISTRY})

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_REGISTRY = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]{1,5})?"
                       r"|\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")


@dataclass(frozen=True, slots=True)
class ImageReference:
    registry: str                       # "registry-1.docker.io", "127.0.0.1:5000"
    repository: str                     # "library/busybox"
    tag: str | None                     # None only when a digest is given without a tag
    digest: str | None                  # "sha256:<hex>"

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DEFAULT_REGISTRY

    def transport_name(self) -> str:
        """The reference as skopeo's `docker://` transport takes it (digest wins over tag)."""
        registry = "docker.io" if self.is_docker_hub else self.registry
        if self.digest is not None:
            return f"{registry}/{self.repository}@{self.digest}"
        return f"{registry}/{self.repository}:{self.tag}"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse `text` as Docker does; raises ImageError("invalid image reference '...'")."""
    rest = text.strip()
    if not rest or len(rest) > 255 or any(c.isspace() for c in rest):
        raise _invalid(text)
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _invalid(text, "bad digest")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise _invalid(text, "bad tag")
    registry, repository = _split_registry(rest, text)
    if not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise _invalid(text, "bad repository name")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageReference(registry, repository, tag, digest)


def _split_registry(name: str, text: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _REGISTRY.fullmatch(first) or not remainder:
            raise _invalid(text, "bad registry")
        registry = DEFAULT_REGISTRY if first in _HUB_ALIASES else first
        repository = remainder
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def _invalid(text: str, why: str = "") -> ImageError:
    return ImageError(f"invalid image reference '{text}'" + (f": {why}" if why else ""))
