"""Polling with a deadline: the only way tests wait for state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")

POLL_INTERVAL = 0.02


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, message: str = "condition") -> T:
    """Call `predicate` until it returns something truthy, and return that.

    A predicate that raises OSError, a requests error or ValueError (a refused connection,
    a half-written file) counts as "not yet". Raises AssertionError naming `message` (and
    the last such error) once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except (OSError, requests.RequestException, ValueError) as e:
            last_error = e
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            why = f" (last error: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}{why}")
        time.sleep(POLL_INTERVAL)
