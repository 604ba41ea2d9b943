"""Rendering: what each channel receives for an event (DESIGN §5). Pure: no I/O, no Apprise.

Wording is short, calm and unambiguous, in Ukrainian and English, with local
time. Every text is built from parts of known importance so it can be fitted to
the channel instead of being cut blindly: when space runs out the footer goes
first, then extra detail, then the advice sentence, then the place name is
shortened, and only then is the essential first line itself truncated ("…").

Channel limits arrive as plain data (:class:`ChannelLimits`), read from the
Apprise plugin by :mod:`alertd.channels`. Bodies are always produced as plain text
and returned with ``body_format="text"``: Apprise then converts them to the
channel's Markdown or HTML with correct escaping (``text_to_markdown`` escapes
every CommonMark character, ``text_to_html`` escapes HTML), which is safer than
escaping here and sending pre-formatted markup. Lengths are measured *after*
that conversion (``ChannelLimits.measure``), so an escaped body still fits.

SMS must fit one segment: 160 GSM-7 septets, or 70 UCS-2 units as soon as any
character is outside GSM-7 (all Cyrillic text). SMS texts drop emoji, fold the
title into the body and use plain punctuation (``-`` for ``—``).

Operators may override texts with Jinja2 templates keyed ``"<status>.<language>"``
(sandboxed, no autoescape, undefined variables are errors). The first line a
template renders is the title, the rest the body. A template that fails at send
time falls back to the built-in text: a typo must never swallow an alert.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from alertd.core.kinds import advice as kind_advice
from alertd.core.kinds import is_over, kind_name
from alertd.core.languages import LANGUAGES, language_of
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel, Severity
from alertd.core.template_budget import BudgetedSandbox, render_within_budget

__all__ = [
    "DEFAULT_LIMITS",
    "TEMPLATE_VARIABLES",
    "ChannelLimits",
    "Message",
    "kind_name",
    "render",
    "sms_length",
    "validate_templates",
]

# Apprise NotifyType values (apprise.NotifyType), kept as plain strings so this module stays light.
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"

# ---------------------------------------------------------------------------
# Channel limits
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelLimits:
    """What one channel accepts: lengths in characters, ``title_maxlen`` 0 = no title field."""

    body_maxlen: int
    title_maxlen: int
    notify_format: str  # "text" | "markdown" | "html": what the channel converts our text body into
    sms: bool
    name: str
    #: The length of a text body as the channel will carry it (after escaping for Markdown/HTML);
    #: None = ``len``. Set by :mod:`alertd.channels`, which knows the conversion; it follows from
    #: ``notify_format``, so it takes no part in equality.
    measure: Callable[[str], int] | None = field(default=None, compare=False, repr=False)


#: For URLs Apprise cannot load: generous, like Apprise's own NotifyBase defaults.
DEFAULT_LIMITS = ChannelLimits(
    body_maxlen=32768, title_maxlen=250, notify_format="text", sms=False, name="default"
)


# ---------------------------------------------------------------------------
# SMS encoding
# ---------------------------------------------------------------------------

# GSM 03.38 basic character set (without ESC) and its extension table (2 septets each).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\x0c")
SMS_GSM7_LIMIT = 160
SMS_UCS2_LIMIT = 70


def sms_length(text: str) -> tuple[str, int, int]:
    """(encoding, units used, single-segment limit) of ``text`` as one SMS.

    GSM-7 when every character is in the GSM 03.38 tables (extension characters
    such as ``€ [ ] { } ^ ~ | \\`` take 2 septets), limit 160. Otherwise UCS-2,
    limit 70, counted in UTF-16 code units (an emoji outside the BMP takes 2).
    """
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        return "gsm7", sum(2 if c in _GSM_EXTENSION else 1 for c in text), SMS_GSM7_LIMIT
    return "ucs2", len(text.encode("utf-16-le")) // 2, SMS_UCS2_LIMIT


_SMS_PUNCTUATION = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "−": "-",
        "…": "...",
        "’": "'",
        "‘": "'",
        "ʼ": "'",
        "“": '"',
        "”": '"',
        "«": '"',
        "»": '"',
        "\u00a0": " ",
        "\u202f": " ",
    }
)
_EMOJI_RE = re.compile(
    "[\U00010000-\U0010ffff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\u2190-\u21ff\u2139\u24c2\ufe0f\ufe0e\u200d\u20e3]"
)


def _strip_emoji(text: str) -> str:
    """Emoji cost 2 UCS-2 units each and force UCS-2 on Latin text; SMS drops them."""
    return "\n".join(" ".join(line.split()) for line in _EMOJI_RE.sub("", text).split("\n")).strip()


def _sms_clean(text: str) -> str:
    """Plain punctuation so English stays GSM-7 (an em dash alone would halve the space)."""
    return _strip_emoji(text.translate(_SMS_PUNCTUATION))


# ---------------------------------------------------------------------------
# Wording
# ---------------------------------------------------------------------------


_WORDS: dict[str, dict[str, str]] = {
    "uk": {
        "min": "хв",
        "hour": "год",
        "since": "з",
        "update": "Оновлення",
        "updated": "Оновлено",
        "cancelled": "Скасовано",
        "test_title": "Тестове повідомлення alertd",
        "test_head": "Тестове повідомлення alertd — це не тривога",
        "test_advice": "Канал працює.",
    },
    "en": {
        "min": "min",
        "hour": "h",
        "since": "since",
        "update": "Update",
        "updated": "Updated",
        "cancelled": "Cancelled",
        "test_title": "alertd test message",
        "test_head": "alertd test message — not an alert",
        "test_advice": "This channel works.",
    },
}


# ---------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _minute(dt: datetime, zone: ZoneInfo) -> datetime:
    return dt.astimezone(zone).replace(second=0, microsecond=0)


def _clock(dt: datetime, zone: ZoneInfo, ref: datetime | None = None) -> str:
    """Local "HH:MM", prefixed with "DD.MM " when its local date is not ``ref``'s (a missed or overnight alert)."""
    local = dt.astimezone(zone)
    text = local.strftime("%H:%M")
    if ref is not None and ref.astimezone(zone).date() != local.date():
        text = local.strftime("%d.%m ") + text
    return text


