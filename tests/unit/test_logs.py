"""Structured logs: fields stay data, both renderers show them, secrets never survive either."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alertd.logs import (
    JsonFormatter,
    SecretFilter,
    TextFormatter,
    format_fields,
    get_logger,
    line,
    mask_phone,
    setup_logging,
)

TOKEN = "tok-9f8e7d6c5b4a"
URL = f"json://user:{TOKEN}@127.0.0.1:8080/path"
PHONE = "+380501234567"


class Captured:
    """A logger of its own with one handler writing into a buffer, the way setup_logging wires it."""

    def __init__(self, formatter: logging.Formatter, secrets: list[str]) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(SecretFilter(secrets))
        self.logger = logging.getLogger("alertd.test_logs")
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.log = get_logger("alertd.test_logs")

    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate = True


@pytest.fixture
def text() -> Iterator[Captured]:
    cap = Captured(TextFormatter(), [URL, TOKEN])
    yield cap
    cap.close()


@pytest.fixture
def jsonl() -> Iterator[Captured]:
    cap = Captured(JsonFormatter(), [URL, TOKEN])
    yield cap
    cap.close()


# -- text -------------------------------------------------------------------------------------------


def test_text_line_shows_fields_as_key_value_after_the_message(text: Captured) -> None:
    text.log.info(
        "delivery ok",
        subscriber="olena",
        event="0a1b2c",
        status="started",
        attempt=1,
        error=None,  # None: left out of the line
        retry_in="4s",
    )
    (out,) = text.lines()
    stamp, level, rest = out.split(" ", 2)
    assert stamp.endswith("Z") and "T" in stamp
    assert level == "INFO"
    assert rest == "delivery ok subscriber=olena event=0a1b2c status=started attempt=1 retry_in=4s"


def test_text_quotes_only_values_a_reader_could_not_split(text: Captured) -> None:
    text.log.warning("poll failed", source="aiu", error="HTTP 401 Unauthorized", note="", eq="a=b")
    (out,) = text.lines()
    assert out.endswith('poll failed source=aiu error="HTTP 401 Unauthorized" note="" eq="a=b"')


def test_text_renders_lists_and_times_readably() -> None:
    when = datetime(2026, 11, 25, 14, 3, 7, tzinfo=UTC)
    assert format_fields({"regions": ["UA-30", "UA-32"], "since": when}) == (
        "regions=UA-30,UA-32 since=2026-11-25T14:03:07Z"
    )


def test_text_keeps_a_traceback_on_the_same_line(text: Captured) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        text.log.exception("poll crashed", source="aiu")
    (out,) = text.lines()
    assert "ERROR poll crashed source=aiu | Traceback" in out and "RuntimeError: boom" in out


def test_record_points_at_the_caller_not_the_logs_module(text: Captured) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    text.logger.addHandler(keep)
    try:
        text.log.info("here")
    finally:
        text.logger.removeHandler(keep)
    (record,) = records
    assert (
        record.pathname == __file__
        and record.funcName == "test_record_points_at_the_caller_not_the_logs_module"
    )


def test_a_plain_logger_with_extra_fields_renders_the_same(text: Captured) -> None:
    text.logger.info("source recovered", extra={"fields": {"source": "aiu", "failures": 3}})
    assert text.lines()[0].endswith("INFO source recovered source=aiu failures=3")


def test_line_is_what_operators_read() -> None:
    record = logging.LogRecord("alertd", logging.INFO, __file__, 1, "alert started", None, None)
    record.fields = {"source": "aiu", "region": "UA-30"}
    assert line(record) == "alert started source=aiu region=UA-30"


# -- JSON -------------------------------------------------------------------------------------------


def test_json_fields_are_top_level_keys_not_inside_the_message(jsonl: Captured) -> None:
    when = datetime(2026, 11, 25, 14, 3, 7, tzinfo=UTC)
    jsonl.log.info(
        "delivery ok",
        subscriber="olena",
        event="0a1b2c",
        status="started",
        attempt=2,
        latency_ms=840,
        regions=["UA-30", "UA-32"],
        since=when,
        error=None,
    )
    (out,) = jsonl.lines()
    data = json.loads(out)
    assert data["message"] == "delivery ok"
    assert data["level"] == "INFO" and data["logger"] == "alertd.test_logs"
    assert data["subscriber"] == "olena" and data["event"] == "0a1b2c" and data["status"] == "started"
    assert data["attempt"] == 2 and data["latency_ms"] == 840  # numbers stay numbers
    assert data["regions"] == ["UA-30", "UA-32"]
    assert data["since"] == "2026-11-25T14:03:07Z"
    assert "error" not in data


def test_json_field_cannot_overwrite_the_line_s_own_keys(jsonl: Captured) -> None:
    jsonl.log.info("alert started", message="other", level="x", source="aiu")
    data = json.loads(jsonl.lines()[0])
    assert data["message"] == "alert started" and data["level"] == "INFO"
    assert data["message_"] == "other" and data["level_"] == "x" and data["source"] == "aiu"


def test_json_traceback_is_its_own_key(jsonl: Captured) -> None:
    try:
        raise ValueError("bad payload")
    except ValueError:
        jsonl.log.exception("poll crashed", source="aiu")
    data = json.loads(jsonl.lines()[0])
    assert data["message"] == "poll crashed" and data["level"] == "ERROR"
    assert "ValueError: bad payload" in data["exception"]


def test_json_lines_can_be_filtered_on_source_event_and_status() -> None:
    """What an operator does with jq or Loki: every line parses, the filter uses the fields."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(level="INFO", fmt="json", secrets=[TOKEN], stream=stream)
        log = get_logger("alertd.run.dispatch")
        log.info("alert started", source="aiu", event="e1", status="started", region="UA-30")
        log.info("delivery ok", source="aiu", event="e1", status="started", subscriber="olena")
        log.warning("delivery failed", source="ua", event="e2", status="ended", error=f"401 {TOKEN}")
        log.info("delivery ok", source="ua", event="e2", status="ended", subscriber="petro")
        logging.getLogger("alertd.other").info("a plain line without fields")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    lines = [json.loads(raw) for raw in stream.getvalue().splitlines()]
    assert len(lines) == 5
    ended_from_ua = [
        (d["message"], d.get("subscriber"))
        for d in lines
        if d.get("source") == "ua" and d.get("status") == "ended"
    ]
    assert ended_from_ua == [("delivery failed", None), ("delivery ok", "petro")]
    assert [d["message"] for d in lines if d.get("event") == "e1"] == ["alert started", "delivery ok"]
    assert TOKEN not in stream.getvalue()
    assert lines[2]["error"] == "401 ***"


