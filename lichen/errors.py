"""The few errors every edge knows how to render.

Each carries the HTTP status the original system answers with; `api/server.py`
renders them as plain text and the CLI as a message with exit code 1.
"""

from __future__ import annotations


class LichenError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(LichenError):
    """Malformed or invalid input (400)."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(LichenError):
    status = 403


class NotFound(LichenError):
    status = 404


class MethodNotAllowed(LichenError):
    status = 405


class NotAcceptable(LichenError):
    status = 406


class Conflict(LichenError):
    status = 409


class UnsupportedMediaType(LichenError):
    status = 415


class Unavailable(LichenError):
    """Not ready yet: no leader, still recovering (503)."""

    status = 503