def _duration(start: datetime | None, end: datetime | None, zone: ZoneInfo, lang: str) -> str:
    """ "38 хв" / "1 год 5 хв", from the displayed minutes so it agrees with the times people read."""
    if start is None or end is None:
        return ""
    minutes = int((_minute(end, zone) - _minute(start, zone)) / timedelta(minutes=1))
    if minutes < 0:
        return ""
    words = _WORDS[lang]
    if minutes < 60:
        return f"{minutes} {words['min']}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} {words['hour']}" + (f" {rest} {words['min']}" if rest else "")


def _duration_min(start: datetime | None, end: datetime | None, zone: ZoneInfo) -> int | str:
    if start is None or end is None:
        return ""
    return int((_minute(end, zone) - _minute(start, zone)) / timedelta(minutes=1))


# ---------------------------------------------------------------------------
# Drafts: a message in parts of known importance
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What Apprise is asked to send. ``notify_type`` is an apprise.NotifyType value."""

    title: str
    body: str
    notify_type: str
    body_format: str = "text"


@dataclass(frozen=True)
class _Draft:
    """The parts of a message. The essential line is ``prefix + region + suffix``.

    Kept apart so fitting can drop the advice or shorten the place name before
    it ever touches the time or the kind of danger.
    """

    title: str
    emoji: str
    prefix: str
    region: str
    suffix: str
    notify_type: str
    advice: str = ""
    details: tuple[str, ...] = field(default_factory=tuple)


def _region_text(region: Region | None, lang: str) -> str:
    """``region.name(lang)``, without the "м. " (city) prefix of a plain city: "м. Київ" reads "Київ".

    A city-and-hromada name ("м. Біла Церква та …") keeps it; it is shortened only when space is short.
    """
    if region is None:
        return ""
    name = region.name(lang)
    if name.startswith("м. ") and " та " not in name:
        name = name[3:].strip() or name
    return name


_UK_SHORT = (
    (re.compile(r"\s+(?:(?:міська|селищна|сільська)\s+)?територіальна громада$"), " ТГ"),
    (re.compile(r"\s+район$"), " р-н"),
    (re.compile(r"\s+область$"), " обл."),
)


def _short_region(name: str) -> str:
    """A shorter, still recognisable place name for tight channels (SMS).

    "м. Біла Церква та Білоцерківська територіальна громада" -> "Біла Церква",
    "Володарська територіальна громада" -> "Володарська ТГ", "Bila Tserkva and
    Bilotserkivska hromada" -> "Bila Tserkva".
    """
    short = name.strip()
    if short.startswith("м. "):
        short = short[3:]
        short = short.split(" та ", 1)[0]
    elif " and " in short and short.endswith(" hromada"):
        short = short.split(" and ", 1)[0]
    for pattern, repl in _UK_SHORT:
        short = pattern.sub(repl, short)
    return short.strip() or name


def _summary(text: str, limit: int = 300) -> str:
    """A short, single-paragraph summary: advisories link to the full text."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0].rstrip(" ,.;:")
    return cut + "…"


