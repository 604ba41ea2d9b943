"""Test helpers around :class:`alertd.devtools.simulate.Upstream`: config files and event-log reading."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from alertd.config import Settings, load_settings
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream

AIU_TOKEN = "aiu-secret-7c1e5b9d"
UA_TOKEN = "ua-secret-2f48a0e6"

T = TypeVar("T")


def write_config(
    directory: Path,
    upstream: Upstream,
    *,
    sources: Sequence[str] = ("aiu", "ualarm"),
    interval: float = 1,
    timeout: float = 1,
    aiu_token: str = AIU_TOKEN,
    ua_token: str = UA_TOKEN,
    tracker: str = "",
    extra: str = "",
) -> Path:
    """An alertd.toml in ``directory`` polling the simulated upstreams; state in ``directory/state``."""
    state = directory / "state"
    lines = [f'state_dir = "{state}"', extra, "[http]", "enabled = false", "[tracker]", tracker]
    known = {
        "aiu": ("alerts_in_ua", upstream.alerts_in_ua_url, aiu_token),
        "ualarm": ("ukrainealarm", upstream.ukrainealarm_url, ua_token),
    }
    for name in sources:
        kind, url, token = known[name]
        lines += [
            "[[sources]]",
            f'name = "{name}"',
            f'type = "{kind}"',
            f'url = "{url}"',
            f'token = "{token}"',
            f"interval = {interval}",
            f"timeout = {timeout}",
            "jitter = 0",
        ]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(path: Path) -> Settings:
    """Settings from ``path`` only (no ``ALERTD_*`` from the test process's environment)."""
    return load_settings(path, env={}, registry=RegionRegistry.load(), validate_urls=False)


def read_events(db_path: Path) -> list[tuple[str, str, str, str, str | None, str | None]]:
    """(id, status, region_code, kind, started_at, ended_at) of every event, read-only, in order."""
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(
            "SELECT id, status, region_code, kind, started_at, ended_at FROM events ORDER BY seq"
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, step: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g}s")
        time.sleep(step)
