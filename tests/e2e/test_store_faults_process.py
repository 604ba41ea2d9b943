"""``alertd run`` as a process against the faults a small server's store really has.

* a full disk (the child's RLIMIT_FSIZE lowered from outside with ``prlimit``, SIGXFSZ
  ignored, so every write fails as on a full disk): nothing is recorded, ``/healthz``
  says why, and once space returns the alert is recorded and every resident hears it
  exactly once — without a restart; also when the disk fills in the middle of a fan-out
  and the alert ends meanwhile;
* an external write lock (another process holding ``BEGIN EXCLUSIVE``): the same;
* a second daemon on the same state file: refused, naming the first one's PID;
* retention: old delivered rows and ended alerts' events leave the state file while
  residents keep hearing each start and end exactly once;
* an empty state file where one existed: refused unless ``alertd run --init``.

Assertions are on what residents receive (counts per channel) and what operators see
(``/healthz``, log lines); waits are bounded, nothing asserts on timing.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.process import alertd_env
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, wait_for

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

CHANNELS = 10
KYIV_OBLAST = 14  # alerts.in.ua uid of UA-32
UNLIMITED = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ignore_sigxfsz() -> None:
    """In the child before exec: a write past RLIMIT_FSIZE fails with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, UNLIMITED)


class Daemon:
    """``alertd run`` with stderr on a pipe (drained by a thread): a file-size limit on the child
    must not stop it from logging what went wrong."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertd", "run", "--config", str(config)],
            env=alertd_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_ignore_sigxfsz,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def limit_file_size(self, limits: tuple[int, int]) -> None:
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, limits)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.proc.returncode


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


def write_config(
    directory: Path, upstream: Upstream, sink: JsonSink, port: int, extra: str = "", concurrency: int = 64
) -> Path:
    lines = [
        f'state_dir = "{directory / "state"}"',
        "[http]",
        f'listen = "127.0.0.1:{port}"',
        "[tracker]",
        "end_confirmations = 1",
        "[delivery]",
        f"concurrency = {concurrency}",
        "retry_base = 0.2",
        "retry_max = 1.0",
        "timeout = 5",
        "[[sources]]",
        'name = "aiu"',
        'type = "alerts_in_ua"',
        f'url = "{upstream.alerts_in_ua_url}"',
        f'token = "{AIU_TOKEN}"',
        "interval = 1",
        "timeout = 2",
        "jitter = 0",
    ]
    for i in range(CHANNELS):
        lines += [
            "[[subscribers]]",
            f'name = "s{i}"',
            'regions = ["UA-32"]',
            f'urls = ["{sink.url(f"/c{i}")}"]',
        ]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def baselined(db: Path) -> bool:
    return query(db, "SELECT baseline_done FROM sources WHERE name = 'aiu'") == [(1,)]


def received(sink: JsonSink, kind: str) -> Counter[str]:
    """How many times each channel got a message of Apprise type ``kind`` (failure = start, success = end)."""
    return Counter(r.path for r in sink.received(delivered=True) if r.type == kind)


def every_channel(n: int) -> Counter[str]:
    return Counter({f"/c{i}": n for i in range(CHANNELS)})


def store_failing(port: int, word: str) -> dict[str, Any] | None:
    """The /healthz body when it is 503 for a store reason containing ``word``."""
    status, body = healthz(port)
    store = body.get("store") or {}
    if status == 503 and not store.get("ok", True) and word in str(store.get("reason", "")).lower():
        return body
    return None


def test_a_full_disk_is_reported_and_recovered_without_restart(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    port = _free_port()
    config = write_config(tmp_path, upstream, json_sink, port)
    db = tmp_path / "state" / "alertd.sqlite3"
    daemon = Daemon(config)
    try:
        wait_for(lambda: baselined(db) and healthz(port)[0] == 200, timeout=30)
        daemon.limit_file_size((1, resource.RLIM_INFINITY))  # the disk is full from now on
        upstream.add_alert(KYIV_OBLAST)
        body = wait_for(lambda: store_failing(port, "cannot be written"), timeout=30)
        assert body["status"] == "failing" and "poll" in body["store"]["writers"]
        assert received(json_sink, "failure") == Counter()  # nothing recorded, so nothing sent yet
        # it stays down for several polls: reported once, not once per poll
        wait_for(lambda: len(upstream.requests("alerts_in_ua")) >= 8, timeout=30)
        assert daemon.count("state store cannot be written") == 1, daemon.log()
        assert daemon.count("Traceback") == 0, daemon.log()

        daemon.limit_file_size(UNLIMITED)  # space is back
        wait_for(lambda: received(json_sink, "failure") == every_channel(1), timeout=60)
        wait_for(lambda: healthz(port)[0] == 200, timeout=30)
        assert daemon.count("state store writable again") == 1, daemon.log()

        upstream.clear_alert(KYIV_OBLAST)
        wait_for(lambda: received(json_sink, "success") == every_channel(1), timeout=60)
        wait_for(lambda: not query(db, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending')"))
        assert received(json_sink, "failure") == every_channel(1)  # and no start twice
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


def test_an_external_write_lock_is_reported_and_recovered_without_restart(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    port = _free_port()
    config = write_config(tmp_path, upstream, json_sink, port)
    db = tmp_path / "state" / "alertd.sqlite3"
    daemon = Daemon(config)
    try:
        wait_for(lambda: baselined(db) and healthz(port)[0] == 200, timeout=30)
        # another process (a backup tool, an admin's sqlite3 shell) takes the write lock and keeps it
        locker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30); "
                "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.readline(); "
                "c.execute('ROLLBACK')",
                str(db),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            upstream.add_alert(KYIV_OBLAST)
            # /healthz keeps answering (the loop is not stuck on the lock) and says why it is red
            body = wait_for(lambda: store_failing(port, "locked"), timeout=30)
            assert "poll" in body["store"]["writers"]
            wait_for(lambda: len(upstream.requests("alerts_in_ua")) >= 6, timeout=60)
            assert received(json_sink, "failure") == Counter()
            assert daemon.count("state store cannot be written") == 1, daemon.log()
        finally:
            assert locker.stdin is not None
            locker.stdin.write("\n")
            locker.stdin.flush()
            locker.wait(timeout=30)
        wait_for(lambda: received(json_sink, "failure") == every_channel(1), timeout=60)
        wait_for(lambda: healthz(port)[0] == 200, timeout=30)
        assert daemon.count("state store writable again") == 1, daemon.log()
        upstream.clear_alert(KYIV_OBLAST)
        wait_for(lambda: received(json_sink, "success") == every_channel(1), timeout=60)
        assert received(json_sink, "failure") == every_channel(1)
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


def test_a_disk_filling_during_a_fan_out_loses_nothing_and_repeats_nothing(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    port = _free_port()
    for i in range(CHANNELS):
        json_sink.configure(f"/c{i}", delay=0.3)  # the fan-out takes a while: the disk fills inside it
    config = write_config(tmp_path, upstream, json_sink, port, concurrency=2)
    db = tmp_path / "state" / "alertd.sqlite3"
    daemon = Daemon(config)
    try:
        wait_for(lambda: baselined(db) and healthz(port)[0] == 200, timeout=30)
        upstream.add_alert(KYIV_OBLAST)
        wait_for(lambda: sum(received(json_sink, "failure").values()) >= 2, timeout=30, step=0.02)
        daemon.limit_file_size((1, resource.RLIM_INFINITY))  # the disk is full from now on
        upstream.clear_alert(KYIV_OBLAST)  # and the alert ends meanwhile
        wait_for(lambda: store_failing(port, "cannot be written"), timeout=60)
        wait_for(lambda: json_sink.unanswered() == 0, timeout=30)
        assert received(json_sink, "success") == Counter()  # the end could not be recorded yet
        daemon.limit_file_size(UNLIMITED)  # space is back: no restart
        # every resident hears that it is over exactly once (an end, or the start and end in one
        # message for those whose start had not gone out), and no start twice
        wait_for(lambda: received(json_sink, "success") == every_channel(1), timeout=90)
        wait_for(
            lambda: not query(db, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending')"), timeout=60
        )
        wait_for(lambda: healthz(port)[0] == 200, timeout=30)
        assert received(json_sink, "success") == every_channel(1)
        assert max(received(json_sink, "failure").values()) == 1
        assert daemon.count("state store writable again") >= 1, daemon.log()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


def test_a_second_daemon_on_the_same_state_is_refused_naming_the_first(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    port = _free_port()
    config = write_config(tmp_path, upstream, json_sink, port)
    db = tmp_path / "state" / "alertd.sqlite3"
    first = Daemon(config)
    try:
        wait_for(lambda: baselined(db), timeout=30)
        second = subprocess.run(
            [sys.executable, "-m", "alertd", "run", "--config", str(config)],
            env=alertd_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"another alertd (pid {first.proc.pid}) is already running" in second.stderr, second.stderr
        # the first one carries on alone: each resident hears the alert once
        upstream.add_alert(KYIV_OBLAST)
        wait_for(lambda: received(json_sink, "failure") == every_channel(1), timeout=60)
        wait_for(lambda: not query(db, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending')"))
        assert received(json_sink, "failure") == every_channel(1)
    finally:
        code = first.stop()
    assert code == 0, first.log()


def test_retention_prunes_old_history_and_residents_still_hear_each_notice_once(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    port = _free_port()
    config = write_config(
        tmp_path, upstream, json_sink, port, extra='[store]\nretention = "1s"\nprune_interval = 0.5\n'
    )
    db = tmp_path / "state" / "alertd.sqlite3"
    daemon = Daemon(config)
    cycles = 3
    try:
        wait_for(lambda: baselined(db), timeout=30)
        for n in range(1, cycles + 1):
            upstream.add_alert(KYIV_OBLAST)
            wait_for(lambda n=n: received(json_sink, "failure") == every_channel(n), timeout=60)
            upstream.clear_alert(KYIV_OBLAST)
            wait_for(lambda n=n: received(json_sink, "success") == every_channel(n), timeout=60)
        # every delivered row and every event but the last end (kept for duplicate detection) goes
        wait_for(lambda: query(db, "SELECT COUNT(*) FROM outbox") == [(0,)], timeout=60)
        wait_for(lambda: query(db, "SELECT COUNT(*) FROM attempts") == [(0,)], timeout=30)
        wait_for(lambda: query(db, "SELECT status FROM events") == [("ended",)], timeout=30)
        assert daemon.count("history pruned") >= 1, daemon.log()
        status = subprocess.run(
            [sys.executable, "-m", "alertd", "status", "--config", str(config)],
            env=alertd_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        # the size in whatever unit fits (the WAL alone can pass a MiB under a loaded machine)
        assert re.search(rf"state: {re.escape(str(db))} \(\d+(\.\d+)? (B|KiB|MiB)\)", status.stdout), (
            status.stdout
        )
        # after pruning, a new alert is still heard exactly once
        upstream.add_alert(KYIV_OBLAST)
        wait_for(lambda: received(json_sink, "failure") == every_channel(cycles + 1), timeout=60)
        assert received(json_sink, "success") == every_channel(cycles)
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


def test_an_empty_state_file_is_refused_unless_run_init(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    config = write_config(tmp_path, upstream, json_sink, _free_port())
    db = tmp_path / "state" / "alertd.sqlite3"
    db.parent.mkdir()
    db.write_bytes(b"")  # a state file that existed and lost its contents (a botched restore, a full disk)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alertd", "run", "--once", "--config", str(config), *extra],
            env=alertd_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = run()
    assert refused.returncode == 1
    assert "is empty (0 bytes)" in refused.stderr and "alertd run --init" in refused.stderr, refused.stderr
    assert db.read_bytes() == b""  # left as it was for the operator to look at
    started = run("--init")
    assert started.returncode == 0, started.stderr
    assert baselined(db)  # a fresh state, polled once
    assert [p.stat().st_size for p in db.parent.glob("alertd.sqlite3.refused-*")] == [0]
    assert run().returncode == 0  # from now on an ordinary state file
    help_text = subprocess.run(
        [sys.executable, "-m", "alertd", "run", "--help"], env=alertd_env(), capture_output=True, text=True
    ).stdout
    assert "--init" in help_text