def _regional_draft(
    event: AlertEvent, lang: str, zone: ZoneInfo, combined_start: AlertEvent | None
) -> _Draft:
    region = _region_text(event.region, lang)
    sep = " — " if region else ""
    observed = event.observed_at
    words = _WORDS[lang]
    if combined_start is not None:
        started = combined_start.started_at or event.started_at or combined_start.observed_at
        ended = event.ended_at or observed
        end_clock = _clock(ended, zone, observed)
        span = f"{_clock(started, zone, ended)}–{end_clock}" if started is not None else end_clock
        name = kind_name(event.kind, lang)
        return _Draft(
            title=f"{name} {span}",
            emoji="⚪",
            prefix=f"{name} {span}{sep}",
            region=region,
            suffix=f", {is_over(event.kind, lang)}",
            notify_type=SUCCESS,
        )
    if event.status is EventStatus.ENDED:
        ended = event.ended_at or observed
        duration = _duration(event.started_at, ended, zone, lang)
        name = kind_name(event.kind, lang, end=True)
        return _Draft(
            title=name,
            emoji="🟢",
            prefix=f"{name}{sep}",
            region=region,
            suffix=f", {_clock(ended, zone, observed)}" + (f" ({duration})" if duration else ""),
            notify_type=SUCCESS,
        )
    started = event.started_at or observed
    name = kind_name(event.kind, lang)
    details = (_summary(event.body),) if event.body.strip() else ()
    if event.status is EventStatus.UPDATED:
        return _Draft(
            title=f"{words['update']}: {name}",
            emoji="ℹ️",
            prefix=f"{words['update']}: {name}{sep}",
            region=region,
            suffix=f", {words['since']} {_clock(started, zone, observed)}",
            notify_type=INFO,
            details=details,
        )
    return _Draft(
        title=name,
        emoji="🔴",
        prefix=f"{name}{sep}",
        region=region,
        suffix=f", {_clock(started, zone, observed)}",
        notify_type=FAILURE,
        advice=kind_advice(event.kind, lang),
    )


def _advisory_draft(event: AlertEvent, lang: str) -> _Draft:
    """Notices from item feeds: the headline is the message; summary and link follow.

    Level 3-4 or Extreme/Severe advisories stay WARNING: alert-level priority
    (FAILURE) is reserved for alerts that mean "take cover now".
    """
    words = _WORDS[lang]
    headline = " ".join(event.headline.split()) or kind_name(event.kind, lang)
    region = _region_text(event.region, lang)
    details = tuple(d for d in (_summary(event.body) if event.body.strip() else "", event.url or "") if d)
    if event.status is EventStatus.CANCELLED:
        head, emoji, notify_type = f"{words['cancelled']}: {headline}", "ℹ️", INFO
    elif event.status is EventStatus.UPDATED:
        head, emoji, notify_type = f"{words['updated']}: {headline}", "⚠️", WARNING
    else:
        head, emoji, notify_type = headline, "⚠️", WARNING
    return _Draft(
        title=head,
        emoji=emoji,
        prefix=head + (" — " if region else ""),
        region=region,
        suffix="",
        notify_type=notify_type,
        details=details,
    )


