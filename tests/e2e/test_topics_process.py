"""Broadcast topics end to end: ``alertd run`` as a process, topics on a local sink, one path per place.

The topic URL is a template on the sink (``json://127.0.0.1:PORT/t/{code}``), so
each place's topic is its own path and what a resident following one topic
sees is exactly what that path received.

* A resident following the Irpin hromada topic hears the hromada's alert, Bucha
  raion's and Kyiv oblast's, exactly once each, and nothing of Kyiv city's.
* An oblast alert is one post per topic inside the oblast, however many
  individual channels also hear it.
* Across a SIGKILL mid fan-out a topic gets a notice again only if that very
  post was in flight at the kill (the outbox row left ``sending``: alertd cannot
  know whether the service took it); every other topic exactly once, ends
  exactly once. Killed once the topic posts are recorded as delivered (topics
  are sent first, so that is while the people are still being served), no
  topic hears anything twice.

Waits are bounded and on observable conditions; nothing asserts on timing.
"""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, wait_for

from alertd.core.regions import RegionRegistry
from alertd.core.topics import url_code
from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
# alerts.in.ua location uids
IRPIN, BUCHA_RAION, KYIV_OBLAST, KYIV_CITY = 706, 75, 14, 31


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


def write_config(
    directory: Path,
    upstream: Upstream,
    topics: JsonSink,
    people: JsonSink | None = None,
    *,
    individuals: int = 0,
    concurrency: int = 16,
) -> Path:
    lines = [
        f'state_dir = "{directory / "state"}"',
        "[http]",
        "enabled = false",
        "[delivery]",
        f"concurrency = {concurrency}",
        "retry_base = 0.2",
        "retry_max = 1.0",
        "timeout = 10",
        "[[sources]]",
        'name = "aiu"',
        'type = "alerts_in_ua"',
        f'url = "{upstream.alerts_in_ua_url}"',
        f'token = "{AIU_TOKEN}"',
        "interval = 1",
        "timeout = 2",
        "jitter = 0",
        "[[topics]]",
        'name = "places"',
        f'url = "{topics.url("/t/")}{{code}}"',
        'levels = ["oblast", "raion", "hromada"]',
    ]
    for i in range(individuals):
        assert people is not None
        lines += [
            "[[subscribers]]",
            f'name = "p{i}"',
            'regions = ["UA-32"]',
            f'urls = ["{people.url(f"/p{i}")}"]',
        ]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _query(db_path: Path, sql: str) -> list[tuple]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _baselined(db_path: Path) -> bool:
    rows = _query(db_path, "SELECT COUNT(*) FROM sources WHERE baseline_done = 1")
    return bool(rows) and rows[0][0] == 1


