"""What keeps the self-service endpoints from being abused.

* :func:`build_channel` turns a resident's input into an Apprise URL: template
  kinds (ntfy, telegram, email, sms) accept only a strictly validated value that
  is URL-quoted into the operator's template (the resident cannot reach the host
  or the credentials part); ``apprise`` accepts a raw URL only for an allowed
  scheme and only with query keys on the per-scheme allowlist
  (:func:`alertd.channels.guard.query_problem`: no ``smtp``/``xmpp`` host
  overrides, no ``rto``/``cto`` timeouts, no ``method``, no ``+header``).
* :func:`check_target` refuses, at sign-up, a raw URL whose host is or resolves
  to a non-public address (a quick answer for the resident). The guarantee is
  :mod:`alertd.channels.guard`: every send to such a URL checks the address it
  actually connects to, after DNS and after redirects.
* :func:`canonical_destination` is the per-destination rate-limit key: one
  mailbox, chat or phone however it is spelt.
* :class:`RateLimiter` counts in the store (limits survive restarts);
  :func:`client_key` makes one client of one IPv6 /64 (IPv4 /32), configurable.
* CSRF: the nonce is issued and signed by the server (:func:`issue_nonce`), so a
  cookie the client made up is never signed; :func:`csrf_token` is an HMAC of it.
* :func:`mask_destination` is the only form of a phone, address or topic that is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from alertd import channels
from alertd.channels.guard import METADATA_ADDRESSES, is_forbidden_address, query_problem
from alertd.config import CHANNEL_PLACEHOLDERS, SelfServiceConfig

if TYPE_CHECKING:
    from alertd.web.selfservice.store import WebStore

__all__ = [
    "BROADCAST_KINDS",
    "METADATA_ADDRESSES",
    "BuiltChannel",
    "RateLimiter",
    "Refusal",
    "build_channel",
    "canonical_destination",
    "check_target",
    "client_address",
    "client_key",
    "csrf_token",
    "csrf_valid",
    "is_broadcast",
    "is_forbidden_address",
    "issue_nonce",
    "mask_destination",
    "nonce_valid",
]

# [0-9], never \d: \d admits every Unicode digit (Arabic-Indic, full-width…).
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHAT = re.compile(r"^(-?[0-9]{5,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE = re.compile(r"^\+[1-9][0-9]{7,14}$")
_MAX_URL = 1000

#: Channel kinds whose messages others can read (a public ntfy topic, a Telegram channel or
#: group, whatever a raw URL posts to): no management link goes there.
BROADCAST_KINDS = frozenset({"ntfy", "apprise"})


class Refusal(Exception):
    """A request refused for a reason the resident is told (``key`` is an i18n message and the API error code)."""

    def __init__(self, status: int, key: str, *, field: str | None = None, **params: object) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.field = field
        self.params = params


@dataclass(frozen=True)
class BuiltChannel:
    """The Apprise URL of a resident's channel, the value it was built from, and its loggable form."""

    kind: str
    url: str
    destination: str  # normalized resident input: the rate-limit key (hashed before storing)
    masked: str
    plugin: Any


def mask_destination(kind: str, value: str) -> str:
    """The loggable form of what a resident typed: the channels seam's one rule.

    A raw URL as :func:`alertd.channels.mask` shows it (host kept, every path
    segment cut to two characters); a topic, chat, address or phone as
    :func:`alertd.channels.mask_value` shows it (``o***@example.org``,
    ``+38050…67``, ``@c…``, ``my…``).
    """
    if kind == "apprise":
        return channels.mask(value)
    return channels.mask_value(value)


def canonical_destination(kind: str, value: str) -> str:
    """One key per real destination, however it is spelt (the per-destination limit's key).

    E-mail: lowercased, ``+tag`` removed from the local part (``J.Doe+x@Example.org``
    and ``j.doe@example.org`` are one mailbox for the limit). Telegram: ``@username``
    lowercased (Telegram ignores case). Phone: E.164 (``+`` and digits only). The
    message itself still goes to the value as the resident typed it.
    """
    value = _normalize(kind, value)
    if kind == "email":
        local, _, domain = value.lower().partition("@")
        return f"email:{local.split('+', 1)[0]}@{domain}"
    if kind == "telegram" and value.startswith("@"):
        return f"telegram:{value.lower()}"
    if kind == "sms":
        return "sms:+" + re.sub(r"[^0-9]", "", value)
    return f"{kind}:{value}"


