"""Rendering (DESIGN §5): wording, local time, notify types and channel limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alertd.channels import _apprise, limits_for_url
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel, Severity
from alertd.core.regions import RegionRegistry
from alertd.core.render import (
    DEFAULT_LIMITS,
    ChannelLimits,
    render,
    sms_length,
    validate_templates,
)

TZ = "Europe/Kyiv"
T0 = datetime(2026, 11, 25, 12, 3, tzinfo=UTC)  # 14:03 in Kyiv
T1 = datetime(2026, 11, 25, 12, 41, tzinfo=UTC)  # 14:41
TWILIO = "twilio://AC" + "a" * 32 + ":" + "b" * 32 + "@+15551234567/+15557654321"
SMS = ChannelLimits(body_maxlen=160, title_maxlen=0, notify_format="text", sms=True, name="sms")
REGIONAL_KINDS = [k for k in AlertKind if k is not AlertKind.ADVISORY]

KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="м. Київ", name_en="Kyiv", oblast="UA-30")
LONG = RegionRegistry.load().get("ua:711")  # "м. Біла Церква та Білоцерківська територіальна громада"


def started(kind: AlertKind = AlertKind.AIR_RAID, region: Region | None = KYIV) -> AlertEvent:
    return AlertEvent(
        id="s", source="alerts_in_ua", kind=kind, status=EventStatus.STARTED, region=region,
        started_at=T0, observed_at=T0,
    )  # fmt: skip


def ended(kind: AlertKind = AlertKind.AIR_RAID, region: Region | None = KYIV) -> AlertEvent:
    return AlertEvent(
        id="e", source="alerts_in_ua", kind=kind, status=EventStatus.ENDED, region=region,
        started_at=T0, ended_at=T1, observed_at=T1,
    )  # fmt: skip


def advisory(status: EventStatus = EventStatus.ISSUED) -> AlertEvent:
    return AlertEvent(
        id="a", source="us-state-dept", kind=AlertKind.ADVISORY, status=status,
        headline="Ukraine - Level 4: Do Not Travel", body="Do not travel to Ukraine due to active armed conflict.",
        url="https://travel.state.gov/ukraine", observed_at=T0, country="UA", level=4, severity=Severity.EXTREME,
    )  # fmt: skip


def show(name: str) -> str:
    return name[3:] if name.startswith("м. ") else name


@pytest.mark.parametrize("language", ["uk", "en"])
@pytest.mark.parametrize("kind", REGIONAL_KINDS)
def test_every_kind_start_and_end(kind: AlertKind, language: str) -> None:
    start = render(started(kind), language=language, tz=TZ, limits=DEFAULT_LIMITS)
    end = render(ended(kind), language=language, tz=TZ, limits=DEFAULT_LIMITS)
    place = show(KYIV.name(language))
    assert start.title and place in start.body and "14:03" in start.body
    assert end.title and place in end.body and "14:41" in end.body
    assert "(38 " in end.body  # duration
    assert start.notify_type == "failure" and end.notify_type == "success"
    assert start.body_format == end.body_format == "text"
    assert start.title != end.title


def test_wording_examples() -> None:
    uk = render(started(), language="uk", tz=TZ, limits=DEFAULT_LIMITS)
    assert uk.title == "Повітряна тривога"
    assert uk.body == "🔴 Повітряна тривога — Київ, 14:03. Пройдіть в укриття."
    assert (
        render(ended(), language="uk", tz=TZ, limits=DEFAULT_LIMITS).body
        == "🟢 Відбій тривоги — Київ, 14:41 (38 хв)"
    )
    assert render(started(), language="en", tz=TZ, limits=DEFAULT_LIMITS).body == (
        "🔴 Air raid alert — Kyiv, 14:03. Go to a shelter."
    )
    assert (
        render(ended(), language="en", tz=TZ, limits=DEFAULT_LIMITS).body
        == "🟢 All clear — Kyiv, 14:41 (38 min)"
    )


def test_date_shown_for_a_start_from_another_day() -> None:
    late = started().model_copy(update={"observed_at": datetime(2026, 11, 26, 6, 0, tzinfo=UTC)})
    assert "25.11 14:03" in render(late, language="uk", tz=TZ, limits=DEFAULT_LIMITS).body


def test_combined_notice() -> None:
    uk = render(ended(), language="uk", tz=TZ, limits=DEFAULT_LIMITS, combined_start=started())
    assert uk.body == "⚪ Повітряна тривога 14:03–14:41 — Київ, вже завершилась"
    assert uk.notify_type == "success"
    en = render(ended(), language="en", tz=TZ, limits=DEFAULT_LIMITS, combined_start=started())
    assert en.body == "⚪ Air raid alert 14:03–14:41 — Kyiv, now over"


def test_advisories_and_test_message() -> None:
    issued = render(advisory(), language="en", tz=TZ, limits=DEFAULT_LIMITS)
    assert issued.title == "Ukraine - Level 4: Do Not Travel" and issued.notify_type == "warning"
    assert "armed conflict" in issued.body and "https://travel.state.gov/ukraine" in issued.body
    assert (
        render(advisory(EventStatus.UPDATED), language="en", tz=TZ, limits=DEFAULT_LIMITS).notify_type
        == "warning"
    )
    cancelled = render(advisory(EventStatus.CANCELLED), language="uk", tz=TZ, limits=DEFAULT_LIMITS)
    assert cancelled.notify_type == "info" and cancelled.title.startswith("Скасовано: ")
    test = render(started(), language="uk", tz=TZ, limits=DEFAULT_LIMITS, test=True)
    assert "🧪 Тестове повідомлення alertd — це не тривога" in test.body and test.notify_type == "info"
    assert "not an alert" in render(started(), language="en", tz=TZ, limits=SMS, test=True).body


def test_sms_length_counts() -> None:
    assert sms_length("Air raid alert") == ("gsm7", 14, 160)
    assert sms_length("€[]{}^~|\\") == ("gsm7", 18, 160)  # extension characters count double
    assert sms_length("Київ") == ("ucs2", 4, 70)
    assert sms_length("a🔴") == ("ucs2", 3, 70)  # outside the BMP: a surrogate pair


@pytest.mark.parametrize("kind", REGIONAL_KINDS)
@pytest.mark.parametrize("region", [KYIV, LONG])
def test_sms_fits_one_segment(kind: AlertKind, region: Region) -> None:
    for ev in (started(kind, region), ended(kind, region)):
        uk = render(ev, language="uk", tz=TZ, limits=SMS, footer="Керувати: https://example.org/m/abc123")
        encoding, units, _limit = sms_length(uk.body)
        assert encoding == "ucs2" and units <= 70 and uk.title == ""
        assert "🔴" not in uk.body and "🟢" not in uk.body
        assert "14:" in uk.body  # the time survives any shortening
        en = render(ev, language="en", tz=TZ, limits=SMS)
        assert sms_length(en.body)[0] == "gsm7" and sms_length(en.body)[1] <= 160


def test_sms_footer_dropped_when_it_does_not_fit() -> None:
    footer = "manage: https://example.org/m/abc123"
    en = render(started(), language="en", tz=TZ, limits=SMS, footer=footer)
    assert en.body.endswith("\n" + footer)  # fits in 160 GSM-7
    uk = render(started(), language="uk", tz=TZ, limits=SMS, footer=footer)
    assert footer not in uk.body and uk.body.startswith("Повітряна тривога - Київ, 14:03")
    long = render(started(region=LONG), language="uk", tz=TZ, limits=SMS)
    assert long.body.startswith("Повітряна тривога - Біла Церква, 14:03")


def test_no_title_channel_folds_title() -> None:
    telegram = limits_for_url("tgram://123456789:abcdefg_hijklmnop/12345")
    msg = render(advisory(), language="en", tz=TZ, limits=telegram)
    assert msg.title == "" and msg.body.startswith("⚠️ Ukraine - Level 4: Do Not Travel")
    tmpl = {"started.en": "ALERT {{ kind_name }}\n{{ region }} at {{ time }}"}
    folded = render(started(), language="en", tz=TZ, limits=telegram, templates=tmpl)
    assert folded.title == "" and folded.body == "ALERT Air raid alert\nKyiv at 14:03"


def test_limits_are_respected() -> None:
    tiny = ChannelLimits(body_maxlen=40, title_maxlen=10, notify_format="text", sms=False, name="tiny")
    msg = render(advisory(), language="en", tz=TZ, limits=tiny, footer="manage: https://example.org/x")
    assert len(msg.body) <= 40 and len(msg.title) <= 10 and msg.title.endswith("…")
    assert msg.body.startswith("⚠️ Ukraine")

    def escaped(text: str) -> int:
        return len(_apprise.convert(text, "markdown"))

    md = ChannelLimits(
        body_maxlen=60, title_maxlen=0, notify_format="markdown", sms=False, name="md", measure=escaped
    )
    body = render(started(region=LONG), language="en", tz=TZ, limits=md).body
    assert escaped(body) <= 60  # measured after escaping, as delivered
    assert "14:03" in body


def test_templates_override_and_validation() -> None:
    templates = {"started.uk": "{{ kind_name }}: {{ region }}\nПочаток {{ time }} ({{ region_code }})"}
    msg = render(started(), language="uk", tz=TZ, limits=DEFAULT_LIMITS, templates=templates)
    assert msg.title == "Повітряна тривога: Київ" and msg.body == "Початок 14:03 (UA-30)"
    assert msg.notify_type == "failure"
    # the English text and other statuses keep the built-in wording
    assert (
        render(started(), language="en", tz=TZ, limits=DEFAULT_LIMITS, templates=templates).title
        == "Air raid alert"
    )
    ok = {
        "ended.en": "{{ kind_name }} over\n{{ region }} {{ start_time }}-{{ end_time }} {{ duration_min }} min",
        "issued.en": "{{ headline }}\n{{ summary }} {{ url }} {{ source }} {{ status }}",
    }
    assert validate_templates(ok) == []
    bad = {
        "started.uk": "{{ regoin }}",
        "ended.en": "{% if %}",
        "begun.uk": "x",
        "started.de": "x",
    }
    problems = validate_templates(bad)
    assert problems[0] == "templates.\"started.uk\": unknown variable 'regoin'"
    assert problems[1].startswith('templates."ended.en": syntax error')
    assert problems[2].startswith('templates."begun.uk": unknown key')
    assert problems[3].startswith('templates."started.de": unknown key')
    # a template that breaks at send time falls back to the built-in text
    broken = render(
        started(), language="uk", tz=TZ, limits=DEFAULT_LIMITS, templates={"started.uk": "{{ nope }}"}
    )
    assert broken.title == "Повітряна тривога"
