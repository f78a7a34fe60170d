"""`lichen marathon`: the service, its v2 API and its scheduler link, until SIGTERM/SIGINT."""

from __future__ import annotations

from lichen.frameworks.daemon import run_framework
from lichen.frameworks.marathon import api
from lichen.frameworks.marathon.service import MarathonFlags, MarathonService


def run(flags: MarathonFlags) -> None:
    run_framework("marathon", flags, lambda store, clock: MarathonService(flags, store, clock), api.setup)