def is_broadcast(kind: str, value: str) -> bool:
    """True when others may read what is sent there (see :data:`BROADCAST_KINDS`).

    Telegram: a negative id is a group or channel, an ``@name`` a public channel;
    only a positive id (a person's chat with the bot) is private. ``value`` may be
    the raw id or its masked form (both keep the first character).
    """
    if kind in BROADCAST_KINDS:
        return True
    if kind == "telegram":
        return not value.strip()[:1].isdigit()
    return False


def _normalize(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "sms":
        value = re.sub(r"[\s().-]", "", value)
        if value.startswith("00"):
            value = "+" + value[2:]
    elif kind == "email":
        local, sep, domain = value.partition("@")
        value = f"{local}{sep}{domain.lower()}"
    return value


def build_channel(
    cfg: SelfServiceConfig, kind: str, raw_value: str, *, bot_token: str | None = None
) -> BuiltChannel:
    """Validate the resident's value for ``kind`` and build the channel's Apprise URL (no network)."""
    if kind not in cfg.channels:
        raise Refusal(400, "channel_not_offered", field="channel")
    if not isinstance(raw_value, str) or len(raw_value) > _MAX_URL:
        errors = {"ntfy": "bad_topic", "telegram": "bad_chat_id", "email": "bad_email", "sms": "bad_phone"}
        raise Refusal(400, errors.get(kind, "bad_url"), field="value")
    value = _normalize(kind, raw_value)
    if kind == "apprise":
        return _raw_channel(cfg, value)
    checks = {
        "ntfy": (_TOPIC, "bad_topic"),
        "telegram": (_CHAT, "bad_chat_id"),
        "email": (_EMAIL, "bad_email"),
        "sms": (_PHONE, "bad_phone"),
    }
    pattern, error = checks[kind]
    if not pattern.fullmatch(value) or (kind == "email" and len(value) > 254):
        raise Refusal(400, error, field="value")
    if kind == "ntfy" and len(value) < cfg.min_topic_length:
        raise Refusal(400, "short_topic", field="value", min=cfg.min_topic_length)
    template = cfg.template_for(kind)
    if template is None:
        raise Refusal(503, "channel_unavailable", field="channel")
    url = template.replace("{" + CHANNEL_PLACEHOLDERS[kind] + "}", quote(value, safe="@+-_."))
    if "{bot_token}" in url:
        if not bot_token:
            raise Refusal(503, "channel_unavailable", field="channel")
        url = url.replace("{bot_token}", bot_token)
    channel = channels.load(url)
    if channel.plugin is None:
        raise Refusal(503, "channel_unavailable", field="channel")
    return BuiltChannel(
        kind, url, canonical_destination(kind, value), mask_destination(kind, value), channel.plugin
    )


def _raw_channel(cfg: SelfServiceConfig, url: str) -> BuiltChannel:
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if (
        not sep
        or not rest
        or not re.fullmatch(r"[a-z][a-z0-9+.-]{0,31}", scheme)
        or any(c.isspace() for c in url)
    ):
        raise Refusal(400, "bad_url", field="value")
    if scheme not in cfg.allowed_schemes:
        raise Refusal(400, "scheme_not_allowed", field="value", scheme=scheme)
    bad_key = query_problem(url, cfg.allowed_query_keys.get(scheme, ()))
    if bad_key is not None:
        raise Refusal(400, "query_key_not_allowed", field="value", name=bad_key)
    channel = channels.load(url)
    if channel.plugin is None:
        raise Refusal(400, "bad_url", field="value")
    return BuiltChannel("apprise", url, f"apprise:{url}", mask_destination("apprise", url), channel.plugin)


# -- server-side request forgery ---------------------------------------------------------------


def _hosts(url: str, plugin: Any) -> list[str]:
    hosts: list[str] = []
    try:
        parsed = urlsplit(url).hostname
    except ValueError:
        parsed = None
    for host in (parsed, getattr(plugin, "host", None)):
        if isinstance(host, str) and host.strip("[]") and host.strip("[]").lower() not in hosts:
            hosts.append(host.strip("[]").lower())
    return hosts


async def check_target(
    built: BuiltChannel, *, allow_private: bool, resolve: Callable[[str], Awaitable[list[str]]]
) -> None:
    """Refuse a raw URL whose host is or resolves to a non-public address (raises :class:`Refusal`).

    ``resolve`` is the visitors' own lookup (:meth:`VisitorWork.resolve`), never the
    loop's default executor. This is the early, friendly answer; the connect-time
    guard re-checks at every send. Template kinds are built on the operator's own
    host and are not checked.
    """
    if built.kind != "apprise" or allow_private:
        return
    hosts = _hosts(built.url, built.plugin)
    if not hosts:
        raise Refusal(400, "bad_url", field="value")
    for host in hosts:
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            if host in ("localhost", "localhost.localdomain") or host.endswith(
                (".localhost", ".local", ".internal")
            ):
                raise Refusal(400, "private_target", field="value") from None
            try:
                addresses = await resolve(host)
            except (OSError, TimeoutError, UnicodeError):
                raise Refusal(400, "unresolvable", field="value", host=host[:64]) from None
        if not addresses or any(is_forbidden_address(a) for a in addresses):
            raise Refusal(400, "private_target", field="value")


# -- rate limits ---------------------------------------------------------------------------------


class RateLimiter:
    """Sliding-window counters kept in the store (``web_rate``), so a restart does not reset them."""

    def __init__(self, store: WebStore) -> None:
        self.store = store

    def allow(self, bucket: str, key: str, limit: int, window: timedelta, now: datetime) -> bool:
        return self.store.rate_count(bucket, key, now - window) < limit

    def hit(self, bucket: str, key: str, now: datetime) -> None:
        self.store.rate_hit(bucket, key, now)


def client_address(scope_client: tuple[str, int] | None, headers: Any, *, hops: int = 0) -> str:
    """The client's address.

    ``hops`` is how many proxies of yours stand in front of alertd, each appending
    the peer it saw to ``X-Forwarded-For``: the client is the entry ``hops`` from the
    right. Entries left of it were written by the client and are never trusted; a
    header with fewer entries than ``hops`` (or a garbled one) counts as the peer itself.
    """
    peer = scope_client[0] if scope_client else "unknown"
    if hops <= 0:
        return peer
    forwarded = ",".join(headers.getlist("x-forwarded-for")) if hasattr(headers, "getlist") else ""
    forwarded = forwarded or headers.get("x-forwarded-for", "")
    parts = [p.strip() for p in forwarded.split(",") if p.strip()]
    if len(parts) < hops:
        return peer
    try:
        return str(ipaddress.ip_address(parts[-hops]))
    except ValueError:
        return peer


def client_key(address: str, *, v4_prefix: int = 32, v6_prefix: int = 64) -> str:
    """The unit limits count in: the client's IPv4 /32 or IPv6 /64 (configurable).

    One IPv6 host usually owns a whole /64, so counting full addresses would give
    it 2^64 identities.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = v4_prefix if ip.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# -- CSRF -------------------------------------------------------------------------------------------


def issue_nonce(secret: bytes) -> str:
    """A fresh CSRF nonce, signed so that only nonces this server issued are ever accepted."""
    nonce = secrets.token_urlsafe(24)
    mac = hmac.new(secret, b"nonce:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{nonce}.{mac}"


def nonce_valid(secret: bytes, value: str | None) -> bool:
    """True for a cookie value :func:`issue_nonce` made (a client-chosen one is refused)."""
    if not value or len(value) > 128:
        return False
    nonce, sep, mac = value.partition(".")
    if not sep or not nonce or not mac:
        return False
    want = hmac.new(secret, b"nonce:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return hmac.compare_digest(want, mac)


def csrf_token(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, nonce: str | None, token: str | None) -> bool:
    """The form's token matches a server-issued nonce cookie."""
    if not nonce_valid(secret, nonce) or not token or len(token) > 128:
        return False
    assert nonce is not None
    return hmac.compare_digest(csrf_token(secret, nonce), token)
