"""What keeps the self-service endpoints from being abused.

* :func:`build_channel` turns a resident's input into an Apprise URL: template
  kinds (ntfy, telegram, email, sms) accept only a strictly validated value that
  is URL-quoted into the operator's template (the resident cannot reach the host
  or the credentials part); ``apprise`` accepts a raw URL only for an allowed scheme.
* :func:`check_target` refuses any raw URL whose host is, or resolves to, a
  loopback, private, link-local, unique-local, CGNAT, multicast, reserved or
  cloud-metadata address (no server-side request forgery through a subscription).
  It resolves at subscription time; a DNS name that later re-points to an
  internal address is a residual risk, which is why ``allowed_schemes`` is empty
  by default and should stay limited to schemes whose target the NGO trusts.
* :class:`RateLimiter` counts in the store (limits survive restarts).
* CSRF: :func:`csrf_token` is an HMAC of the per-browser cookie nonce under the
  per-install secret (signed double submit; the cookie is ``SameSite=Strict``).
* :func:`mask_destination` is the only form of a phone, address or topic that is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from alertd import channels
from alertd.config import CHANNEL_PLACEHOLDERS, SelfServiceConfig
from alertd.logs import mask_phone

__all__ = [
    "METADATA_ADDRESSES",
    "BuiltChannel",
    "RateLimiter",
    "Refusal",
    "build_channel",
    "check_target",
    "client_address",
    "csrf_token",
    "csrf_valid",
    "is_forbidden_address",
    "mask_destination",
]

#: Cloud instance-metadata endpoints (also caught as link-local / unique-local; listed to be explicit).
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)

_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHAT = re.compile(r"^(-?\d{5,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE = re.compile(r"^\+[1-9]\d{7,14}$")
_MAX_URL = 1000
_RESOLVE_TIMEOUT = 3.0


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
    """j***@example.org, +38050…67, ab…, 12…89: enough to recognise, not enough to use."""
    if kind == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind == "sms":
        return mask_phone(value)
    if kind == "apprise":  # scheme and host only: paths and queries of webhooks often hold tokens
        try:
            parts = urlsplit(value)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return channels.mask(value)
        return f"{parts.scheme}://{host}{port}/…"
    if len(value) <= 4:
        return value[:1] + "…"
    return value[:2] + "…" + (value[-2:] if kind == "telegram" else "")


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
    if not pattern.match(value) or (kind == "email" and len(value) > 254):
        raise Refusal(400, error, field="value")
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
    return BuiltChannel(kind, url, f"{kind}:{value}", mask_destination(kind, value), channel.plugin)


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
    channel = channels.load(url)
    if channel.plugin is None:
        raise Refusal(400, "bad_url", field="value")
    return BuiltChannel("apprise", url, f"apprise:{url}", mask_destination("apprise", url), channel.plugin)


# -- server-side request forgery ---------------------------------------------------------------


def is_forbidden_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for anything but a plain public unicast address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        ip in METADATA_ADDRESSES
        or not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


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


async def _resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), _RESOLVE_TIMEOUT)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


async def check_target(built: BuiltChannel, *, allow_private: bool) -> None:
    """Refuse a raw URL whose host is or resolves to a non-public address (raises :class:`Refusal`).

    Template kinds are built on the operator's own host and are not checked.
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
                addresses = await _resolve(host)
            except (OSError, TimeoutError, UnicodeError):
                raise Refusal(400, "unresolvable", field="value", host=host[:64]) from None
        if not addresses or any(is_forbidden_address(a) for a in addresses):
            raise Refusal(400, "private_target", field="value")


# -- rate limits ---------------------------------------------------------------------------------


class RateLimiter:
    """Sliding-window counters kept in the store (``web_rate``), so a restart does not reset them."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def allow(self, bucket: str, key: str, limit: int, window: timedelta, now: datetime) -> bool:
        return self.store.rate_count(bucket, key, now - window) < limit

    def hit(self, bucket: str, key: str, now: datetime) -> None:
        self.store.rate_hit(bucket, key, now)


def client_address(scope_client: tuple[str, int] | None, headers: Any, *, trust_proxy: bool) -> str:
    """The client's address; with ``trust_proxy``, the right-most X-Forwarded-For entry (the one your proxy added)."""
    if trust_proxy:
        forwarded = headers.get("x-forwarded-for", "")
        parts = [p.strip() for p in forwarded.split(",") if p.strip()]
        if parts:
            candidate = parts[-1]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return scope_client[0] if scope_client else "unknown"


# -- CSRF -------------------------------------------------------------------------------------------


def csrf_token(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token or len(nonce) > 128 or len(token) > 128:
        return False
    return hmac.compare_digest(csrf_token(secret, nonce), token)
