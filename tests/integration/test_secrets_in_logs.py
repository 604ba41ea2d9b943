"""No token, password, Apprise URL credential or full phone number ever reaches a log line.

``alertd run`` runs as a real process (so the real logging set-up is what is
tested), once with text and once with JSON log lines, at DEBUG level, on a
configuration full of secrets: both sources' API tokens, a ``json://`` channel
with a password and a phone number in its path, a ``mailto://`` channel with a
password, and an operator channel with a password. A whole timeline goes by:
an alert starts, the channel with the phone number fails until its start is
dead-lettered, the upstreams fail (HTTP 500, garbage, timeout) long enough for
operators to hear the source is down, they recover, the alert ends. Then every
line of stderr is searched for each secret in the encodings it could leak in.
``alertd status`` and ``alertd subscribers list/show`` are searched as well.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from support.sinks import JsonSink, SmtpSink
from support.upstream_helpers import wait_for

from alertd.devtools.simulate import Upstream

AIU_TOKEN = "tok-AIU-s3cr3t-123"
UA_TOKEN = "tok-UA-s3cr3t-456"
USER, PASSWORD = "user", "pa55w0rd-XYZ"
PHONE = "+380501234567"
MAIL_USER, MAIL_PASSWORD = "alertd", "m4il-s3cr3t"
OPS_USER, OPS_PASSWORD = "ops", "0p5-s3cr3t-789"
MAIL_TO = "someone@example.org"
KYIV_OBLAST = 14


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forbidden() -> dict[str, str]:
    """Every secret, and the encodings in which it could slip into a line."""
    plain = {
        "alerts.in.ua token": AIU_TOKEN,
        "ukrainealarm token": UA_TOKEN,
        "channel password": PASSWORD,
        "mail password": MAIL_PASSWORD,
        "operator password": OPS_PASSWORD,
        "phone number": PHONE,
        "phone digits": PHONE[1:],
        "url-encoded phone": quote(PHONE, safe=""),
    }
    encoded = {
        "basic auth of the channel": _b64(f"{USER}:{PASSWORD}"),
        "basic auth of the operator channel": _b64(f"{OPS_USER}:{OPS_PASSWORD}"),
        "SMTP AUTH PLAIN": _b64(f"\0{MAIL_USER}\0{MAIL_PASSWORD}"),
        "SMTP AUTH LOGIN password": _b64(MAIL_PASSWORD),
        "base64 alerts.in.ua token": _b64(AIU_TOKEN),
        "base64 ukrainealarm token": _b64(UA_TOKEN),
        "bearer header": f"Bearer {AIU_TOKEN}",
    }
    for name, value in list(plain.items()):
        encoded[f"url-quoted {name}"] = quote(value, safe="")
        encoded[f"json-escaped {name}"] = json.dumps(value, ensure_ascii=True)[1:-1]
    return {**plain, **encoded}


def leaks(text: str) -> list[str]:
    """``name: line`` for each line of ``text`` holding a forbidden string."""
    found = []
    for line in text.splitlines():
        for name, secret in forbidden().items():
            if secret and secret in line:
                found.append(f"{name}: {line}")
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def alertd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertd", *args], env=_env(), capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN, timeout_delay=2.0) as up:
        yield up


def write_config(tmp_path: Path, upstream: Upstream, sink: JsonSink, smtp: SmtpSink) -> Path:
    phone_url = f"json://{USER}:{PASSWORD}@127.0.0.1:{sink.port}/{PHONE}"
    ops_url = f"json://{OPS_USER}:{OPS_PASSWORD}@127.0.0.1:{sink.port}/ops"
    mail_url = smtp.url(MAIL_TO, user=MAIL_USER, password=MAIL_PASSWORD)
    path = tmp_path / "alertd.toml"
    path.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
[http]
enabled = false
[delivery]
max_attempts = 2
retry_base = 0.1
retry_max = 0.3
start_max_age = 5
timeout = 5
[[sources]]
name = "aiu"
type = "alerts_in_ua"
url = "{upstream.alerts_in_ua_url}"
token = "{AIU_TOKEN}"
interval = 1
timeout = 1
jitter = 0
allowance = 1
[[sources]]
name = "ualarm"
type = "ukrainealarm"
url = "{upstream.ukrainealarm_url}"
token = "{UA_TOKEN}"
interval = 1
timeout = 1
jitter = 0
allowance = 1
[[subscribers]]
name = "phone"
regions = ["UA-32"]
urls = ["{phone_url}"]
[[subscribers]]
name = "mail"
regions = ["ua:706"]
language = "en"
urls = ["{mail_url}"]
[operators]
urls = ["{ops_url}"]
""",
        encoding="utf-8",
    )
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


