"""The ``alertd`` command line as people use it: real processes, local sinks, the simulated upstreams.

Every command runs as ``python -m alertd …`` with a clean environment (no
``ALERTD_*`` from the test process). Nothing here talks to the internet: channels
are ``json://127.0.0.1`` sinks, and ``alertd check`` only loads the example files'
Apprise URLs (loading does not send).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, read_events

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14
PASSWORD = "pa55w0rd-CLI"
PHONE = "+380501234567"


def alertd(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
    base.pop("CREDENTIALS_DIRECTORY", None)
    base["PYTHONUNBUFFERED"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "alertd", *args],
        env={**base, **(env or {})},
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result


def subscribers(config: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``alertd subscribers --config X ACTION …`` (``--config`` belongs to ``subscribers``, see the note)."""
    return alertd("subscribers", "--config", config, *args)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


def write_config(tmp_path: Path, upstream: Upstream, sink: JsonSink) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
[http]
enabled = false
[[sources]]
name = "aiu"
type = "alerts_in_ua"
url = "{upstream.alerts_in_ua_url}"
token = "{AIU_TOKEN}"
interval = 1
timeout = 2
[[subscribers]]
name = "from-config"
regions = ["UA-30"]
language = "en"
urls = ["{sink.url("/from-config")}"]
[[subscribers]]
name = "other"
regions = ["UA-46"]
urls = ["{sink.url("/other")}"]
""",
        encoding="utf-8",
    )
    return path


# -- subscribers ------------------------------------------------------------------------------------


def test_subscribers_add_list_show_remove(tmp_path: Path, upstream: Upstream, json_sink: JsonSink) -> None:
    config = str(write_config(tmp_path, upstream, json_sink))
    secret_url = f"json://user:{PASSWORD}@127.0.0.1:{json_sink.port}/{PHONE}"

    by_code = subscribers(config, "add", "kyiv", "--region", "UA-30", "--url", secret_url)
    assert by_code.returncode == 0, by_code.stderr
    assert "added kyiv" in by_code.stdout and "UA-30" in by_code.stdout

    by_name = subscribers(
        config,
        "add", "irpin", "--region", "Ірпінь", "--language", "en", "--kind", "air_raid",
        "--url", json_sink.url("/irpin"),
    )  # fmt: skip
    assert by_name.returncode == 0, by_name.stderr
    assert "ua:706" in by_name.stdout

    # an ambiguous name: refused, naming it and the places it could be
    ambiguous = subscribers(
        config,
        "add", "x", "--region", "Краснопільська територіальна громада",
        "--url", json_sink.url("/x"),
    )  # fmt: skip
    assert ambiguous.returncode != 0
    assert "Краснопільська територіальна громада" in ambiguous.stderr
    assert "ua:189" in ambiguous.stderr and "ua:427" in ambiguous.stderr, ambiguous.stderr
    # an unknown one: refused, with suggestions
    unknown = subscribers(config, "add", "x", "--region", "Ірпін", "--url", json_sink.url("/x"))
    assert unknown.returncode != 0
    assert "unknown region 'Ірпін'" in unknown.stderr and "ua:706" in unknown.stderr, unknown.stderr
    # a URL Apprise cannot load: refused, shown masked, its secret never printed
    token = "AAH-s3cr3t-bot-token-987"
    bad = subscribers(config, "add", "x", "--region", "UA-30", "--url", f"tgram://{token}/")
    assert bad.returncode != 0
    assert "--url[0]" in bad.stderr and "Apprise cannot load 'tgram://" in bad.stderr, bad.stderr
    assert token not in bad.stderr + bad.stdout
    # a short password right after the scheme is not shown either (the mask stops at "u:")
    bad_mail = subscribers(config, "add", "x", "--region", "UA-30", "--url", "mailto://u:Zq9@/")
    assert bad_mail.returncode != 0 and "Apprise cannot load 'mailto://****'" in bad_mail.stderr
    assert "Zq9" not in bad_mail.stderr + bad_mail.stdout, bad_mail.stderr
    # nothing was added by the refused commands
    listed = subscribers(config, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [(r["name"], r["origin"]) for r in records] == [
        ("from-config", "config"),
        ("other", "config"),
        ("irpin", "cli"),
        ("kyiv", "cli"),
    ]
    assert next(r for r in records if r["name"] == "irpin")["regions"][0].startswith("ua:706")

    # list and show print masked URLs only: no password, no full phone number
    for result in (
        subscribers(config, "list"),
        listed,
        subscribers(config, "show", "kyiv"),
    ):
        assert result.returncode == 0, result.stderr
        out = result.stdout + result.stderr
        assert PASSWORD not in out and PHONE not in out and PHONE[1:] not in out, out
    shown = subscribers(config, "show", "kyiv").stdout
    assert "kyiv  [cli]" in shown and "channel:    json://user:****@127.0.0.1" in shown, shown
    assert "UA-30" in shown

    # remove: a stored one goes; a config-file one cannot be removed here
    removed = subscribers(config, "remove", "kyiv")
    assert removed.returncode == 0 and "removed kyiv" in removed.stdout
    again = subscribers(config, "remove", "kyiv")
    assert again.returncode != 0 and "no subscriber named 'kyiv'" in again.stderr
    in_file = subscribers(config, "remove", "from-config")
    assert in_file.returncode != 0 and "configuration file" in in_file.stderr, in_file.stderr
    missing = subscribers(config, "show", "kyiv")
    assert missing.returncode != 0
    names = [r["name"] for r in json.loads(subscribers(config, "list", "--json").stdout)]
    assert names == ["from-config", "other", "irpin"]


def test_subscriber_added_offline_hears_the_next_run_once(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    config = str(write_config(tmp_path, upstream, json_sink))
    first = alertd("run", "--once", "--config", config)  # fresh install: the baseline
    assert first.returncode == 0, first.stderr

    added = subscribers(
        config,
        "add", "irpin", "--region", "Ірпінь", "--language", "en",
        "--url", json_sink.url("/irpin"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    upstream.add_alert(KYIV_OBLAST, started_at=T0)
    run = alertd("run", "--once", "--config", config)
    assert run.returncode == 0, run.stderr
    assert [e[1:3] for e in read_events(tmp_path / "state" / "alertd.sqlite3")] == [("started", "UA-32")]
    (message,) = json_sink.received("/irpin", delivered=True)
    assert message.type == "failure" and "Kyiv Oblast" in message.message, message.payload
    assert json_sink.received("/from-config") == [] and json_sink.received("/other") == []


# -- test-notify ------------------------------------------------------------------------------------


def test_test_notify_by_url(json_sink: JsonSink) -> None:
    ok = alertd("test-notify", "--url", json_sink.url("/ok"), "--language", "en")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[0].startswith("ok") and "1 ok, 0 failed" in ok.stdout
    (message,) = json_sink.received("/ok")
    assert "test" in message.title.lower() and "not an alert" in message.message, message.payload
    assert message.type == "info"

    json_sink.configure("/missing", status=404)
    failed = alertd("test-notify", "--url", json_sink.url("/missing"))
    assert failed.returncode != 0
    assert failed.stdout.startswith("FAIL") and "0 ok, 1 failed" in failed.stdout, failed.stdout
    assert len(json_sink.received("/missing")) == 1


def test_test_notify_one_subscriber(tmp_path: Path, upstream: Upstream, json_sink: JsonSink) -> None:
    config = str(write_config(tmp_path, upstream, json_sink))
    result = alertd("test-notify", "--subscriber", "from-config", "--config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 ok, 0 failed" in result.stdout
    (message,) = json_sink.received("/from-config")
    assert message.title == "alertd test message"  # the subscriber's language (en)
    assert json_sink.received("/other") == []
    unknown = alertd("test-notify", "--subscriber", "nobody", "--config", config)
    assert unknown.returncode != 0 and "nobody" in unknown.stderr


# -- parse ------------------------------------------------------------------------------------------


def test_parse_fixture_and_failures(tmp_path: Path) -> None:
    good = alertd(
        "parse",
        "--source",
        "alerts_in_ua",
        str(FIXTURES / "alerts_in_ua" / "active_two_alerts_ralertsinua_test.json"),
    )
    assert good.returncode == 0, good.stderr
    records = [json.loads(line) for line in good.stdout.splitlines()]
    assert [(r["kind"], r["region"]["code"]) for r in records] == [
        ("air_raid", "UA-09"),
        ("artillery", "ua:351"),
    ]

    error_payload = FIXTURES / "alerts_in_ua" / "error_response_docs.json"
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(300) + b"\x00not json")
    for args in (
        ("--source", "alerts_in_ua", str(error_payload)),
        ("--source", "ukrainealarm", str(garbage)),
        ("--source", "cap", str(garbage)),
    ):
        bad = alertd("parse", *args)
        assert bad.returncode != 0, args
        assert bad.stdout == "", args
        lines = bad.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("alertd parse:"), bad.stderr
        assert args[-1] in lines[0] and args[1] in lines[0]

    # a good file and a bad one: nothing on stdout
    mixed = alertd(
        "parse", "--source", "alerts_in_ua",
        str(FIXTURES / "alerts_in_ua" / "active_two_alerts_ralertsinua_test.json"), str(garbage),
    )  # fmt: skip
    assert mixed.returncode != 0 and mixed.stdout == ""
    stdin = alertd("parse", "--source", "alerts_in_ua", "-", stdin=b"{not json")
    assert stdin.returncode != 0 and stdin.stdout == "" and "<stdin>" in stdin.stderr


# -- check --------------------------------------------------------------------------------------------


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """Placeholder secret files, as systemd's LoadCredential= would provide them."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    files = {
        "alerts-in-ua.token": "placeholder-aiu-token\n",
        "ukrainealarm.token": "placeholder-ua-token\n",
        "irpin-volunteers.urls": "tgram://123456789:AAH-placeholder/-1001234567890\n",
        "mykola-sms.urls": f"twilio://AC{'a' * 32}:{'b' * 32}@+15551234567/+380501234567\n",
        "aid-worker.urls": "mailtos://user:pass@smtp.example.org?to=a@example.org\n",
        "operators.urls": "ntfy://ntfy.sh/ops\n",
        "kyiv-telegram.url": "tgram://123456789:AAH-placeholder/@kyiv_alerts\n",
        "kyiv-volunteers.urls": "ntfy://ntfy.sh/kyiv-volunteers\n",
        "store.url": "postgresql://alertd:placeholder-db-password@db.internal:5432/alertd\n",
    }
    for name, text in files.items():
        (creds / name).write_text(text, encoding="utf-8")
    return creds


