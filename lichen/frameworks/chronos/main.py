"""`lichen chronos`: the job scheduler, its REST API and its scheduler link, until SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lichen.frameworks.chronos import api
from lichen.frameworks.chronos.service import ChronosFlags, ChronosService
from lichen.frameworks.daemon import run_framework


def run(flags: ChronosFlags) -> None:
    def setup_api(app: web.Application, service: Any) -> None:
        api.setup(app, service, defaults=service.defaults)

    run_framework("chronos", flags, lambda store, clock: ChronosService(flags, store, clock), setup_api)
