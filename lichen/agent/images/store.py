"""The agent's content-addressed image store.

Theory of operation. `get` parses the reference, answers from the cache unless asked to
pull, and otherwise has skopeo copy the image into a fresh OCI layout under `root/tmp/`,
then imports it: each layer not yet stored is verified and unpacked into a staging dir and
renamed to `root/layers/sha256/<diff_id hex>/` (so a layer is unpacked once and shared by
every image that has it), then the image record and the reference record are written, each
by rename. A crash or a failed pull leaves only staging dirs, which the next store on the
root removes: everything under `layers/`, `images/` and `refs/` is always complete.

    root/layers/sha256/<hex>/rootfs/        the unpacked layer (an overlay lowerdir)
    root/layers/sha256/<hex>/layer.json     {"diff_id", "digest", "size"}
    root/images/sha256/<hex>.json           {"id", "reference", "layers", "config", "size"};
                                            its mtime is when the image was last used
    root/refs/<sha256 of reference>.json    {"reference", "id"}: what a name resolves to
    root/tmp/                               staging; emptied when a store opens the root

Concurrent `get`s of one reference share one pull; two pulls sharing a layer unpack it
once (a lock per layer, and the rename that loses the race is dropped). `acquire` /
`release` (in memory: a recovering containerizer acquires again) keep an image from
`collect_garbage`, which removes unreferenced images, least recently used first, and then
the layers no image needs, until the store fits its budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from lichen.agent.images import skopeo
from lichen.agent.images.errors import ImageError
from lichen.agent.images.image import Image, ImageConfig
from lichen.agent.images.oci import REF_NAME, LayerBlob, host_arch, read_layout
from lichen.agent.images.reference import ImageReference, parse_reference
from lichen.agent.images.unpack import unpack_layer

__all__ = ["Image", "ImageConfig", "ImageError", "ImageStore"]

_LAYOUT_TAG = "image"
_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
ARCHIVE_DOWNLOAD_TIMEOUT = 300.0


class ImageStore:
    def __init__(
        self,
        root: Path,
        *,
        budget_bytes: int | None = None,
        registry_config: Path | None = None,
        insecure_registries: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.budget_bytes = budget_bytes
        self.registry_config = registry_config
        self.insecure_registries = frozenset(insecure_registries)
        self._layers_dir = root / "layers" / "sha256"
        self._images_dir = root / "images" / "sha256"
        self._refs_dir = root / "refs"
        self._tmp = root / "tmp"
        for d in (self._layers_dir, self._images_dir, self._refs_dir):
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self._tmp, ignore_errors=True)      # a previous run's staging
        self._tmp.mkdir()
        self._policy = root / "policy.json"
        _write_json(self._policy, _POLICY, self._tmp)
        self._pulls: dict[str, asyncio.Task[Image]] = {}
        self._layer_locks: dict[str, asyncio.Lock] = {}
        self._pinned_layers: Counter[str] = Counter()     # diff_ids an import is using
        self._pinned_images: Counter[str] = Counter()
        self._holders: dict[str, str] = {}                # container id -> image id

    # --- getting images -------------------------------------------------------------

    async def get(self, reference: str, *, force_pull: bool = False, timeout: float = 300) -> Image:
        """The image `reference` names: from the store, or pulled (always, with `force_pull`).

        Concurrent gets of one reference share one pull. Raises ImageError (bad reference,
        unknown image or tag, registry unreachable, authentication failed, corrupt layer,
        timeout); the store is unchanged by a failed pull.
        """
        ref = parse_reference(reference)
        key = str(ref)
        if not force_pull:
            cached = self._cached(key)
            if cached is not None:
                return cached
        task = self._pulls.get(key)
        if task is None:
            task = asyncio.create_task(self._pull(ref, timeout), name=f"pull {key}")
            self._pulls[key] = task
            task.add_done_callback(lambda t: self._pull_done(key, t))
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(task)
        except TimeoutError:
            raise ImageError(
                f"pulling image '{key}' from registry {ref.registry} timed out after {timeout:g} s"
            ) from None

    def cached(self, reference: str) -> Image | None:
        """The stored image `reference` names, or None; never pulls."""
        return self._cached(str(parse_reference(reference)))

    async def load_archive(self, source: str) -> Image:
        """Import a `docker save` tarball, an OCI archive or an OCI layout dir (path or URL).

        The image is stored under the name the archive gives it (a `docker save` RepoTag, an
        OCI `ref.name` that is a full reference), so a later `get` of that name finds it;
        otherwise under `source`. Raises ImageError.
        """
        staging = Path(tempfile.mkdtemp(dir=self._tmp, prefix="load-"))
        try:
            if source.startswith(("http://", "https://")):
                path = staging / "archive"
                await _download(source, path)
            else:
                path = Path(source.removeprefix("file://"))
            transport, name = await asyncio.to_thread(_archive_transport, path, source)
            layout = staging / "layout"
            await skopeo.copy(self._global_args(), [], transport, f"oci:{layout}:{_LAYOUT_TAG}",
                              timeout=ARCHIVE_DOWNLOAD_TIMEOUT, describe=f"archive '{source}'")
            return await self._import(layout, name or source)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def close(self) -> None:
        """Cancel pulls in flight (their staging dirs are removed)."""
        tasks = list(self._pulls.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- references that keep images ------------------------------------------------

    def acquire(self, image: Image, container_id: str) -> None:
        """`container_id` uses `image`: garbage collection keeps it until released."""
        self._holders[container_id] = image.id

    def release(self, container_id: str) -> None:
        """`container_id` no longer uses its image. Safe for an unknown id."""
        self._holders.pop(container_id, None)

    # --- garbage collection ---------------------------------------------------------

    def size(self) -> int:
        """Unpacked bytes of every stored layer."""
        return sum(meta["size"] for meta in self._layer_metas().values())

    async def collect_garbage(self) -> list[str]:
        """Remove unused images, least recently used first, until the store fits its budget.

        Layers that no remaining image uses go with them. An image acquired by a container,
        or being imported, is never removed; without a budget nothing is. Returns the ids
        of the removed images.
        """
        if self.budget_bytes is None:
            return []
        layers = self._layer_metas()
        total = sum(meta["size"] for meta in layers.values())
        if total <= self.budget_bytes:
            return []
        images = self._image_records()
        held = set(self._holders.values()) | set(self._pinned_images)
        candidates = sorted((record for record in images.values() if record["id"] not in held),
                            key=lambda record: record["used"])
        removed: list[str] = []
        total -= await self._remove_unused_layers(layers, images)
        for record in candidates:
            if total <= self.budget_bytes:
                break
            self._remove_image(record["id"])
            del images[record["id"]]
            removed.append(record["id"])
            total -= await self._remove_unused_layers(layers, images)
        return removed

    # --- internals ------------------------------------------------------------------

    def _pull_done(self, key: str, task: asyncio.Task[Image]) -> None:
        if self._pulls.get(key) is task:
            del self._pulls[key]
        if not task.cancelled():
            task.exception()            # retrieved: waiters may all have timed out

    async def _pull(self, ref: ImageReference, timeout: float) -> Image:
        staging = Path(tempfile.mkdtemp(dir=self._tmp, prefix="pull-"))
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            layout = staging / "layout"
            await skopeo.copy(
                self._global_args(), self._source_args(ref.registry),
                f"docker://{ref.transport_name()}", f"oci:{layout}:{_LAYOUT_TAG}",
                timeout=timeout, describe=f"image '{ref}'", registry=ref.registry,
            )
            async with asyncio.timeout_at(deadline):
                return await self._import(layout, str(ref))
        except TimeoutError:
            raise ImageError(
                f"pulling image '{ref}' from registry {ref.registry} timed out after {timeout:g} s"
            ) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    def _global_args(self) -> list[str]:
        return ["--policy", str(self._policy), "--override-os", "linux",
                "--override-arch", host_arch()]

    def _source_args(self, registry: str) -> list[str]:
        args = []
        if _is_loopback(registry) or registry in self.insecure_registries:
            args.append("--src-tls-verify=false")
        if self.registry_config is not None:
            args += ["--src-authfile", str(self.registry_config)]
        else:
            args.append("--src-no-creds")
        return args

    async def _import(self, layout: Path, reference: str) -> Image:
        found = await asyncio.to_thread(read_layout, layout, _LAYOUT_TAG)
        image_id = found.config_digest
        diff_ids = [blob.diff_id for blob in found.layers]
        self._pinned_images[image_id] += 1
        self._pinned_layers.update(diff_ids)
        try:
            sizes = [await self._ensure_layer(blob) for blob in found.layers]
            record = {
                "id": image_id, "reference": reference, "layers": diff_ids,
                "config": found.config.to_json(), "size": sum(sizes),
            }
            await asyncio.to_thread(self._write_records, record)
        finally:
            self._pinned_images.subtract([image_id])
            self._pinned_layers.subtract(diff_ids)
            self._pinned_images = +self._pinned_images      # drop the zero counts
            self._pinned_layers = +self._pinned_layers
        return self._image(record)

    def _write_records(self, record: dict[str, Any]) -> None:
        _write_json(self._image_path(record["id"]), record, self._tmp)
        _write_json(self._ref_path(record["reference"]),
                    {"reference": record["reference"], "id": record["id"]}, self._tmp)

    async def _ensure_layer(self, blob: LayerBlob) -> int:
        """Unpack `blob` into its layer dir unless it is there; return its unpacked size."""
        final = self._layer_dir(blob.diff_id)
        lock = self._layer_locks.setdefault(blob.diff_id, asyncio.Lock())
        async with lock:
            if final.is_dir():
                return int(_read_json(final / "layer.json")["size"])
            staging = Path(tempfile.mkdtemp(dir=self._tmp, prefix="layer-"))
            work = asyncio.ensure_future(asyncio.to_thread(self._unpack, blob, staging, final))
            try:
                size = await asyncio.shield(work)
            except asyncio.CancelledError:
                # A thread cannot be stopped: let it finish (it renames a complete layer
                # into place or fails) before its staging dir is removed under it.
                with contextlib.suppress(Exception):
                    await work
                raise
            finally:
                await asyncio.to_thread(shutil.rmtree, staging, True)
        return size

    @staticmethod
    def _unpack(blob: LayerBlob, staging: Path, final: Path) -> int:
        size = unpack_layer(blob.path, staging / "rootfs", digest=blob.digest, diff_id=blob.diff_id)
        meta = {"diff_id": blob.diff_id, "digest": blob.digest, "size": size}
        (staging / "layer.json").write_text(json.dumps(meta))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():      # another process won the race: use its copy
                raise
        return size

    def _cached(self, key: str) -> Image | None:
        try:
            ref = _read_json(self._ref_path(key))
            path = self._image_path(ref["id"])
            record = _read_json(path)
        except (OSError, ValueError, KeyError):
            return None
        if not all(self._layer_dir(d).is_dir() for d in record["layers"]):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)              # last used: now
        return self._image(record)

    def _image(self, record: dict[str, Any]) -> Image:
        return Image(
            id=record["id"], reference=record["reference"],
            layers=tuple(self._layer_dir(d) / "rootfs" for d in record["layers"]),
            config=ImageConfig.from_json({"config": record["config"]}), size=record["size"],
        )

    def _layer_dir(self, diff_id: str) -> Path:
        return self._layers_dir / diff_id.removeprefix("sha256:")

    def _image_path(self, image_id: str) -> Path:
        return self._images_dir / (image_id.removeprefix("sha256:") + ".json")

    def _ref_path(self, reference: str) -> Path:
        return self._refs_dir / (hashlib.sha256(reference.encode()).hexdigest() + ".json")

    def _layer_metas(self) -> dict[str, dict[str, Any]]:
        metas = {}
        for d in _listdir(self._layers_dir):
            with contextlib.suppress(OSError, ValueError):
                metas["sha256:" + d.name] = _read_json(d / "layer.json")
        return metas

    def _image_records(self) -> dict[str, dict[str, Any]]:
        records = {}
        for path in _listdir(self._images_dir):
            with contextlib.suppress(OSError, ValueError):
                record = _read_json(path)
                record["used"] = path.stat().st_mtime
                records[record["id"]] = record
        return records

    def _remove_image(self, image_id: str) -> None:
        for path in _listdir(self._refs_dir):
            with contextlib.suppress(OSError, ValueError):
                if _read_json(path)["id"] == image_id:
                    path.unlink()
        self._image_path(image_id).unlink(missing_ok=True)

    async def _remove_unused_layers(self, layers: dict[str, dict[str, Any]],
                                    images: dict[str, dict[str, Any]]) -> int:
        """Remove the layers in `layers` no image in `images` uses; return the bytes freed."""
        used = {d for record in images.values() for d in record["layers"]} | set(self._pinned_layers)
        freed = 0
        for diff_id in [d for d in layers if d not in used]:
            doomed = self._tmp / f"gc-{diff_id.removeprefix('sha256:')}"
            with contextlib.suppress(OSError):
                os.rename(self._layer_dir(diff_id), doomed)     # gone from the store at once
                freed += layers.pop(diff_id)["size"]
                await asyncio.to_thread(shutil.rmtree, doomed, True)
        return freed


def _archive_transport(path: Path, source: str) -> tuple[str, str | None]:
    """skopeo's transport for the archive at `path`, and the reference it names, if any."""
    if path.is_dir():
        if not (path / "index.json").is_file():
            raise ImageError(f"'{source}' is a directory but not an OCI image layout")
        index = _read_json(path / "index.json")
        return f"oci:{path}", _oci_ref_name(index)
    try:
        with tarfile.open(path) as tar:
            names = {m.name.removeprefix("./") for m in tar.getmembers()[:10000]}
            if "manifest.json" in names:
                member = tar.extractfile(tar.getmember(_member_name(tar, "manifest.json")))
                assert member is not None
                manifest = json.loads(member.read())
                tags = (manifest[0].get("RepoTags") or []) if manifest else []
                return f"docker-archive:{path}", _canonical(tags[0]) if tags else None
            if "index.json" in names:
                member = tar.extractfile(tar.getmember(_member_name(tar, "index.json")))
                assert member is not None
                return f"oci-archive:{path}", _oci_ref_name(json.loads(member.read()))
    except FileNotFoundError:
        raise ImageError(f"archive '{source}' does not exist") from None
    except (OSError, tarfile.TarError, ValueError, AttributeError, IndexError) as e:
        raise ImageError(f"cannot read archive '{source}': {e}") from None
    raise ImageError(f"'{source}' is neither a docker save archive nor an OCI archive")


