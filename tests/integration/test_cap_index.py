"""Thin and thick CAP indexes end to end: a local publisher, the poller's fetch-once cache, ``alertd parse``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.process import alertd_env

from alertd.config import SourceConfig, load_settings
from alertd.core.regions import RegionRegistry
from alertd.logs import line as log_line
from alertd.run.daemon import Daemon
from alertd.run.fetch import make_client
from alertd.run.poll import MessageCache, poll_source, resolve_links
from alertd.sources import cap
from alertd.store.sqlite import SourceCursor, Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
MESSAGES = {
    "/cap/example1.xml": "oasis_cap12_example1_hsas_security.xml",
    "/cap/example3.xml": "oasis_cap12_example3_earthquake_update.xml",
    "/cap/nws.cap": "cap11_nws_thunderstorm_CONSTRUCTED.xml",
    "/cap/restricted.xml": "cap12_restricted_scope_CONSTRUCTED.xml",
    "/cap/noscope.xml": "cap12_without_scope_CONSTRUCTED.xml",
    "/cap/example2.xml": "oasis_cap12_example2_nws_thunderstorm_polygon.xml",
    "/cap/cancel2.xml": "cap12_cancel_of_example2_CONSTRUCTED.xml",
}


class Publisher:
    """A CAP publisher on 127.0.0.1: a thin Atom index at /index.atom and the messages it links to."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.index_paths = ["/cap/example1.xml", "/cap/example3.xml", "/cap/nws.cap"]
        self.sent = "2003-06-17T14:57:00-07:00"
        publisher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                publisher.hits.append(self.path)
                if self.path == "/index.atom":
                    body, ctype = publisher.index().encode(), "application/atom+xml"
                elif self.path in MESSAGES:
                    body, ctype = (FIXTURES / MESSAGES[self.path]).read_bytes(), "application/cap+xml"
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def index(self) -> str:
        """Entries the way publishers write thin ones: a typed cap+xml link, or just a .cap/.xml href."""
        entries = []
        for i, path in enumerate(self.index_paths):
            typed = 'type="application/cap+xml" ' if i % 2 == 0 else ""
            entries.append(
                f"<entry><id>urn:example:{path}</id><title>alert {i}</title><updated>{self.sent}</updated>"
                f'<link rel="alternate" {typed}href="{self.url}{path}"/></entry>'
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>urn:example:index</id><title>CAP index</title><updated>{self.sent}</updated>"
            + "".join(entries)
            + "</feed>"
        )

    def message_hits(self) -> list[str]:
        return [h for h in self.hits if h != "/index.atom"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    pub = Publisher()
    yield pub
    pub.stop()


def _cursor() -> SourceCursor:
    return SourceCursor(name="cap-index")


async def test_thin_index_messages_are_fetched_once_per_version(publisher: Publisher) -> None:
    cfg = SourceConfig(name="cap-index", type="cap", url=publisher.url + "/index.atom")
    registry = RegionRegistry.load()
    cache = MessageCache()
    async with make_client() as client:
        first = await poll_source(client, cfg, _cursor(), registry, cache)
        assert sorted(publisher.message_hits()) == sorted(publisher.index_paths)
        assert isinstance(first.payload, list)
        ids = sorted(n.id for n in first.payload)
        assert ids == ["43b080713727", "KSTO1055887203", "TRI13970876.2"]
        assert "etag" in first.cursor  # every link settled: the index's validators are kept

        # the same index again: no message is fetched a second time
        second = await poll_source(client, cfg, _cursor(), registry, cache)
        assert sorted(n.id for n in second.payload) == ids  # type: ignore[union-attr]
        assert len(publisher.message_hits()) == 3

        # a new version of the index entries (a new sent/updated): fetched again, once
        publisher.sent = "2003-06-17T15:30:00-07:00"
        await poll_source(client, cfg, _cursor(), registry, cache)
        await poll_source(client, cfg, _cursor(), registry, cache)
        assert len(publisher.message_hits()) == 6


async def test_thin_index_fetches_at_most_the_limit_per_poll(publisher: Publisher) -> None:
    cfg = SourceConfig(name="cap-index", type="cap", url=publisher.url + "/index.atom")
    batch = cap.parse_feed(publisher.index().encode(), source="cap-index", where=cfg.url)
    cache = MessageCache()
    async with make_client() as client:
        notices, skipped, settled = await resolve_links(
            client, cfg, batch, RegionRegistry.load(), cache, base_url=cfg.url, limit=2
        )
        assert len(publisher.message_hits()) == 2 and len(notices) == 2 and not settled
        assert [s.reason for s in skipped] == [
            "1 linked message(s) left for the next poll (2 fetched per poll)"
        ]
        notices, skipped, settled = await resolve_links(
            client, cfg, batch, RegionRegistry.load(), cache, base_url=cfg.url, limit=2
        )
    assert len(publisher.message_hits()) == 3 and len(notices) == 3 and settled and skipped == []


async def test_thin_index_refuses_entries_alone(publisher: Publisher) -> None:
    publisher.index_paths = ["/cap/example1.xml", "/cap/noscope.xml", "/cap/restricted.xml", "/cap/gone.xml"]
    cfg = SourceConfig(name="cap-index", type="cap", url=publisher.url + "/index.atom")
    async with make_client() as client:
        result = await poll_source(client, cfg, _cursor(), RegionRegistry.load(), MessageCache())
    assert [n.id for n in result.payload] == ["43b080713727"]  # type: ignore[union-attr]
    reasons = {item.reason: item.warning for item in result.skipped}
    noscope = next(r for r in reasons if "noscope" in r)
    assert "<scope>" in noscope and reasons[noscope] is True
    restricted = next(r for r in reasons if "scope Restricted" in r)
    assert reasons[restricted] is False  # logged once at info, not a warning
    gone = next(r for r in reasons if "gone.xml" in r)
    assert "HTTP 404" in gone and reasons[gone] is True
    # a link that failed to fetch must be asked for again: the index is not marked as seen
    assert "etag" not in result.cursor and "last_modified" not in result.cursor


def _alertd_parse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertd", "parse", "--source", "cap", *args],
        env=alertd_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alertd_parse_thin_index_against_a_local_server(tmp_path: Path, publisher: Publisher) -> None:
    index = tmp_path / "index.atom"
    index.write_text(publisher.index(), encoding="utf-8")
    result = _alertd_parse(str(index))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["id"], r["msg_type"]) for r in records) == [
        ("43b080713727", "Alert"),
        ("KSTO1055887203", "Alert"),
        ("TRI13970876.2", "Update"),
    ]
    nws = next(r for r in records if r["id"] == "KSTO1055887203")
    assert nws["title"] == "SEVERE THUNDERSTORM WARNING"


