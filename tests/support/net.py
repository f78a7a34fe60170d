"""HTTP and address helpers for tests (blocking, with timeouts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

TIMEOUT = 10.0


def http_get_json(url: str, timeout: float = TIMEOUT) -> Any:
    """GET `url`, assert a 2xx answer, return its JSON body."""
    resp = requests.get(url, timeout=timeout)
    assert resp.ok, f"GET {url} answered {resp.status_code}: {resp.text[:500]}"
    return resp.json()


def http_post_json(url: str, body: Any, timeout: float = TIMEOUT, **headers: str) -> requests.Response:
    """POST `body` as JSON to `url`; return the response, whatever its status."""
    return requests.post(url, json=body, headers=headers, timeout=timeout)


def read_addr(path: Path) -> str | None:
    """The `host:port` a daemon wrote to its addr file, or None while it has not."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def url_of(addr: str) -> str:
    return f"http://{addr}"