def _test_draft(lang: str) -> _Draft:
    words = _WORDS[lang]
    return _Draft(
        title=words["test_title"],
        emoji="🧪",
        prefix=words["test_head"],
        region="",
        suffix="",
        notify_type=INFO,
        advice=words["test_advice"],
    )


def _builtin_draft(
    event: AlertEvent, lang: str, zone: ZoneInfo, combined_start: AlertEvent | None, test: bool
) -> _Draft:
    if test:
        return _test_draft(lang)
    if event.status in (EventStatus.ISSUED, EventStatus.CANCELLED) or (
        event.region is None and event.status is EventStatus.UPDATED
    ):
        return _advisory_draft(event, lang)
    return _regional_draft(event, lang, zone, combined_start)


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------

#: Variables a template sees. ``duration_min`` is an int, or "" when unknown; times are local "HH:MM" or "".
TEMPLATE_VARIABLES: tuple[str, ...] = (
    "kind",
    "kind_name",
    "region",
    "region_code",
    "time",
    "start_time",
    "end_time",
    "duration_min",
    "headline",
    "summary",
    "url",
    "source",
    "status",
    "level",
    "country",
)


@functools.cache
def _jinja() -> SandboxedEnvironment:
    """Sandboxed (operator text must not reach Python internals), no autoescape (plain text), strict."""
    return BudgetedSandbox(  # bounded steps, output and sizes: alertd.core.template_budget
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=False
    )


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _jinja().from_string(source)


def _variables(event: AlertEvent, lang: str, zone: ZoneInfo) -> dict[str, Any]:
    start = event.started_at
    end = event.ended_at
    if event.status is EventStatus.ENDED:
        moment = end or event.observed_at
    elif event.status in (EventStatus.STARTED, EventStatus.UPDATED) and start is not None:
        moment = start
    else:
        moment = event.observed_at
    return {
        "kind": event.kind.value,
        "kind_name": kind_name(event.kind, lang),
        "region": _region_text(event.region, lang),
        "region_code": event.region.code if event.region is not None else "",
        "time": _clock(moment, zone),
        "start_time": _clock(start, zone) if start is not None else "",
        "end_time": _clock(end, zone) if end is not None else "",
        "duration_min": _duration_min(start, end, zone),
        "headline": event.headline,
        "summary": _summary(event.body) if event.body.strip() else "",
        "url": event.url or "",
        "source": event.source,
        "status": event.status.value,
        "level": event.level if event.level is not None else "",
        "country": event.country or "",
    }


def _template_draft(
    source: str, event: AlertEvent, lang: str, zone: ZoneInfo, notify_type: str
) -> _Draft | None:
    """First rendered line = title, the rest = body. None when the template renders nothing usable."""
    text = render_within_budget(_compile(source), _variables(event, lang, zone))
    lines = [line.rstrip() for line in text.strip().splitlines()]
    lines = [line for line in lines if line.strip()] if lines else []
    if not lines:
        return None
    title, rest = lines[0].strip(), lines[1:]
    first = rest[0] if rest else title
    return _Draft(
        title=title,
        emoji="",
        prefix=first,
        region="",
        suffix="",
        notify_type=notify_type,
        details=tuple(rest[1:]),
    )


def _sample_events() -> dict[EventStatus, AlertEvent]:
    """Events to render templates against in :func:`validate_templates`."""
    kyiv = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="м. Київ", name_en="Kyiv", oblast="UA-30")
    t0 = datetime(2026, 11, 25, 12, 3, tzinfo=UTC)
    t1 = datetime(2026, 11, 25, 12, 41, tzinfo=UTC)
    out: dict[EventStatus, AlertEvent] = {}
    for status in EventStatus:
        notice = status in (EventStatus.ISSUED, EventStatus.CANCELLED)
        out[status] = AlertEvent(
            id=f"sample-{status.value}",
            source="sample",
            kind=AlertKind.ADVISORY if notice else AlertKind.AIR_RAID,
            status=status,
            region=None if notice else kyiv,
            severity=Severity.SEVERE,
            headline="Sample advisory" if notice else "",
            body="Sample summary." if notice else "",
            url="https://example.org/advisory" if notice else None,
            started_at=t0,
            ended_at=t1 if status is EventStatus.ENDED else None,
            observed_at=t1 if status is EventStatus.ENDED else t0,
            country="UA" if notice else None,
            level=3 if notice else None,
        )
    return out