def _idle(db_path: Path) -> bool:
    return not _query(db_path, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending')")


def _topics_recorded(db_path: Path) -> int:
    """Topic posts whose delivery the outbox has recorded (a restart never sends those again)."""
    rows = _query(
        db_path, "SELECT COUNT(*) FROM outbox WHERE subscriber LIKE 'topic:%' AND state = 'delivered'"
    )
    return rows[0][0] if rows else 0


def _delivered(sink: JsonSink, kind: str) -> Counter[str]:
    """How many times each path got a message of Apprise type ``kind`` (answered 2xx)."""
    return Counter(r.path for r in sink.received(delivered=True) if r.type == kind)


def topic_path(code: str) -> str:
    return f"/t/{url_code(code)}"


def inside(registry: RegionRegistry, code: str) -> set[str]:
    """The topic paths of every place (oblast, raion, hromada) inside ``code``, itself included."""
    levels = {"oblast", "raion", "hromada"}
    return {topic_path(r.code) for r in registry if r.level in levels and registry.contains(code, r.code)}


def test_resident_on_a_hromada_topic_hears_hromada_raion_and_oblast_once_each(
    tmp_path: Path, upstream: Upstream, registry: RegionRegistry
) -> None:
    with JsonSink() as sink:
        config = write_config(tmp_path, upstream, sink)
        db = tmp_path / "state" / "alertd.sqlite3"
        proc = AlertdProcess(config, tmp_path / "alertd.log")
        try:
            wait_for(lambda: _baselined(db), timeout=30)
            mine = topic_path("ua:706")
            names = {
                uid: registry.by_source_id("alerts_in_ua", uid).name("uk")  # type: ignore[union-attr]
                for uid in (IRPIN, BUCHA_RAION, KYIV_OBLAST, KYIV_CITY)
            }
            # one at a time, so each start is its own poll and its own notice
            for n, uid in enumerate((IRPIN, BUCHA_RAION, KYIV_OBLAST, KYIV_CITY), start=1):
                upstream.add_alert(uid, started_at=T0)
                wait_for(lambda n=n: len(_query(db, "SELECT 1 FROM events WHERE status = 'started'")) == n)
            wait_for(lambda: _idle(db), timeout=60)
            upstream.clear_alerts()
            wait_for(lambda: len(_query(db, "SELECT 1 FROM events WHERE status = 'ended'")) == 4, timeout=30)
            wait_for(lambda: _idle(db), timeout=60)
            code = proc.signal(signal.SIGTERM)
        finally:
            proc.stop()
        assert code == 0

        heard = [r for r in sink.received(path=mine) if r.ok]
        starts = [r for r in heard if r.type == "failure"]
        ends = [r for r in heard if r.type == "success"]
        assert len(starts) == 3 and len(ends) == 3, [(r.type, r.title) for r in heard]
        for uid in (IRPIN, BUCHA_RAION, KYIV_OBLAST):  # each place's start and end exactly once
            for group in (starts, ends):
                hits = [r for r in group if names[uid] in r.title + r.message]
                assert len(hits) == 1, (names[uid], [r.title for r in group])
        assert not any(names[KYIV_CITY] in r.title + r.message for r in heard)  # Kyiv city is not on the line
        # one post per place affected: Kyiv oblast's start reached each of its 77 topics once, nothing else
        oblast_start = Counter(
            r.path
            for r in sink.received(delivered=True)
            if r.type == "failure" and names[KYIV_OBLAST] in r.title + r.message
        )
        assert oblast_start == Counter(inside(registry, "UA-32"))
        assert all("http" not in r.message for r in heard)  # no personal management link on a topic


def test_sigkill_mid_topic_fanout_repeats_only_posts_in_flight(
    tmp_path: Path, upstream: Upstream, registry: RegionRegistry
) -> None:
    expected = inside(registry, "UA-32")
    with JsonSink() as sink:
        for path in expected:
            sink.configure(path, delay=0.1)
        config = write_config(tmp_path, upstream, sink, concurrency=4)
        db = tmp_path / "state" / "alertd.sqlite3"
        log = tmp_path / "alertd.log"
        first = AlertdProcess(config, log)
        try:
            wait_for(lambda: _baselined(db), timeout=30)
            upstream.add_alert(KYIV_OBLAST, started_at=T0)
            wait_for(lambda: len(_delivered(sink, "failure")) >= 10, timeout=30, step=0.02)
            assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        finally:
            first.stop()
        wait_for(lambda: sink.unanswered() == 0)
        at_kill = _delivered(sink, "failure")
        assert len(at_kill) < len(expected), "the kill did not land mid fan-out"
        inflight = {
            urlsplit(c).path for (c,) in _query(db, "SELECT channel FROM outbox WHERE state = 'sending'")
        }

        second = AlertdProcess(config, log)
        try:
            wait_for(lambda: set(_delivered(sink, "failure")) == expected, timeout=60, step=0.05)
            wait_for(lambda: _idle(db), timeout=60)
            starts = _delivered(sink, "failure")
            twice = {p for p, n in starts.items() if n > 1}
            assert twice <= inflight, sorted(twice - inflight)
            assert max(starts.values()) <= 2
            upstream.clear_alert(KYIV_OBLAST)
            wait_for(lambda: set(_delivered(sink, "success")) == expected, timeout=60, step=0.05)
            wait_for(lambda: _idle(db), timeout=60)
            assert set(_delivered(sink, "success").values()) == {1}  # every topic: the end exactly once
            assert _delivered(sink, "failure") == starts  # and no start again
            assert second.signal(signal.SIGTERM) == 0
        finally:
            second.stop()
    print(
        f"topics {len(expected)}, delivered at kill {len(at_kill)}, in flight {len(inflight)}, twice {len(twice)}"
    )


def test_topics_go_first_and_a_kill_mid_individual_fanout_repeats_no_topic(
    tmp_path: Path, upstream: Upstream, registry: RegionRegistry
) -> None:
    expected = inside(registry, "UA-32")
    people = 300
    with JsonSink() as topics, JsonSink() as persons:
        for i in range(people):
            persons.configure(f"/p{i}", delay=0.05)
        config = write_config(tmp_path, upstream, topics, persons, individuals=people, concurrency=8)
        db = tmp_path / "state" / "alertd.sqlite3"
        log = tmp_path / "alertd.log"
        first = AlertdProcess(config, log)
        try:
            wait_for(lambda: _baselined(db), timeout=30)
            upstream.add_alert(KYIV_OBLAST, started_at=T0)
            # every topic post is delivered and recorded while the people are still being served: kill now
            wait_for(
                lambda: (
                    _topics_recorded(db) == len(expected) and len(_delivered(persons, "failure")) < people
                ),
                timeout=30,
                step=0.01,
            )
            assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        finally:
            first.stop()
        wait_for(lambda: topics.unanswered() == 0 and persons.unanswered() == 0)
        assert _delivered(topics, "failure") == Counter(expected)
        # topics went first: when the last topic post arrived, few people had been served yet
        last_topic = max(r.at for r in topics.received())
        served_before = sum(1 for r in persons.received(delivered=True) if r.at < last_topic)
        assert served_before < people // 4, served_before
        assert len(_delivered(persons, "failure")) < people, "the kill did not land mid fan-out"

        second = AlertdProcess(config, log)
        try:
            wait_for(lambda: len(_delivered(persons, "failure")) == people, timeout=60, step=0.05)
            wait_for(lambda: _idle(db), timeout=60)
            upstream.clear_alert(KYIV_OBLAST)
            wait_for(lambda: set(_delivered(topics, "success")) == expected, timeout=60, step=0.05)
            wait_for(lambda: len(_delivered(persons, "success")) == people, timeout=60, step=0.05)
            wait_for(lambda: _idle(db), timeout=60)
            assert second.signal(signal.SIGTERM) == 0
        finally:
            second.stop()
        assert _delivered(topics, "failure") == Counter(expected)  # no topic heard the start twice
        assert _delivered(topics, "success") == Counter(expected)  # and each the end once