def ops_titles(sink: JsonSink, needle: str) -> list[str]:
    """Titles of the operator notices delivered so far that contain ``needle``."""
    return [r.title for r in sink.received("/ops", delivered=True) if needle in r.title]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_in_any_log_line(
    log_format: str, tmp_path: Path, upstream: Upstream, json_sink: JsonSink, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, upstream, json_sink, smtp_sink)
    db = tmp_path / "state" / "alertd.sqlite3"
    log = tmp_path / "alertd.log"
    phone_path = f"/{PHONE}"
    json_sink.configure(phone_path, status=500)

    with log.open("wb") as stderr:
        command = [sys.executable, "-m", "alertd", "run", "--config", str(config)]
        proc = subprocess.Popen(
            [*command, "--log-format", log_format, "--log-level", "DEBUG"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_for(lambda: _query(db, "SELECT COUNT(*) FROM sources WHERE baseline_done = 1") == [(2,)])

            # an alert starts: mail gets it, the phone channel fails until the start is dead-lettered
            upstream.add_alert(KYIV_OBLAST)
            smtp_sink.wait_for(1, timeout=20, to=MAIL_TO)
            wait_for(lambda: _query(db, "SELECT COUNT(*) FROM outbox WHERE state = 'dead'") == [(1,)])
            wait_for(lambda: ops_titles(json_sink, "deliveries failed"))  # operators hear of it

            # the upstreams fail long enough to count as down, then recover
            # (three failures each: a failing source is retried at its next tick, so two may span
            # less than the 1 s allowance)
            upstream.set_fault("http500", "alerts_in_ua", count=2)
            upstream.set_fault("timeout", "alerts_in_ua", count=1)
            # (a bad status index alone is not a failure: the full list is fetched instead; the index
            # stays bad as long as the list does, else an unchanged index would end the outage early)
            upstream.set_fault("garbage", "ukrainealarm_status", count=2)
            upstream.set_fault("truncated", "ukrainealarm_status", count=1)
            upstream.set_fault("garbage", "ukrainealarm", count=2)
            upstream.set_fault("truncated", "ukrainealarm", count=1)
            wait_for(lambda: len(ops_titles(json_sink, "is down")) == 2, timeout=30)
            wait_for(lambda: len(ops_titles(json_sink, "recovered")) == 2, timeout=30)

            # the phone channel is back; the alert ends: both channels hear the end
            json_sink.configure(phone_path, status=200)
            upstream.clear_alerts()
            json_sink.wait_for(1, timeout=30, path=phone_path, delivered=True)
            smtp_sink.wait_for(2, timeout=30, to=MAIL_TO)
            wait_for(
                lambda: (
                    _query(db, "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')") == [(0,)]
                )
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    text = log.read_text(encoding="utf-8")
    lines = text.splitlines()
    # the timeline really happened, and was logged
    for needle in (
        "alert started",
        "delivery failed",
        "delivery dead-lettered",
        "poll failed",
        "source recovered",
        "operator notice sent",
        "alert ended",
        "delivery ok",
        "alertd stopped",
    ):
        assert any(needle in line for line in lines), f"no {needle!r} line in:\n{text}"
    assert any("+38050…67" in line for line in lines), "the phone channel is logged, masked"
    # masking phone numbers leaves dates alone ("down_since=2026-1…25T…" was a bug)
    since = re.findall(r'down_since(?:=|": ")(\S+?)Z', text)  # text, or a JSON key
    assert since and all(datetime.fromisoformat(s) for s in since), since
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        # the facts are keys of their own: a jq/Loki filter on source or status finds the lines
        failed = [r for r in records if r["message"].startswith("poll failed")]
        assert failed and all(r["source"] in ("aiu", "ualarm") and r["failures"] >= 1 for r in failed)
        started = [r for r in records if r["message"] == "alert started"]
        assert started and all(r["status"] == "started" and r["event"] for r in started)
    assert leaks(text) == []
    # what the sinks got is not a log line, but the secrets did travel there (the test is live)
    assert json_sink.received("/ops")[0].headers.get("Authorization") == "Basic " + _b64(
        f"{OPS_USER}:{OPS_PASSWORD}"
    )

    # the operator tools print source errors and channels: masked as well
    upstream.set_fault("http500", "alerts_in_ua", count=1)
    upstream.set_fault("timeout", "ukrainealarm_status", count=1)
    upstream.set_fault("timeout", "ukrainealarm", count=1)
    once = alertd("run", "--once", "--config", str(config), "--log-format", log_format)
    assert once.returncode == 0, once.stderr
    assert leaks(once.stdout + once.stderr) == []
    outputs = [
        alertd("status", "--config", str(config)),
        alertd("status", "--json", "--config", str(config)),
        alertd("subscribers", "--config", str(config), "list"),
        alertd("subscribers", "--config", str(config), "list", "--json"),
        alertd("subscribers", "--config", str(config), "show", "phone"),
        alertd("subscribers", "--config", str(config), "show", "mail"),
    ]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        assert leaks(result.stdout + result.stderr) == [], result.args
    assert "FAILING" in outputs[0].stdout  # the errors were there to be printed
    assert "json://user:****@127.0.0.1" in outputs[4].stdout