@pytest.mark.parametrize("example", ["alertd.example.toml", "ngo.example.toml", "ha.example.toml"])
def test_check_example_configs(example: str, credentials: Path) -> None:
    result = alertd(
        "check", "--config", str(REPO / "config" / example), env={"CREDENTIALS_DIRECTORY": str(credentials)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("config OK: "), result.stdout
    out = result.stdout + result.stderr
    assert "AAH-placeholder" not in out and "b" * 32 not in out and "placeholder-db-password" not in out


def test_check_without_secret_files_names_them(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = alertd(
        "check",
        "--config",
        str(REPO / "config" / "ngo.example.toml"),
        env={"CREDENTIALS_DIRECTORY": str(empty)},
    )
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert any("sources[0].token_file" in line for line in lines), result.stdout
    assert any("subscribers[1].urls_file" in line for line in lines), result.stdout


def test_check_broken_config_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(
        """
[[sources]]
name = "aiu"
type = "alerts_in_ua"
token = "tok-not-printed-42"
interval = 0
[[subscribers]]
name = "a"
regions = ["UA-99"]
urls = ["foo://secret-in-url-77@host"]
[delivery]
concurrency = 0
""",
        encoding="utf-8",
    )
    result = alertd("check", "--config", str(path))
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith(f"{path}: ") for line in lines), lines
    keys = [line[len(f"{path}: ") :].split(":", 1)[0] for line in lines]
    # schema errors first, then what the valid rest of the file still shows: every problem in one run
    assert keys == [
        "sources[0].interval",
        "delivery.concurrency",
        "subscribers[0].regions[0]",
        "subscribers[0].urls[0]",
    ], lines
    out = result.stdout + result.stderr
    assert "tok-not-printed-42" not in out and "secret-in-url-77" not in out

    # schema fine, semantics broken: every problem, each naming its key
    path.write_text(
        """
[[sources]]
name = "aiu"
type = "alerts_in_ua"
token = "tok-not-printed-42"
[[subscribers]]
name = "a"
regions = ["UA-99"]
urls = ["foo://secret-in-url-77@host"]
[[subscribers]]
name = "a"
regions = ["UA-30"]
urls = []
""",
        encoding="utf-8",
    )
    result = alertd("check", "--config", str(path))
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    keys = sorted(line[len(f"{path}: ") :].split(":", 1)[0] for line in lines)
    assert keys == [
        "subscribers[0].regions[0]",
        "subscribers[0].urls[0]",
        "subscribers[1].name",
        "subscribers[1].urls",
    ], lines
    assert "secret-in-url-77" not in result.stdout + result.stderr


# -- help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("run",),
        ("check",),
        ("parse",),
        ("status",),
        ("regions",),
        ("subscribers",),
        ("subscribers", "add"),
        ("subscribers", "list"),
        ("subscribers", "show"),
        ("subscribers", "remove"),
        ("test-notify",),
    ],
)
def test_help(args: tuple[str, ...]) -> None:
    result = alertd(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: alertd"), result.stdout


# -- topics -------------------------------------------------------------------------------------------

TOPIC_TOKEN = "AAtopicSECRET42"


@pytest.fixture
def topics_config(tmp_path: Path) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
[[topics]]
name = "places"
url = "ntfys://ntfy.example.org/alerts-{{code}}"
levels = ["oblast", "hromada"]
[[topics]]
name = "kyiv"
url = "tgram://123456789:{TOPIC_TOKEN}/@kyiv_alerts"
places = ["UA-30", "UA-32"]
""",
        encoding="utf-8",
    )
    return path


def test_topics_for_a_place_masked(topics_config: Path) -> None:
    result = alertd("topics", "--config", str(topics_config), "ua:706", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["region"] == "ua:706"
    by_topic = {t["topic"]: t for t in answer["topics"]}
    assert by_topic["places"]["place"] == "ua:706"
    assert by_topic["places"]["follow"] == "https://ntfy.example.org/alerts-ua-706"
    assert by_topic["places"]["url"] == "ntfys://ntfy.example.org/al…"  # one mask rule; follow shows it
    assert by_topic["kyiv"]["place"] == "UA-32"  # Irpin lies in Kyiv oblast: the channel carries its alerts
    assert by_topic["kyiv"]["follow"] == "https://t.me/kyiv_alerts"
    text = alertd("topics", "--config", str(topics_config), "Ірпінь")
    assert text.returncode == 0 and "follow: https://ntfy.example.org/alerts-ua-706" in text.stdout
    overview = alertd("topics", "--config", str(topics_config))
    assert overview.returncode == 0
    assert "places: 1496 topic(s) for 1496 place(s) (oblast, hromada)" in overview.stdout
    assert "kyiv: 1 topic(s) for 2 place(s) (explicit list)" in overview.stdout
    for out in (result, text, overview):
        assert TOPIC_TOKEN not in out.stdout + out.stderr


def test_topics_for_a_place_no_topic_covers(topics_config: Path) -> None:
    text = topics_config.read_text(encoding="utf-8")
    topics_config.write_text(
        text.split('[[topics]]\nname = "kyiv"')[0].replace('"oblast", "hromada"', '"hromada"')
    )
    result = alertd("topics", "--config", str(topics_config), "UA-46")
    assert result.returncode == 1
    assert "no topic covers this place" in result.stdout
    unknown = alertd("topics", "--config", str(topics_config), "Atlantis")
    assert unknown.returncode == 1 and "unknown region 'Atlantis'" in unknown.stderr


def test_subscribers_add_refuses_a_topic_name(topics_config: Path) -> None:
    result = alertd(
        "subscribers", "add", "topic:places:ua:706", "--config", str(topics_config),
        "--region", "ua:706", "--url", "json://127.0.0.1:9/x",
    )  # fmt: skip
    assert result.returncode == 2
    assert "names starting with 'topic:' are reserved for [[topics]]" in result.stderr
