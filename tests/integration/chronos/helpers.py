"""Helpers for the raw-HTTP API tests: requests against a served fake, job bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.integration.chronos.fake_service import ServedFake

PREFIXES = ["/v1/scheduler", "/scheduler"]

FAR = "R/2099-01-01T00:00:00Z/P1D"


@pytest.fixture(params=PREFIXES)
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(served: ServedFake, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return requests.request(method, served.url + path, data=data, timeout=5, **kw)


def job(name: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "command": f"echo {name}", "owner": "", "disabled": False}
    if "parents" not in fields:
        out["schedule"] = FAR
    out.update(fields)
    return out


def add(served: ServedFake, prefix: str, body: dict[str, Any]) -> None:
    kind = "dependency" if "parents" in body else "iso8601"
    r = call(served, "POST", f"{prefix}/{kind}", body)
    assert r.status_code == 204, r.text


def bad_request(r: requests.Response) -> str:
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "Bad Request" and set(body) == {"status", "message"}
    assert body["message"]
    return str(body["message"])
