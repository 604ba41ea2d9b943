"""The channels seam (alertd.channels): loading, limits, one mask rule, one scrub rule, send results."""

from __future__ import annotations

import logging

import pytest

from alertd import channels
from alertd.channels import services
from alertd.core.render import DEFAULT_LIMITS

TWILIO = "twilio://AC" + "a" * 32 + ":" + "b" * 32 + "@+15551234567/+15557654321"
TELEGRAM = "tgram://123456789:abcdefg_hijklmnop/12345"
SECRET = "s3cretpass"


def test_plugin_limits_from_apprise() -> None:
    twilio = channels.load(TWILIO).limits
    assert twilio.sms and twilio.body_maxlen == 160 and twilio.title_maxlen == 0
    json_limits = channels.load("json://localhost/").limits
    assert not json_limits.sms and json_limits.body_maxlen == 32768 and json_limits.title_maxlen == 250
    assert json_limits.notify_format == "text" and json_limits.measure is None
    assert channels.limits_for_url("json://localhost/") == json_limits
    assert channels.limits_for_url("definitely-not-a-scheme://x") == DEFAULT_LIMITS
    telegram = channels.limits_for_url(TELEGRAM)
    assert telegram.title_maxlen == 0 and telegram.notify_format == "html" and not telegram.sms
    assert telegram.measure is not None and telegram.measure("a<b") == len("a&lt;b")


def test_service_host_is_the_host_requests_go_to() -> None:
    assert channels.load(TELEGRAM).host == "api.telegram.org"
    assert channels.load(TWILIO).host == "api.twilio.com"
    assert channels.load("json://127.0.0.1:8080/a").host == "127.0.0.1:8080"
    assert channels.load("ntfys://ntfy.example.org/topic").host == "ntfy.example.org"
    assert channels.host_rate("api.telegram.org") == services.DEFAULT_HOST_RATES["api.telegram.org"]
    assert channels.host_rate("api.telegram.org", {"api.telegram.org": 5}) == channels.HostRate(5.0, 5.0)
    assert channels.host_rate("127.0.0.1:8080") is None


def test_one_entry_changes_one_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service-specific format is one entry in channels.services.SERVICES."""
    monkeypatch.setitem(services.SERVICES, "custom_json", services.Service(body_maxlen=100, title_maxlen=0))
    limits = channels.load("json://localhost/x").limits
    assert (limits.body_maxlen, limits.title_maxlen) == (100, 0)


def test_timeout_reaches_the_plugin_sockets() -> None:
    plugin = channels.load("json://localhost/", timeout=2.5).plugin
    assert (plugin.socket_connect_timeout, plugin.socket_read_timeout) == (2.5, 2.5)


def test_one_mask_rule() -> None:
    masked = channels.mask(f"json://user:{SECRET}@localhost/")
    assert SECRET not in masked and masked.startswith("json://user:")
    assert channels.mask(f"notaservice://{SECRET}") == "notaservice://****"
    assert SECRET not in channels.mask(f"tgram://123456789:{SECRET}/987654321")
    assert "+380501234567" not in channels.mask("json://localhost/+380501234567")
    assert channels.problem(f"notaservice://{SECRET}").startswith("Apprise cannot load 'notaservice://****'")
    assert SECRET not in channels.problem(f"notaservice://{SECRET}")
    assert channels.problem("json://localhost/") is None


def test_one_scrub_rule() -> None:
    url = f"json://user:{SECRET}@127.0.0.1:8080/hook/abcd"
    text = f"Failed to reach {url}; token {SECRET} for user at 127.0.0.1 hook abcd +380501234567"
    scrubbed = channels.scrub(text, url)
    assert SECRET not in scrubbed and "abcd" not in scrubbed and "+380501234567" not in scrubbed
    assert "127.0.0.1" in scrubbed  # an address stays readable


def test_an_unloadable_url_fails_its_sends_with_the_reason() -> None:
    channel = channels.load(f"notaservice://{SECRET}")
    assert not channel.usable and channel.masked == "notaservice://****"
    result = channels.send(channel, "t", "b", channels.INFO)
    assert not result.ok and "cannot load" in result.detail and SECRET not in result.detail


def test_apprise_never_reaches_the_application_log() -> None:
    """Apprise logs an unparseable URL verbatim; the application's (root) handlers never see it.

    (Checked with a root handler of our own: pytest's caplog also hooks non-propagating loggers.)
    """
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler = Collect(logging.DEBUG)
    root.addHandler(handler)
    try:
        channel = channels.load(f"tgram://{SECRET}")
    finally:
        root.removeHandler(handler)
    assert not any(SECRET in line for line in seen)
    assert channel.error is not None and SECRET not in channel.error


def test_rate_limit_answers_are_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    channel = channels.load("json://localhost/")

    def fake(plugin: object, *args: object) -> tuple[bool, list[str]]:
        return False, ["Failed to send JSON POST notification: Too Many Requests - error=429."]

    monkeypatch.setattr(channels._apprise, "notify", fake)
    result = channels.send(channel, "t", "b", channels.INFO)
    assert not result.ok and result.retry_after == channels.DEFAULT_RETRY_AFTER

    def telegram(plugin: object, *args: object) -> tuple[bool, list[str]]:
        return False, ["Failed to send Telegram notification: Too Many Requests: retry after 7 (error=429)"]

    monkeypatch.setattr(channels._apprise, "notify", telegram)
    assert channels.send(channel, "t", "b", channels.INFO).retry_after == 7.0


def test_a_refused_url_gets_apprises_masked_complaint() -> None:
    """The fast first load runs without Apprise's log masking; a URL it cannot load is loaded
    again with masking, so the (raw, unscrubbed) reason is the one Apprise masks itself."""
    from alertd.channels import _apprise

    for url in (f"tgram://{SECRET}/", f"json://user:{SECRET}@/", f"notaservice://{SECRET}"):
        plugin, reason = _apprise.instantiate(url)
        _, secure_lines = _apprise._load(url, _apprise._ASSET)
        assert plugin is None and reason.startswith("Unparseable") and reason == secure_lines[-1].strip()
    _, reason = _apprise.instantiate(f"json://user:{SECRET}@/")
    assert SECRET not in reason  # the fast attempt's line would quote it


def test_loaded_plugins_share_one_secure_asset() -> None:
    """Every loaded plugin keeps Apprise's secure logging, on one shared asset (not one per plugin)."""
    first, second = channels.load("json://localhost/a"), channels.load("json://localhost/b")
    assert first.plugin.asset is second.plugin.asset
    assert first.plugin.asset.secure_logging is True
