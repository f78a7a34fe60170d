"""Running skopeo, and turning what it says when it fails into an ImageError.

skopeo speaks the registry protocol for us (Docker Registry HTTP API v2, token and basic
auth, manifest lists, Docker and OCI media types) and reads `docker save` and OCI archives;
the store only ever asks it to copy an image into a fresh OCI layout directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Sequence

from lichen.agent.images.errors import ImageError

SKOPEO = "skopeo"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


async def copy(global_args: Sequence[str], copy_args: Sequence[str], source: str, dest: str, *,
               timeout: float, describe: str, registry: str | None = None) -> None:
    """`skopeo GLOBAL copy COPY_ARGS SOURCE DEST`, killed after `timeout` s.

    `describe` names what is copied in messages ("image '127.0.0.1:5000/a:1'"); `registry`
    is the registry it comes from, if any. Raises ImageError.
    """
    argv = [SKOPEO, *global_args, "copy", "--quiet", *copy_args, source, dest]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
    except FileNotFoundError:
        raise ImageError(f"cannot copy {describe}: skopeo is not installed") from None
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await proc.communicate()
    except TimeoutError:
        raise ImageError(_timed_out(describe, registry, timeout)) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if proc.returncode != 0:
        raise classify(stderr.decode(errors="replace"), describe, registry)


def classify(stderr: str, describe: str, registry: str | None) -> ImageError:
    """The ImageError for a failed skopeo copy, from its stderr (pure)."""
    text = stderr.lower()
    where = f" in registry {registry}" if registry else ""
    if "did not match" in text or "digest mismatch" in text or "corrupt" in text:
        found = _DIGEST.findall(stderr)
        return ImageError(f"corrupt layer {found[0] if found else '(unknown digest)'} of {describe}")
    if registry and any(s in text for s in (
        "connection refused", "no such host", "no route to host", "i/o timeout",
        "network is unreachable", "connection reset", "dial tcp", "eof",
    )):
        return ImageError(f"registry {registry} is unreachable ({_last_line(stderr)})")
    if any(s in text for s in ("unauthorized", "authentication required", "denied",
                               "invalid username/password", "401")):
        return ImageError(f"authentication failed for {describe}{where} ({_last_line(stderr)})")
    if any(s in text for s in ("manifest unknown", "name unknown", "not found", "404")):
        return ImageError(f"{describe} not found{where}")
    return ImageError(f"copying {describe} failed: {_last_line(stderr)}")


def _timed_out(describe: str, registry: str | None, timeout: float) -> str:
    source = f" from registry {registry}" if registry else ""
    return f"pulling {describe}{source} timed out after {timeout:g} s"


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    line = lines[-1]
    return line.split('msg="', 1)[-1].rstrip('"').replace('\\"', '"')[:500]