# -- secrets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["text", "jsonl"])
def test_secrets_in_field_values_are_scrubbed(fixture: str, request: pytest.FixtureRequest) -> None:
    cap: Captured = request.getfixturevalue(fixture)
    cap.log.warning(
        "delivery failed",
        channel=URL,
        error=f"HTTP 401 for token {TOKEN}",
        subscriber=PHONE,
        tried=[URL, "ok"],
        attempt=3,
    )
    out = cap.buffer.getvalue()
    assert TOKEN not in out and "user:" not in out
    assert PHONE not in out and "+38050…67" in out
    assert "attempt" in out and "3" in out
    if fixture == "jsonl":
        data = json.loads(out)
        assert data["channel"] == "***"
        assert data["error"] == "HTTP 401 for token ***"
        assert data["tried"] == ["***", "ok"]
        assert data["attempt"] == 3


def test_secrets_in_a_traceback_are_scrubbed(jsonl: Captured) -> None:
    try:
        raise ConnectionError(f"cannot reach {URL}")
    except ConnectionError:
        jsonl.log.exception("delivery crashed", event="e1")
    out = jsonl.buffer.getvalue()
    assert TOKEN not in out and "cannot reach ***" in json.loads(out)["exception"]


def test_an_object_field_is_scrubbed_through_its_text(text: Captured) -> None:
    class Leaky:
        def __str__(self) -> str:
            return f"<client {TOKEN}>"

    text.log.info("x", client=Leaky())
    assert text.lines()[0].endswith('x client="<client ***>"')


def test_phone_masking_leaves_dates_and_hex_ids_alone() -> None:
    assert mask_phone("to +380501234567 now") == "to +38050…67 now"
    assert mask_phone("down_since=2026-11-25T15:29:42Z") == "down_since=2026-11-25T15:29:42Z"
    event_id = "123456789012abcdef012345"  # a sha256 prefix may well start with digits
    assert mask_phone(f"event={event_id}") == f"event={event_id}"