_UNDEFINED_RE = re.compile(r"'([^']+)' is undefined")


def validate_templates(templates: Mapping[str, str]) -> list[str]:
    """One problem line per bad key or template, e.g. ``templates."started.uk": unknown variable 'regoin'``.

    Each template is rendered against a sample event of its status, because
    StrictUndefined only complains when a variable is actually used.
    """
    problems: list[str] = []
    statuses = {s.value: s for s in EventStatus}
    samples = _sample_events()
    zone = ZoneInfo("Europe/Kyiv")
    for key, source in templates.items():
        where = f'templates."{key}"'
        status_text, sep, lang = key.partition(".")
        if not sep or status_text not in statuses or lang not in LANGUAGES:
            problems.append(
                f"{where}: unknown key (expected <status>.<language>, status one of "
                f"{', '.join(statuses)}; language {' or '.join(LANGUAGES)})"
            )
            continue
        if not isinstance(source, str):
            problems.append(f"{where}: must be a string")
            continue
        try:
            draft = _template_draft(source, samples[statuses[status_text]], lang, zone, INFO)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{where}: syntax error on line {exc.lineno}: {exc.message}")
            continue
        except jinja2.UndefinedError as exc:
            match = _UNDEFINED_RE.search(str(exc))
            detail = f"unknown variable '{match.group(1)}'" if match else f"undefined value: {exc}"
            problems.append(f"{where}: {detail}")
            continue
        except jinja2.exceptions.SecurityError as exc:
            problems.append(f"{where}: not allowed in a sandboxed template: {exc}")
            continue
        except Exception as exc:  # a template may fail in many ways; report, never crash the check
            problems.append(f"{where}: cannot render: {type(exc).__name__}: {exc}")
            continue
        if draft is None:
            problems.append(f"{where}: renders to an empty message")
    return problems


# ---------------------------------------------------------------------------
# Fitting to the channel
# ---------------------------------------------------------------------------


def _cut(text: str, ok: Callable[[str], bool], ellipsis: str = "…") -> str | None:
    """The longest prefix of ``text`` (+ ellipsis) that ``ok`` accepts; None if not even the ellipsis fits."""
    if ok(text):
        return text
    lo, hi = 0, len(text)  # invariant: candidate(lo) is the best known, candidate(hi) fails
    if not ok(ellipsis):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(text[:mid].rstrip() + ellipsis):
            lo = mid
        else:
            hi = mid
    return text[:lo].rstrip() + ellipsis


def _fit(draft: _Draft, limits: ChannelLimits, footer: str | None) -> tuple[str, str]:
    """(title, body) within the channel's limits, giving up the least important parts first."""
    fitter = _Fitter(draft, limits, footer)
    return fitter.title(), fitter.body()


