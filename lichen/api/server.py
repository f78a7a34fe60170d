"""Serving an aiohttp app: where it listens is separate from what it serves.

`serve()` binds (port 0 picks a free port), writes `<work-dir>/<component>.addr`
with the bound `host:port`, and returns the runner and address. `error_middleware`
renders every `LichenError` with the status the original answers with, as plain text.
Anything else is a bug: its traceback goes to the log and the client gets a bare 500.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from lichen.errors import InvalidRequest, LichenError
from lichen.recordio import encode

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LichenError as e:
        return web.Response(status=e.status, text=e.message + "\n", content_type="text/plain")
    except web.HTTPException:
        raise
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return web.Response(status=500, text="Internal error\n", content_type="text/plain")


def make_app(**kwargs: Any) -> web.Application:
    return web.Application(middlewares=[error_middleware], client_max_size=64 * 1024**2, **kwargs)


async def serve(
    app: web.Application, host: str, port: int, work_dir: Path | None, component: str
) -> tuple[web.AppRunner, str, int]:
    """Start serving `app`; return the runner and the bound host and port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    bound_host, bound_port = server.sockets[0].getsockname()[:2]  # type: ignore[attr-defined]
    if work_dir is not None:
        write_addr(work_dir, component, f"{bound_host}:{bound_port}")
    return runner, bound_host, bound_port


def write_addr(work_dir: Path, component: str, addr: str) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = work_dir / f".{component}.addr.tmp"
    tmp.write_text(addr + "\n")
    os.replace(tmp, work_dir / f"{component}.addr")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or InvalidRequest saying why not."""
    body = await request.read()
    try:
        import json

        return json.loads(body)
    except ValueError as e:
        raise InvalidRequest(f"Failed to parse body into JSON: {e}") from None


async def open_stream(request: web.Request, headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Start a chunked RecordIO reply (200, no Content-Length)."""
    resp = web.StreamResponse(status=200, headers=headers or {})
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


async def send_record(resp: web.StreamResponse, record: dict[str, Any]) -> None:
    await resp.write(encode(record))
