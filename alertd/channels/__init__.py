"""Channels: every contact with Apprise, behind one seam (DESIGN §7).

The rest of alertd never imports Apprise. It asks this package to

* **load** a channel URL once (:func:`load`, or :class:`ChannelCache` for the
  dispatcher's many channels): the plugin, its limits as plain data
  (:class:`alertd.core.render.ChannelLimits`), its masked name, the service
  host it talks to, or the reason Apprise refuses it;
* **mask** a URL for a log line or a CLI answer (:func:`mask`) and **scrub** a
  text that may quote one (:func:`scrub`) — one rule each;
* **check** a URL for ``alertd check`` (:func:`problem`);
* **send** one message (:func:`send`, blocking, run it in a worker thread) and
  get a :class:`SendResult` that says what happened, including "the service
  asked us to slow down" and "timed out, may have been delivered".

Per-service knowledge (SMS, limit overrides, the real API host, default send
rates) lives in :mod:`alertd.channels.services`; how sends are spread over
worker threads and hosts lives in :mod:`alertd.channels.sender`.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pydantic import SecretStr

from alertd.channels import _apprise
from alertd.channels.services import DEFAULT_HOST_RATES, SERVICES, HostRate, Service, service_for
from alertd.core.render import DEFAULT_LIMITS, ChannelLimits
from alertd.logs import mask_phone

__all__ = [
    "DEFAULT_HOST_RATES",
    "FAILURE",
    "INFO",
    "SERVICES",
    "SUCCESS",
    "WARNING",
    "Channel",
    "ChannelCache",
    "HostRate",
    "SendResult",
    "Service",
    "limits_for_url",
    "load",
    "mask",
    "mask_value",
    "problem",
    "scrub",
    "send",
]

# Apprise NotifyType values, as plain strings.
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"

_DIGITS = re.compile(r"\+?\d{8,}")
_SEPARATORS = re.compile(r"[/:@?&=#,]+")
_NUMERIC = re.compile(r"[\d.]+")
_RETRY_AFTER = re.compile(r"retry[ _-]?after\D{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)
_TOO_MANY = re.compile(r"\b429\b|too many requests", re.IGNORECASE)
#: Pause after a "slow down" answer whose wait Apprise does not show us (it hides response headers).
DEFAULT_RETRY_AFTER = 1.0


def _short_digits(text: str) -> str:
    """Runs of 8+ digits (phone numbers, chat ids, tokens) shortened to ``+38050…67``."""
    return _DIGITS.sub(lambda m: m.group(0)[:6] + "…" + m.group(0)[-2:], text)


def _raw(url: str | SecretStr) -> str:
    return url.get_secret_value() if isinstance(url, SecretStr) else url


# ------------------------------------------------------------------------------------------------
# mask and scrub: one rule each


def mask(url: str | SecretStr) -> str:
    """The form of a channel URL that may appear in a log line, a CLI answer or an error message.

    Apprise's privacy URL without the query string (mostly Apprise's defaults),
    with every run of 8+ digits shortened: privacy URLs keep phone numbers that
    sit in the path (``json://…/+380501234567``). A URL Apprise cannot load
    shows its scheme only (``scheme://****``): it cannot be parsed, so nothing
    else in it is known to be safe.
    """
    return _mask_raw(_raw(url))


@functools.lru_cache(maxsize=4096)
def _mask_raw(raw: str) -> str:
    """Cached: every delivery outcome is logged with the channel's name, and parsing is not free."""
    plugin, _ = _apprise.instantiate(raw)
    if plugin is not None:
        return _mask_plugin(plugin, raw)
    return _mask_unloadable(raw)


def _mask_unloadable(raw: str) -> str:
    scheme, sep, _ = raw.partition("://")
    return f"{scheme}://****" if sep else "****"


def _mask_plugin(plugin: Any, raw: str) -> str:
    try:
        return _mask_path(_short_digits(str(plugin.url(privacy=True)).split("?", 1)[0]))
    except Exception:
        return _mask_unloadable(raw)


def mask_value(value: str) -> str:
    """One destination (a path segment, a topic, a chat, an address, a phone) as it may be shown.

    The rule behind :func:`mask` for every path segment, also used by self-service
    for the destination a resident typed: ``+380501234567`` → ``+38050…67``,
    ``olena@example.org`` → ``o***@example.org``, ``@channel`` → ``@c…``, an ntfy
    topic or a webhook token → its first two characters and ``…`` (a part of one or two
    characters → ``…``). Already masked parts (``…``, ``*``) stay as they are.
    """
    value = _short_digits(value)
    if not value or "…" in value or "*" in value:
        return value
    decoded = unquote(value)
    if "@" in decoded:
        local, _, domain = decoded.partition("@")
        if local:
            return f"{local[:1]}***@{domain}"
        return f"@{domain[:1]}…" if domain else decoded
    if len(decoded) <= 2:
        return "…"  # two characters of two would be all of it
    return decoded[:2] + "…"


def _mask_path(masked: str) -> str:
    """Every path segment of a privacy URL through :func:`mask_value` (topics, addresses, tokens)."""
    scheme, sep, rest = masked.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or not slash:
        return masked
    return f"{scheme}://{netloc}/" + "/".join(mask_value(part) for part in path.split("/"))


def scrub(text: str, url: str | SecretStr) -> str:
    """``text`` with every piece of ``url`` beyond its scheme removed, and phone numbers shortened.

    Apprise echoes URLs, hosts and tokens in what it logs. The URL itself
    becomes its :func:`mask`; then each piece of it (split at ``/ : @ ? & = # ,``)
    of 4+ characters becomes ``****`` — except plain numbers and IPv4 addresses
    such as ``127.0.0.1`` or a port, which stay readable (long numbers are still
    shortened by the digit rule).
    """
    raw = _raw(url)
    if not text:
        return text
    text = text.replace(raw, mask(raw))
    _, _, rest = raw.partition("://")
    for piece in sorted(set(_SEPARATORS.split(rest)), key=len, reverse=True):
        if len(piece) >= 4 and not _NUMERIC.fullmatch(piece):
            text = text.replace(piece, "****")
    return mask_phone(_short_digits(text))


# ------------------------------------------------------------------------------------------------
# channels


@dataclass(eq=False, slots=True)
class Channel:
    """One channel URL, loaded once: its plugin, limits, safe name and service host.

    ``error`` is set (and ``plugin`` None) when Apprise cannot load the URL; a
    send to it then fails like any other, with that reason. ``host`` is the key
    for per-host rate limits and fairness (``"api.telegram.org"``,
    ``"127.0.0.1:8080"``). Slotted, its host shared: a dispatcher keeps one per channel
    (10,000 in a city).
    """

    url: str
    _masked: str | None  # None: worked out from the plugin at the first use (see masked)
    plugin: Any
    limits: ChannelLimits
    host: str
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.plugin is not None

    @property
    def masked(self) -> str:
        """The channel's name for logs, with its secrets hidden.

        Apprise renders the plugin back into a privacy URL for it, a quarter of a
        channel's load: done when a line first names the channel, so a fan-out
        logged at WARNING, where deliveries that went well are not logged, never pays it.
        """
        if self._masked is None:
            self._masked = _mask_plugin(self.plugin, self.url)
        return self._masked


def _measure_for(notify_format: str) -> Any:
    if notify_format == "text":
        return None
    return functools.partial(_converted_length, notify_format)


def _converted_length(notify_format: str, text: str) -> int:
    return len(_apprise.convert(text, notify_format))


def limits_of(plugin: Any) -> ChannelLimits:
    """A plugin's limits as plain data: its own ``body_maxlen``/``title_maxlen``/``notify_format``,
    then :data:`SERVICES` (SMS, overrides).

    Limits depend on the URL, not only the plugin class (Twilio: SMS vs call), so
    the instance is asked. Multi-format plugins declare a tuple ``notify_format``;
    the format used is the one Apprise resolves for a text body, which is what we send.
    """
    module, service = service_for(plugin)
    try:
        body_maxlen = int(plugin.body_maxlen)
    except (AttributeError, TypeError, ValueError):
        body_maxlen = DEFAULT_LIMITS.body_maxlen
    if body_maxlen <= 0:
        body_maxlen = DEFAULT_LIMITS.body_maxlen
    try:
        title_maxlen = max(0, int(plugin.title_maxlen))
    except (AttributeError, TypeError, ValueError):
        title_maxlen = DEFAULT_LIMITS.title_maxlen
    if service.body_maxlen is not None:
        body_maxlen = service.body_maxlen
    if service.title_maxlen is not None:
        title_maxlen = service.title_maxlen
    fmt: Any
    try:
        fmt = plugin.resolve_format("text")
    except Exception:
        fmt = getattr(plugin, "notify_format", "text")
        if isinstance(fmt, (tuple, list)):
            fmt = fmt[0] if fmt else "text"
    fmt_value = str(getattr(fmt, "value", fmt)).lower()
    if fmt_value not in ("text", "markdown", "html"):
        fmt_value = "text"
    try:
        sms = bool(service.sms(plugin))
    except Exception:
        sms = False
    name = str(getattr(plugin, "service_name", None) or module)
    return _limits(body_maxlen, title_maxlen, fmt_value, sms, name)


@functools.lru_cache(maxsize=1024)
def _limits(body_maxlen: int, title_maxlen: int, notify_format: str, sms: bool, name: str) -> ChannelLimits:
    """One shared (immutable) :class:`ChannelLimits` per distinct value: 10,000 channels of one
    service need one, not 10,000 (≈ 130 bytes each with its ``measure``)."""
    return ChannelLimits(
        body_maxlen=body_maxlen,
        title_maxlen=title_maxlen,
        notify_format=notify_format,
        sms=sms,
        name=name,
        measure=_measure_for(notify_format),
    )


def _host_of(plugin: Any, url: str) -> str:
    """The service host a plugin's requests go to: the per-host key for limits and fairness."""
    _, service = service_for(plugin)
    if service.api_host:
        return service.api_host
    host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None)
    if not host:  # e.g. ntfy://topic goes to ntfy.sh
        default = getattr(plugin, "cloud_notify_url", None) or getattr(plugin, "notify_url", None)
        if isinstance(default, str) and "://" in default:
            host = default.split("://", 1)[1].split("/", 1)[0]
    if not host:
        return url.partition("://")[0] or "unknown"
    port = getattr(plugin, "port", None)
    # Interned: thousands of channels of one service share one host string.
    return sys.intern(f"{str(host).lower()}:{port}" if port else str(host).lower())


def load(url: str | SecretStr, *, timeout: float | None = None) -> Channel:
    """Load ``url`` into a :class:`Channel` (never raises; Apprise's complaint is scrubbed into ``error``).

    ``timeout``: seconds for the plugin's socket connect and read timeouts
    (Apprise's default is 4 s each, whatever ``delivery.timeout`` says).
    """
    raw = _raw(url)
    plugin, reason = _apprise.instantiate(raw, timeout)
    if plugin is None:
        why = scrub(reason, raw) if reason else "unsupported or malformed URL"
        return Channel(
            raw,
            _mask_unloadable(raw),
            None,
            DEFAULT_LIMITS,
            raw.partition("://")[0] or "unknown",
            error=f"Apprise cannot load this URL: {why}",
        )
    try:
        limits = limits_of(plugin)
    except Exception:  # never let a limits lookup stop a delivery
        limits = DEFAULT_LIMITS
    return Channel(raw, None, plugin, limits, _host_of(plugin, raw))


def problem(url: str | SecretStr) -> str | None:
    """Why Apprise cannot load ``url`` (masked and scrubbed, for ``alertd check``), or None when it can."""
    raw = _raw(url)
    plugin, reason = _apprise.instantiate(raw)
    if plugin is not None:
        return None
    tail = f": {scrub(reason, raw)}" if reason else ""
    return f"Apprise cannot load {mask(raw)!r}{tail}"


@functools.lru_cache(maxsize=4096)
def limits_for_url(url: str) -> ChannelLimits:
    """Limits for an Apprise URL; :data:`DEFAULT_LIMITS` when Apprise cannot load it."""
    return load(url).limits


class ChannelCache:
    """A bounded LRU of :class:`Channel` objects keyed by URL: a URL is parsed once, not once per send.

    An LRU smaller than one event's fan-out misses on every delivery of the next
    fan-out to the same channels (a cyclic scan evicts each URL just before it is
    needed again): each then costs one load, as on the first alert. The dispatcher
    accepts that beyond a few thousand channels (see
    ``delivery.channel_cache``): ≈ 1 KB kept per channel.
    """

    def __init__(self, size: int = 4096, *, timeout: float | None = None) -> None:
        self._size = max(1, size)
        self._timeout = timeout
        self._items: OrderedDict[str, Channel] = OrderedDict()
        self._lock = threading.Lock()  # loads may run in worker threads (alertd.run.dispatch)

    def peek(self, url: str) -> Channel | None:
        """The cached channel for ``url``, or None (never loads)."""
        return self._items.get(url)

    def get(self, url: str) -> Channel:
        with self._lock:
            channel = self._items.get(url)
            if channel is not None:
                self._items.move_to_end(url)
                return channel
        channel = load(url, timeout=self._timeout)
        with self._lock:
            self._items[url] = channel
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return channel

    def __len__(self) -> int:
        return len(self._items)


# ------------------------------------------------------------------------------------------------
# sending


@dataclass(frozen=True)
class SendResult:
    """What one send did.

    ``detail``: a scrubbed one-line reason when it failed. ``retry_after``:
    seconds the service asked us to wait (a 429 or Telegram's ``retry_after``;
    :data:`DEFAULT_RETRY_AFTER` when Apprise shows the 429 but not the wait).
    ``timed_out``: no answer within the deadline; ``maybe_delivered``: the
    service may have accepted the message anyway (we were waiting for its answer).
    """

    ok: bool
    detail: str = ""
    retry_after: float | None = None
    timed_out: bool = False
    maybe_delivered: bool = False
    took: float = 0.0
    not_sent: bool = False  # never reached the service (its host's lane was busy): no attempt used


def send(
    channel: Channel,
    title: str,
    body: str,
    notify_type: str,
    body_format: str | None = "text",
    *,
    timeout: float | None = None,
) -> SendResult:
    """Send one message to one channel, in this thread (blocking: run it in a worker thread).

    ``timeout`` is only used to tell a socket read timeout ("timed out, may have
    been delivered") from other failures; the sockets' own timeouts were set at
    :func:`load`, and the hard deadline is the caller's (see
    :class:`alertd.channels.sender.Sender`).
    """
    if channel.plugin is None:
        return SendResult(False, channel.error or "channel unusable")
    began = time.monotonic()
    ok, lines = _apprise.notify(channel.plugin, title, body, notify_type, body_format)
    took = time.monotonic() - began
    if ok:
        return SendResult(True, took=took)
    text = (
        "; ".join(dict.fromkeys(line.strip() for line in lines if line.strip())) or "Apprise reported failure"
    )
    retry_after: float | None = None
    if _TOO_MANY.search(text):
        match = _RETRY_AFTER.search(text)
        retry_after = float(match.group(1)) if match else DEFAULT_RETRY_AFTER
    detail = scrub(text, channel.url)[:300]
    slow = timeout is not None and took >= timeout * 0.9 and retry_after is None
    if slow:
        return SendResult(
            False,
            f"timed out after {took:.0f}s (may have been delivered): {detail}"[:300],
            timed_out=True,
            maybe_delivered=True,
            took=took,
        )
    return SendResult(False, detail, retry_after=retry_after, took=took)


def host_rate(host: str, overrides: dict[str, float] | None = None) -> HostRate | None:
    """The send rate for ``host``: ``[delivery.limits]`` first, then :data:`DEFAULT_HOST_RATES`; None = unlimited."""
    bare = host.split(":", 1)[0]
    if overrides:
        for key in (host, bare):
            if key in overrides:
                rate = float(overrides[key])
                return HostRate(rate, max(1.0, rate)) if rate > 0 else None
    return DEFAULT_HOST_RATES.get(host) or DEFAULT_HOST_RATES.get(bare)