@dataclass(frozen=True)
class _Fitter:
    """Fits one draft to one channel. The body gives up, in order and only as far as needed: the
    footer, the extra detail (cut), the advice sentence, the full place name (shortened, then cut),
    and last the essential line itself (cut with an ellipsis)."""

    draft: _Draft
    limits: ChannelLimits
    footer: str | None

    @property
    def sms(self) -> bool:
        return self.limits.sms

    @property
    def fold(self) -> bool:
        """SMS and title-less channels carry the title as the body's first line."""
        return self.limits.sms or self.limits.title_maxlen <= 0

    def fits(self, body: str) -> bool:
        """Whether the channel carries ``body`` whole: one SMS segment, or its length as delivered."""
        if not body:
            return False
        if self.sms:
            _enc, units, limit = sms_length(body)
            return units <= limit and len(body) <= self.limits.body_maxlen
        return (self.limits.measure or len)(body) <= self.limits.body_maxlen

    def essential(self, region: str, advice: bool) -> str:
        """The line that must get through: (title,) kind, place, time (and the advice, while it fits)."""
        draft = self.draft
        head = draft.prefix + region + draft.suffix
        if self.fold and draft.title and draft.title not in head:
            head = f"{draft.title}\n{head}"
        if draft.emoji and not self.sms:
            head = f"{draft.emoji} {head}"
        if advice and draft.advice:
            head += (" " if head.endswith((".", "!", "?")) else ". ") + draft.advice
        return head

    def assemble(self, region: str, advice: bool, details: tuple[str, ...], with_footer: bool) -> str:
        lines = [self.essential(region, advice), *details]
        if with_footer and self.footer:
            lines.append(self.footer)
        text = "\n".join(line for line in lines if line)
        return _sms_clean(text) if self.sms else text

    def ellipsis_for(self, text: str) -> str:
        """ "..." keeps a GSM-7 SMS in GSM-7; "…" everywhere else."""
        return "..." if self.sms and sms_length(text)[0] == "gsm7" else "…"

    def shorter_details(self, region: str, details: tuple[str, ...]) -> tuple[str, ...]:
        """The details cut to what fits beside the essential line; none when under 12 characters remain."""
        joined = "\n".join(details)
        cut = _cut(
            joined, lambda d: self.fits(self.assemble(region, True, (d,), False)), self.ellipsis_for(joined)
        )
        return (cut,) if cut is not None and len(cut) >= 12 else ()

    def shorter_region(self, region: str, details: tuple[str, ...]) -> str:
        """The short place name ("Біла Церква"), cut further only if even that does not fit."""
        short = _short_region(region)
        if self.fits(self.assemble(short, False, details, False)):
            return short
        cut = _cut(
            short, lambda r: self.fits(self.assemble(r, False, details, False)), self.ellipsis_for(short)
        )
        return cut if cut is not None and len(cut) > 1 else short

    def body(self) -> str:
        """The first candidate that fits; the last one (the essential line, cut) fits by construction."""
        body = ""
        for body in self._candidates():
            if self.fits(body):
                break
        return body

    def _candidates(self) -> Iterator[str]:
        """Ever shorter bodies, each giving up one more part, least important first."""
        region, details = self.draft.region, self.draft.details
        yield self.assemble(region, True, details, True)
        yield self.assemble(region, True, details, False)  # the footer goes first
        if details:
            details = self.shorter_details(region, details)
            yield self.assemble(region, True, details, False)
        yield self.assemble(region, False, details, False)  # then the advice sentence
        if region:
            region = self.shorter_region(region, details)
            yield self.assemble(region, False, details, False)
        full = self.assemble(region, False, (), False)
        yield _cut(full, self.fits, self.ellipsis_for(full)) or full[: max(1, self.limits.body_maxlen)]

    def title(self) -> str:
        if self.fold:
            return ""
        title, maxlen = self.draft.title, self.limits.title_maxlen
        if maxlen > 0 and len(title) > maxlen:
            return _cut(title, lambda t: len(t) <= maxlen) or title[:maxlen]
        return title


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def render(
    event: AlertEvent,
    *,
    language: str,
    tz: str | ZoneInfo,
    limits: ChannelLimits,
    templates: Mapping[str, str] | None = None,
    combined_start: AlertEvent | None = None,
    footer: str | None = None,
    test: bool = False,
) -> Message:
    """The message one channel receives for ``event``.

    ``combined_start``: the start event that was still undelivered when
    ``event`` (its end) arrived; the result is one combined notice ("⚪ alert
    14:03–14:41 — Kyiv, now over", SUCCESS) instead of a stale start and an end.
    ``footer`` (e.g. "manage: <link>") is appended on its own line when it fits
    and is the first thing dropped. ``test`` renders a clearly marked test
    message. Templates apply to ordinary notices only, not to combined or test ones.
    """
    lang = language_of(language)
    zone = _zone(tz)
    draft = _builtin_draft(event, lang, zone, combined_start, test)
    if templates and not test and combined_start is None:
        source = templates.get(f"{event.status.value}.{lang}")
        if source:
            # A broken template falls back to the built-in text, never to silence.
            with contextlib.suppress(Exception):
                draft = _template_draft(source, event, lang, zone, draft.notify_type) or draft
    title, body = _fit(draft, limits, footer)
    return Message(title=title, body=body, notify_type=draft.notify_type, body_format="text")
