"""Wiring: builds the process from settings (logging, store, daemon, delivery, HTTP) and runs it."""

from __future__ import annotations

import logging

from alertd.config import Settings
from alertd.daemon import Daemon, run_forever
from alertd.logs import setup_logging
from alertd.regions import RegionRegistry
from alertd.store import Store

log = logging.getLogger("alertd")


def settings_secrets(settings: Settings) -> list[str]:
    """Every configured secret, so the log filter can scrub whatever slips into a line."""
    secrets: list[str] = []
    for source in settings.sources:
        if source.token:
            secrets.append(source.token.get_secret_value())
    urls = [u for sub in settings.subscribers for u in sub.urls] + list(settings.operators.urls)
    secrets.extend(u.get_secret_value() for u in urls)
    return secrets


async def run_app(
    settings: Settings,
    registry: RegionRegistry,
    *,
    once: bool = False,
    log_format: str | None = None,
    log_level: str | None = None,
) -> int:
    setup_logging(
        level=log_level or settings.log_level,
        fmt=log_format or settings.log_format,
        secrets=settings_secrets(settings),
    )
    store = Store(settings.db_path)
    try:
        daemon = Daemon(settings, registry, store)
        if once:
            await daemon.poll_all()
            await daemon.aclose()
            return 0
        await run_forever(daemon)
        return 0
    finally:
        store.close()
