"""The image store against a real registry (Debian's docker-registry) and real skopeo."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import stat
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lichen.agent.images import ImageError, ImageStore
from tests.integration.agent.images.conftest import PASSWORD, USER
from tests.support.images import (
    Registry,
    build_image,
    build_index,
    busybox_image,
    busybox_layer,
    copy_image,
    files_layer,
    host_arch,
    start_registry,
    write_auth_config,
)

T = TypeVar("T")
BUSYBOX_DIFF_ID = hashlib.sha256(busybox_layer()).hexdigest()


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro
    return asyncio.run(bounded())


def layer_dirs(root: Path) -> list[Path]:
    return sorted((root / "layers" / "sha256").iterdir())


def test_pull_gives_the_image_config_and_its_unpacked_layers(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    image_id = busybox_image(layout, "v1", entrypoint=["/bin/echo"], cmd=["hello"],
                             env=["PATH=/bin", "GREETING=hi"], working_dir="/tmp", user="nobody")
    registry.push(layout, "v1", "tools/busybox:v1")
    store = ImageStore(tmp_path / "store")

    image = run(store.get(f"{registry.addr}/tools/busybox:v1"))

    assert image.id == image_id
    assert image.reference == f"{registry.addr}/tools/busybox:v1"
    assert image.config.entrypoint == ["/bin/echo"]
    assert image.config.cmd == ["hello"]
    assert image.config.env == ["PATH=/bin", "GREETING=hi"]
    assert (image.config.working_dir, image.config.user) == ("/tmp", "nobody")
    (rootfs,) = image.layers
    assert os.access(rootfs / "bin" / "busybox", os.X_OK)
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert image.size >= (rootfs / "bin" / "busybox").stat().st_size
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_a_manifest_list_gives_the_image_for_the_host_platform(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    other = "s390x" if host_arch() != "s390x" else "amd64"
    mine = busybox_image(layout, "mine", extra_layers=[files_layer({"arch": host_arch().encode()})])
    busybox_image(layout, "other", extra_layers=[files_layer({"arch": other.encode()})],
                  architecture=other)
    build_index(layout, "multi", {other: "other", host_arch(): "mine"})
    registry.push(layout, "multi", "multi:v1", "--all")

    image = run(ImageStore(tmp_path / "store").get(f"{registry.addr}/multi:v1"))

    assert image.id == mine
    assert (image.layers[1] / "arch").read_text() == host_arch()


def test_a_second_get_answers_from_the_store_without_the_registry(
    tmp_path: Path, layout: Path
) -> None:
    busybox_image(layout, "v1")
    with start_registry(tmp_path / "reg") as reg:
        reg.push(layout, "v1", "bb:v1")
        first = run(ImageStore(tmp_path / "store").get(f"{reg.addr}/bb:v1"))
    # A new store on the same root (an agent restart) finds it; the registry is gone.
    again = run(ImageStore(tmp_path / "store").get(f"{reg.addr}/bb:v1"))
    assert again == first
    with pytest.raises(ImageError, match="unreachable"):
        run(ImageStore(tmp_path / "store").get(f"{reg.addr}/bb:v1", force_pull=True))


def test_a_layer_shared_by_two_images_is_stored_once(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    busybox_image(layout, "a", extra_layers=[files_layer({"a.txt": b"a"})])
    busybox_image(layout, "b", extra_layers=[files_layer({"b.txt": b"b"})])
    registry.push(layout, "a", "app:a")
    registry.push(layout, "b", "app:b")
    store = ImageStore(tmp_path / "store")

    a = run(store.get(f"{registry.addr}/app:a"))
    b = run(store.get(f"{registry.addr}/app:b"))

    assert a.layers[0] == b.layers[0]
    assert a.layers[1] != b.layers[1]
    assert len(layer_dirs(tmp_path / "store")) == 3
    assert (a.layers[1] / "a.txt").read_bytes() == b"a"


def test_concurrent_gets_of_one_reference_pull_once(
    tmp_path: Path, registry: Registry, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busybox_image(layout, "v1")
    registry.push(layout, "v1", "bb:v1")
    # Count skopeo runs with a shim in front of the real one.
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    count = tmp_path / "skopeo-runs"
    shim = shim_dir / "skopeo"
    shim.write_text(f'#!/bin/sh\necho run >> {count}\nexec {shutil.which("skopeo")} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{os.environ['PATH']}")
    store = ImageStore(tmp_path / "store")

    async def five_gets() -> list[Any]:
        return await asyncio.gather(*(store.get(f"{registry.addr}/bb:v1") for _ in range(5)))

    images = run(five_gets())

    assert all(image == images[0] for image in images)
    assert count.read_text().splitlines() == ["run"]


def test_load_a_docker_save_archive_then_get_it_by_its_name(tmp_path: Path, layout: Path) -> None:
    busybox_image(layout, "v1", cmd=["sleep", "1"])
    archive = tmp_path / "saved.tar"
    copy_image(f"oci:{layout}:v1", f"docker-archive:{archive}:example.com/team/app:v1")
    store = ImageStore(tmp_path / "store")

    image = run(store.load_archive(str(archive)))

    assert image.layers[0].parent.name == BUSYBOX_DIFF_ID   # layers are named by content
    assert image.reference == "example.com/team/app:v1"
    assert image.config.cmd == ["sleep", "1"]
    assert run(store.get("example.com/team/app:v1", timeout=5)) == image   # no registry asked


def test_load_an_oci_archive_and_an_oci_layout_dir(tmp_path: Path, layout: Path) -> None:
    image_id = busybox_image(layout, "v1")
    single = tmp_path / "single"
    copy_image(f"oci:{layout}:v1", f"oci:{single}:v1")
    archive = tmp_path / "image.oci.tar"
    copy_image(f"oci:{layout}:v1", f"oci-archive:{archive}:v1")
    store = ImageStore(tmp_path / "store")

    from_archive = run(store.load_archive(str(archive)))
    from_dir = run(store.load_archive(str(single)))

    assert from_archive.id == from_dir.id == image_id
    assert from_archive.layers == from_dir.layers


def test_load_an_archive_from_a_url(tmp_path: Path, layout: Path) -> None:
    from aiohttp import web

    busybox_image(layout, "v1")
    archive = tmp_path / "saved.tar"
    copy_image(f"oci:{layout}:v1", f"docker-archive:{archive}:served:v1")
    store = ImageStore(tmp_path / "store")

    async def serve_and_load() -> tuple[str, Any]:
        async def saved(_: web.Request) -> web.FileResponse:
            return web.FileResponse(archive)

        app = web.Application()
        app.router.add_get("/saved.tar", saved)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            image = await store.load_archive(f"http://127.0.0.1:{port}/saved.tar")
            with pytest.raises(ImageError, match="HTTP 404"):
                await store.load_archive(f"http://127.0.0.1:{port}/missing.tar")
            return image.layers[0].parent.name, image.reference
        finally:
            await runner.cleanup()

    assert run(serve_and_load()) == (BUSYBOX_DIFF_ID, "registry-1.docker.io/library/served:v1")


def test_a_file_that_is_no_image_archive_is_an_image_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match="junk.tar"):
        run(store.load_archive(str(junk)))
    with pytest.raises(ImageError, match="does not exist"):
        run(store.load_archive(str(tmp_path / "missing.tar")))


def test_a_registry_that_is_down_is_an_image_error_quickly(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # closed again: nothing listens there
    store = ImageStore(tmp_path / "store")
    started = time.monotonic()
    with pytest.raises(ImageError, match=f"registry 127.0.0.1:{port} is unreachable"):
        run(store.get(f"127.0.0.1:{port}/bb:v1", timeout=30))
    assert time.monotonic() - started < 10


def test_a_registry_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()                     # accepts connections, never answers
        port = silent.getsockname()[1]
        store = ImageStore(tmp_path / "store")
        started = time.monotonic()
        with pytest.raises(ImageError, match=f"bb:v1' from registry 127.0.0.1:{port} timed out after 2 s"):
            run(store.get(f"127.0.0.1:{port}/bb:v1", timeout=2))
        assert time.monotonic() - started < 6
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_an_unknown_tag_and_an_unknown_repository_are_image_errors(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    busybox_image(layout, "v1")
    registry.push(layout, "v1", "bb:v1")
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match=f"image '{registry.addr}/bb:v2' not found in registry {registry.addr}"):
        run(store.get(f"{registry.addr}/bb:v2"))
    with pytest.raises(ImageError, match=f"image '{registry.addr}/nope:v1' not found"):
        run(store.get(f"{registry.addr}/nope:v1"))


def test_a_bad_reference_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="invalid image reference 'Bad:Tag:'"):
        run(ImageStore(tmp_path / "store").get("Bad:Tag:"))


def test_basic_auth_needs_the_registry_config(
    tmp_path: Path, auth_registry: Registry, layout: Path
) -> None:
    busybox_image(layout, "v1")
    auth_registry.push(layout, "v1", "private:v1")
    reference = f"{auth_registry.addr}/private:v1"

    with pytest.raises(ImageError, match=f"authentication failed for image '{reference}'"):
        run(ImageStore(tmp_path / "anonymous").get(reference))
    wrong = write_auth_config(tmp_path / "wrong.json", auth_registry.addr, USER, "nope")
    with pytest.raises(ImageError, match="authentication failed"):
        run(ImageStore(tmp_path / "wrong", registry_config=wrong).get(reference))

    config = write_auth_config(tmp_path / "config.json", auth_registry.addr, USER, PASSWORD)
    image = run(ImageStore(tmp_path / "store", registry_config=config).get(reference))
    assert (image.layers[0] / "bin" / "busybox").is_file()


def test_whiteouts_and_opaque_dirs_are_stored_in_overlayfs_form(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    upper = files_layer({"tmp/new.txt": b"new"}, whiteouts=["etc/group"], opaque_dirs=["tmp"])
    busybox_image(layout, "v1", extra_layers=[upper])
    registry.push(layout, "v1", "wh:v1")

    image = run(ImageStore(tmp_path / "store").get(f"{registry.addr}/wh:v1"))

    top = image.layers[1]
    whiteout = os.lstat(top / "etc" / "group")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert not (top / "etc" / ".wh.group").exists()
    assert os.getxattr(top / "tmp", "trusted.overlay.opaque") == b"y"
    assert not (top / "tmp" / ".wh..wh..opq").exists()
    assert (top / "tmp" / "new.txt").read_bytes() == b"new"
    assert (image.layers[0] / "etc" / "group").is_file()     # the lower layer is untouched


def test_a_corrupt_layer_is_an_image_error_and_leaves_the_store_consistent(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    busybox_image(layout, "v1", extra_layers=[files_layer({"x": b"x" * 4096})])
    registry.push(layout, "v1", "bad:v1")
    # Flip bytes in the registry's copy of the top layer blob.
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest).read_text())
    layer_digest = manifest["layers"][1]["digest"]
    hexdigest = layer_digest.removeprefix("sha256:")
    data = registry.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    store_root = tmp_path / "store"
    store = ImageStore(store_root)

    with pytest.raises(ImageError, match=f"corrupt layer {layer_digest}"):
        run(store.get(f"{registry.addr}/bad:v1"))

    assert list((store_root / "images" / "sha256").iterdir()) == []
    assert list((store_root / "refs").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []
    assert all((d / "layer.json").is_file() for d in layer_dirs(store_root))


def test_garbage_collection_removes_unused_images_oldest_first_under_the_budget(
    tmp_path: Path, registry: Registry, layout: Path
) -> None:
    big = 1 << 20
    for name in ("a", "b", "c"):
        build_image(layout, name, [busybox_layer(), files_layer({name: os.urandom(big)})])
        registry.push(layout, name, f"gc:{name}")
    store_root = tmp_path / "store"
    store = ImageStore(store_root)
    a, b, c = (run(store.get(f"{registry.addr}/gc:{name}")) for name in "abc")
    base = a.layers[0]
    base_size = a.size - big
    # b is the oldest use, then c, then a; a container holds b.
    now = time.time()
    for image, age in ((b, 300), (c, 200), (a, 100)):
        record = store_root / "images" / "sha256" / (image.id.removeprefix("sha256:") + ".json")
        os.utime(record, (now - age, now - age))
    store.acquire(b, "container-1")
    store.budget_bytes = base_size + 2 * big + 100      # room for two of the three extras

    removed = run(store.collect_garbage())

    assert removed == [c.id]
    assert not c.layers[1].exists()
    assert base.exists() and a.layers[1].exists() and b.layers[1].exists()
    assert store.cached(f"{registry.addr}/gc:c") is None
    assert store.cached(f"{registry.addr}/gc:a") == a
    assert run(store.collect_garbage()) == []             # under the budget now

    store.release("container-1")
    store.budget_bytes = 0
    assert sorted(run(store.collect_garbage())) == sorted([a.id, b.id])
    assert layer_dirs(store_root) == []
