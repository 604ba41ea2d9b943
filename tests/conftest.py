"""Shared fixtures: the local delivery sinks (tests/support/sinks.py). Keep this file small."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.pg import PgCluster, pg_unavailable, start_cluster
from support.sinks import JsonSink, SmtpSink

from alertd.run.fetch import no_proxy_with_loopback


@pytest.fixture(autouse=True, scope="session")
def _loopback_never_proxied() -> Iterator[None]:
    """Tests reach their 127.0.0.1 stand-ins whatever http_proxy/https_proxy say (Apprise reads NO_PROXY)."""
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name in saved:
        os.environ[name] = no_proxy_with_loopback(saved[name])
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def json_sink() -> Iterator[JsonSink]:
    """An HTTP server for Apprise ``json://127.0.0.1:PORT/<path>`` channels, one per test."""
    with JsonSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server for Apprise ``mailto://`` channels, one per test."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster per session (tests/support/pg.py).

    Missing server binaries skip the PostgreSQL tests locally, with the reason; in CI
    (``CI`` set) they fail instead: no PostgreSQL test may be skipped there.
    """
    reason = pg_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}")
        pytest.skip(reason)
    cluster = start_cluster()
    assert cluster is not None
    yield cluster
    cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster, dropped after the test."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)
