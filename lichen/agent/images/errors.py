"""The one error the image store raises."""

from __future__ import annotations


class ImageError(Exception):
    """An image could not be parsed, pulled, loaded or unpacked.

    The message names what failed and why: "image 'x' not found in registry 127.0.0.1:5000",
    "registry 127.0.0.1:5000 is unreachable", "corrupt layer sha256:...".
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
