"""Marathon's v2 REST API over a `MarathonServiceApi`.

What is where:

- `api.py`         `setup()`: routes, and the middleware rendering errors as Marathon does
                   (JSON `{"message": ...}`, plus `details` for 400/422 and `deployments` for
                   a locked app; unknown routes `{"message": "URI not found"}`)
- `api_common.py`  query flags, JSON bodies, ids from URLs, deployment results, app embeds
- `api_apps.py`    `/v2/apps`, `/v2/tasks`
- `api_groups.py`  `/v2/groups`, `/v2/deployments`, `/v2/queue`
- `api_events.py`  `/v2/events` (SSE), `/v2/eventSubscriptions`, `/v2/info`, `/v2/leader`,
                   `/ping`, `/metrics`, `/v2/pods`

Handlers parse and validate with `appdef`, call the service, render with `appdef`'s JSON
builders; they never build error bodies themselves: they raise `LichenError`s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lichen.errors import LichenError
from lichen.frameworks.marathon import api_apps, api_events, api_groups
from lichen.frameworks.marathon.api_common import HEARTBEAT, SERVICE, json_response
from lichen.frameworks.marathon.service_api import AppLocked, MarathonServiceApi

__all__ = ["HEARTBEAT_SECONDS", "marathon_errors", "setup"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup(
    app: web.Application,
    service: MarathonServiceApi,
    *,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> None:
    """Serve the Marathon v2 API for `service` on `app` (before the app starts)."""
    app[SERVICE] = service
    app[HEARTBEAT] = heartbeat_seconds
    app.middlewares.append(marathon_errors)
    api_apps.add_routes(app)
    api_groups.add_routes(app)
    api_events.add_routes(app)


def _error_body(error: LichenError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message}
    details = getattr(error, "details", None)
    if details is not None:
        out["details"] = details
    if isinstance(error, AppLocked):
        out["deployments"] = [{"id": d} for d in error.deployment_ids]
    return out


@web.middleware
async def marathon_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LichenError as e:
        return json_response(_error_body(e), status=e.status)
    except web.HTTPNotFound:
        return json_response({"message": "URI not found"}, status=404)
    except web.HTTPMethodNotAllowed as e:
        return json_response(
            {"message": "HTTP 405 Method Not Allowed"},
            status=405,
            headers={"Allow": e.headers.get("Allow", "")},
        )
    except web.HTTPException:
        raise
    except ConnectionError:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return json_response({"message": "Internal error"}, status=500)