def test_alertd_parse_thick_index() -> None:
    result = _alertd_parse(str(FIXTURES / "thick_atom_index_four_entries_CONSTRUCTED.xml"))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [
        "43b080713727",
        "TRI13970876.2",
    ]
    # the entry without <scope> is refused alone, named on stderr
    assert "Atom entry 3" in result.stderr and "<scope>" in result.stderr


def test_alertd_parse_message_without_scope_fails_naming_scope() -> None:
    result = _alertd_parse(str(FIXTURES / "cap12_without_scope_CONSTRUCTED.xml"))
    assert result.returncode != 0
    assert "<scope>" in result.stderr and result.stdout == ""


async def test_daemon_logs_a_restricted_message_once_and_a_refused_linked_one_once(
    tmp_path: Path, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    publisher.index_paths = ["/cap/example1.xml", "/cap/restricted.xml", "/cap/noscope.xml"]
    config = tmp_path / "alertd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[http]\nenabled = false\n'
        f'[[sources]]\nname = "cap-index"\ntype = "cap"\nurl = "{publisher.url}/index.atom"\ninterval = 60\n',
        encoding="utf-8",
    )
    settings = load_settings(config, env={}, validate_urls=False)
    store = Store(settings.db_path)
    daemon = Daemon(settings, RegionRegistry.load(), store)
    caplog.set_level(logging.INFO, logger="alertd")
    try:
        for _ in range(3):
            daemon.clear_backoff()
            await daemon.poll(daemon.sources[0])
    finally:
        await daemon.aclose()
        store.close()
    lines = [log_line(r) for r in caplog.records]
    assert sum("item not announced" in m and "scope Restricted" in m for m in lines) == 1
    # the message without <scope> is refused once (its refusal is cached with its version)
    assert sum("item refused" in m and "<scope>" in m for m in lines) == 1
    assert len(publisher.message_hits()) == 3  # each linked message fetched once in three polls


async def test_thin_index_alert_then_its_cancel_reach_the_event_log(
    tmp_path: Path, publisher: Publisher
) -> None:
    """Alert, then a Cancel whose <references> name it: issued, then cancelled (the tracker's item rules)."""
    publisher.index_paths = ["/cap/example1.xml"]
    config = tmp_path / "alertd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[http]\nenabled = false\n'
        f'[[sources]]\nname = "cap-index"\ntype = "cap"\nurl = "{publisher.url}/index.atom"\ninterval = 60\n',
        encoding="utf-8",
    )
    settings = load_settings(config, env={}, validate_urls=False)
    store = Store(settings.db_path)
    daemon = Daemon(settings, RegionRegistry.load(), store)
    try:
        await daemon.poll(daemon.sources[0])  # baseline: what is already listed is recorded
        publisher.index_paths.append("/cap/example2.xml")
        daemon.clear_backoff()
        await daemon.poll(daemon.sources[0])
        publisher.index_paths.append("/cap/cancel2.xml")
        daemon.clear_backoff()
        await daemon.poll(daemon.sources[0])
        events = [(str(e.status), e.headline) for e in store.events()]
    finally:
        await daemon.aclose()
        store.close()
    assert [status for status, _ in events] == ["issued", "cancelled"]
    assert events[0][1] == "SEVERE THUNDERSTORM WARNING"
