"""The agent's image store: Docker/OCI images pulled or loaded, unpacked once per layer.

    reference.py   ImageReference, parse_reference (pure)
    store.py       ImageStore: get (pull with skopeo), load_archive, acquire/release, GC
    image.py       Image, ImageConfig (values)
    oci.py         reading one image out of an OCI layout dir
    unpack.py      unpacking a layer tar safely, whiteouts in overlayfs form
    skopeo.py      running skopeo; its failures as ImageErrors
    errors.py      ImageError

docs/agent-images.md describes the on-disk layout and the whiteout conversion.
"""

from lichen.agent.images.errors import ImageError
from lichen.agent.images.image import Image, ImageConfig
from lichen.agent.images.reference import ImageReference, parse_reference
from lichen.agent.images.store import ImageStore

__all__ = ["Image", "ImageConfig", "ImageError", "ImageReference", "ImageStore", "parse_reference"]