def _member_name(tar: tarfile.TarFile, name: str) -> str:
    return name if name in tar.getnames() else f"./{name}"


def _oci_ref_name(index: dict[str, Any]) -> str | None:
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        return None
    name = (manifests[0].get("annotations") or {}).get(REF_NAME)
    return _canonical(name) if isinstance(name, str) and ("/" in name or ":" in name) else None


def _canonical(text: str) -> str | None:
    try:
        return str(parse_reference(text))
    except ImageError:
        return None


async def _download(url: str, dest: Path) -> None:
    timeout = aiohttp.ClientTimeout(total=ARCHIVE_DOWNLOAD_TIMEOUT, connect=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                raise ImageError(f"downloading archive '{url}' answered HTTP {resp.status}")
            f = await asyncio.to_thread(open, dest, "wb")
            try:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    await asyncio.to_thread(f.write, chunk)
            finally:
                await asyncio.to_thread(f.close)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ImageError(f"cannot download archive '{url}': {e or type(e).__name__}") from None


def _is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _write_json(path: Path, value: Any, tmp_dir: Path) -> None:
    """Write `value` to `path` atomically (a temp file in `tmp_dir`, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="write-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _listdir(directory: Path) -> Iterator[Path]:
    try:
        yield from directory.iterdir()
    except FileNotFoundError:
        return

