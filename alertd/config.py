"""alertd's configuration: one TOML file, ``ALERTD_*`` environment overrides, secret files.

Why it is shaped this way:

* **One place decides what is valid.** Everything that can be wrong with a
  configuration is found at load time and reported *together* as one
  :class:`~alertd.errors.ConfigError` whose lines each name the file and the key
  (``alertd.toml: sources[0].interval: ...``). A daemon that tells people when to
  take shelter must not start half-configured, and an operator fixing a file
  should not have to run ``alertd check`` once per mistake.
* **Priority** is ``init kwargs > environment > TOML file > defaults``, built with
  pydantic-settings sources. The file path and the environment mapping are passed
  per call (:func:`load_settings` binds them into a throw-away subclass), so there
  is no module-level mutable state and tests never need to touch ``os.environ``.
* **Secrets** (API tokens, Apprise URLs that carry tokens and phone numbers) are
  ``SecretStr`` and can live in files (``token_file``, ``urls_file``, or systemd's
  ``$CREDENTIALS_DIRECTORY/<source>.token``). No error text or log line built here
  ever contains one: Apprise URLs are shown through :func:`alertd.channels.mask`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from alertd.core import topics as core_topics
from alertd.core.languages import Language
from alertd.core.model import AlertKind, RegionLevel
from alertd.core.regions import RegionRegistry
from alertd.core.subscribers import RegionLookup, check_advisories, check_regions
from alertd.errors import ConfigError
from alertd.sources import REGISTRY

__all__ = [
    "ENV_CONFIG",
    "ENV_PREFIX",
    "DeliveryConfig",
    "HttpConfig",
    "OperatorsConfig",
    "RegionLookup",
    "SelfServiceConfig",
    "Settings",
    "SourceConfig",
    "SourceType",
    "StoreConfig",
    "SubscriberConfig",
    "TopicConfig",
    "TrackerConfig",
    "load_settings",
    "semantic_problems",
    "summary",
    "topic_rule",
]

ENV_PREFIX = "ALERTD_"
#: The environment variable naming the config file when no ``--config`` is given.
ENV_CONFIG = "ALERTD_CONFIG"
#: systemd's ``LoadCredential=`` directory; relative secret paths resolve against it.
ENV_CREDENTIALS = "CREDENTIALS_DIRECTORY"


def _known_source_type(value: str) -> str:
    """A type is a key of :data:`alertd.sources.REGISTRY`; the message lists the known ones."""
    if value not in REGISTRY:
        raise ValueError(f"unknown source type {value!r} (known: {', '.join(REGISTRY)})")
    return value


#: A feed type name: one of the modules in ``alertd/sources/`` (see ``alertd.sources.REGISTRY``).
SourceType = Annotated[str, AfterValidator(_known_source_type)]

_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"

SourceName = Annotated[str, StringConstraints(pattern=_NAME_PATTERN, max_length=64)]
CountryCode = Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Z]{2}$")]


class _Frozen(BaseModel):
    """Frozen and strict about unknown keys: a typo must fail loudly, not be ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceConfig(_Frozen):
    """One upstream feed alertd polls."""

    name: SourceName = Field(description="Unique name, [a-z0-9][a-z0-9._-]*; appears in logs and events.")
    type: SourceType = Field(description="Which parser and fetch parameters apply.")
    url: str | None = Field(
        default=None,
        description="Endpoint; defaults per type (the type's SourceSpec). Required for rss and cap.",
    )
    token: SecretStr | None = Field(default=None, description="API token (alerts_in_ua, ukrainealarm).")
    token_file: Path | None = Field(
        default=None,
        description="File holding the token; relative paths resolve against $CREDENTIALS_DIRECTORY "
        "if set, else the config file's folder.",
    )
    interval: float = Field(
        default=10.0, ge=1, le=86400, description="Seconds between polls (rss/cap default 300)."
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds allowed per request.")
    max_bytes: int = Field(default=5_000_000, gt=0, description="Response size cap in bytes.")
    jitter: float = Field(default=0.5, ge=0, le=3600, description="Seconds of random jitter on the schedule.")
    allowance: float | None = Field(
        default=None,
        gt=0,
        description="Seconds a source may fail before it counts as down; default max(60, 6*interval).",
    )
    country: CountryCode | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country this advisory source is about (routing)."
    )
    enabled: bool = Field(default=True, description="A disabled source is validated but never polled.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (e.g. Referer).")
    end_hold: float | None = Field(
        default=None,
        gt=0,
        description="Seconds: only an explicit end record ends this source's alerts, or this long without "
        "the alert. Default: the type's (oref: 3600), else unset (two good polls without it end it).",
    )

    webhook_secret: SecretStr | None = Field(
        default=None,
        description="ukrainealarm only: the unguessable part of /hooks/ukrainealarm/<secret> "
        "(16+ of A-Z a-z 0-9 _ -); set it to accept pushes. The upstream does not sign them.",
    )
    push_interval: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="Seconds between safety-net polls while pushes arrive (back to interval when they stop).",
    )
    push_silence: float = Field(
        default=600.0,
        ge=1,
        le=86400,
        description="Seconds without a push after which polling returns to interval.",
    )

    @property
    def effective_end_hold(self) -> float | None:
        """The configured hold, else the type's own (see ``SourceSpec.end_hold``)."""
        if self.end_hold is None:
            return REGISTRY[self.type].end_hold
        return self.end_hold

    @model_validator(mode="before")
    @classmethod
    def _per_type_interval(cls, data: Any) -> Any:
        """Give each type its own default interval (rss/cap: 300 s) unless one was written explicitly."""
        if isinstance(data, Mapping) and "interval" not in data:
            spec = REGISTRY.get(str(data.get("type")))
            if spec is not None:
                return {**data, "interval": spec.default_interval}
        return data

    @field_validator("webhook_secret")
    @classmethod
    def _unguessable(cls, value: SecretStr | None) -> SecretStr | None:
        """The secret is the push endpoint's only protection: long, and safe in a URL path."""
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", value.get_secret_value()):
            raise ValueError("must be 16 to 128 of A-Z a-z 0-9 _ - (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """Only http(s): the fetcher speaks nothing else, better to say so at load time."""
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def effective_url(self) -> str | None:
        """The URL actually polled: the configured one or the type's default."""
        return self.url or REGISTRY[self.type].default_url

    @property
    def effective_allowance(self) -> float:
        """Seconds of failure tolerated before operators hear the source is down."""
        if self.allowance is not None:
            return self.allowance
        return max(60.0, 6 * self.interval)


class SubscriberConfig(_Frozen):
    """A person or group that hears about alerts in some regions through some channels."""

    name: str = Field(min_length=1, max_length=128, description="Unique name; appears in logs.")
    regions: list[str] = Field(
        default_factory=list, description='Region codes from the registry, e.g. "UA-30" or "ua:6293".'
    )
    kinds: list[AlertKind] = Field(
        default_factory=list, description="Alert kinds to hear; empty: every kind."
    )
    advisories: list[str] = Field(
        default_factory=list,
        description="Source names or ISO country codes whose advisories this subscriber hears.",
    )
    language: Language | None = Field(default=None, description="Message language; None: the global one.")
    urls: list[SecretStr] = Field(
        default_factory=list, description="Apprise URLs (secrets: they hold tokens and phone numbers)."
    )
    urls_file: Path | None = Field(
        default=None, description="File with one Apprise URL per line, appended to urls."
    )

    @field_validator("regions", "advisories")
    @classmethod
    def _shared_codes(cls, codes: list[str]) -> list[str]:
        """One string object per distinct code, however many residents name it.

        The TOML parser makes a new string for every occurrence: 10,000 residents
        following all 25 oblasts kept 250,000 copies (≈ 14 MB) of 25 codes.
        """
        return [sys.intern(_own(code)) for code in codes]

    @field_validator("name")
    @classmethod
    def _own_name(cls, name: str) -> str:
        return _own(name)

    @field_validator("urls")
    @classmethod
    def _own_urls(cls, urls: list[SecretStr]) -> list[SecretStr]:
        return [SecretStr(_own(url.get_secret_value())) for url in urls]


def _own(text: str) -> str:
    """A copy of ``text`` that shares no memory with the parsed file.

    A residents' list is kept for the daemon's life, the TOML parse it came from is
    garbage at once. Strings kept from the parse would pin the parse's memory in the
    process (Python returns its object memory to the system only in whole arenas):
    with 10,000 residents the daemon stayed ≈ 19 MB larger after start-up than with
    copies made while the parse was still alive.
    """
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


class TopicConfig(_Frozen):
    """A broadcast topic: one channel per place that any number of residents follow (DESIGN §10).

    Either a URL template applied to every place at ``levels`` (placeholders
    ``{code}``, ``{slug}``, ``{oblast_code}``) or one URL for an explicit list of
    ``places``. alertd posts each alert once per affected place; the service (an
    ntfy server, a Telegram channel) carries it to everyone following.
    """

    name: str = Field(
        min_length=1, max_length=64, pattern=_NAME_PATTERN, description="Unique name; appears in logs."
    )
    url: SecretStr | None = Field(
        default=None,
        description='Apprise URL or template, e.g. "ntfys://ntfy.example.org/alerts-{code}" (a secret: '
        "it may hold a bot token).",
    )
    url_file: Path | None = Field(default=None, description="File holding the URL (instead of url).")
    levels: list[Literal["oblast", "raion", "hromada", "city"]] = Field(
        default_factory=list, description="Template mode: apply the URL to every place at these levels."
    )
    places: list[str] = Field(
        default_factory=list,
        description='Explicit mode: region codes this one channel is for, e.g. ["UA-30"].',
    )
    kinds: list[AlertKind] = Field(
        default_factory=list, description="Alert kinds to post; empty: every kind."
    )
    language: Language | None = Field(default=None, description="Message language; None: the global one.")
    follow: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Public link residents follow (same placeholders); default: derived for ntfy and "
        "public Telegram channels.",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> TopicConfig:
        if bool(self.levels) == bool(self.places):
            raise ValueError(
                "set exactly one of levels (a URL template per place) and places (an explicit list)"
            )
        if self.url is not None and self.url_file is not None:
            raise ValueError("set url or url_file, not both")
        return self


class OperatorsConfig(_Frozen):
    """Where alertd reports on itself: sources down, dead letters, recovery."""

    urls: list[SecretStr] = Field(default_factory=list, description="Apprise URLs for operator notices.")
    urls_file: Path | None = Field(default=None, description="File with one Apprise URL per line.")
    language: Language = Field(default="en", description="Language of operator notices.")


class HttpConfig(_Frozen):
    """The small HTTP server for /healthz and /metrics."""

    enabled: bool = Field(default=True, description="Serve /healthz and /metrics.")
    listen: str = Field(default="127.0.0.1:9177", description="host:port to bind; [v6addr]:port for IPv6.")
    max_connections: int = Field(
        default=1024,
        ge=16,
        le=100_000,
        description="Open client connections at most; at the cap the oldest one still sending its request "
        "head is dropped. Clamped at start-up below the process's descriptor limit.",
    )
    header_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a client has to send a complete request head."
    )
    keep_alive: float = Field(
        default=5.0, gt=0, le=300, description="Seconds an idle keep-alive connection stays."
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        """Reject a bad bind address now rather than when the daemon is already running."""
        _split_host_port(value)
        return value

    @property
    def host(self) -> str:
        return _split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_host_port(self.listen)[1]


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {value!r}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"bad IPv6 host in {value!r}")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 hosts must be bracketed, e.g. [::1]:9177, got {value!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 1-65535 in {value!r}")
    return host, int(port_text)


class CapOutConfig(_Frozen):
    """alertd's alerts as an OASIS CAP 1.2 feed for others (``/cap/alerts.atom``); off by default."""

    enabled: bool = Field(default=False, description="Serve /cap/alerts.atom and /cap/<identifier>.xml.")
    sender: str = Field(
        default="alertd",
        pattern=r"^[^\s,<&]+$",
        max_length=200,
        description="CAP <sender>: globally unique, e.g. alerts@your-ngo.org (no spaces, commas, < or &).",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+",
        description="Base URL readers reach the feed at (links in the index); default: the request's own.",
    )
    window: float = Field(
        default=86400.0, ge=3600, le=30 * 86400, description="Seconds an ended alert stays in the index."
    )
    max_age: int = Field(
        default=10, ge=0, le=3600, description="Cache-Control max-age of the index, in seconds."
    )


class WebhooksConfig(_Frozen):
    """Pushes from upstreams (ukrainealarm webhooks) received on the HTTP server."""

    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+",
        description="Base URL the upstream reaches this HTTP server at (a proxy); "
        "`alertd webhooks register` registers <public_url>/hooks/ukrainealarm/<secret>.",
    )
    max_body: int = Field(
        default=65536, ge=1024, le=1_048_576, description="Push body cap in bytes (larger: 413)."
    )


class TrackerConfig(_Frozen):
    """Knobs of the alert-correctness rules (DESIGN §3)."""

    announce_existing: bool = Field(
        default=False, description="Announce alerts already active at a fresh install's first poll."
    )
    end_confirmations: int = Field(
        default=2, ge=1, le=100, description="Consecutive good polls without an alert before it ends."
    )
    suspicious_drop: int = Field(
        default=10,
        ge=0,
        description="A state feed dropping from >= this many alerts to zero in one poll is held as "
        "suspicious until confirmed (0 disables).",
    )


class DeliveryConfig(_Frozen):
    """How the dispatcher drains the outbox."""

    concurrency: int = Field(default=64, ge=1, le=10_000, description="Deliveries in flight at once.")
    channel_cache: int = Field(
        default=2048,
        ge=64,
        le=1_000_000,
        description="Loaded channels kept (about 1 KB each); a fan-out to more reloads them (about 0.1 ms each).",
    )
    max_attempts: int = Field(default=8, ge=1, le=1000, description="Attempts before a delivery is dead.")
    retry_base: float = Field(default=2.0, gt=0, description="Seconds; base of the exponential backoff.")
    retry_max: float = Field(default=300.0, gt=0, description="Seconds; cap on one backoff delay.")
    start_max_age: float = Field(
        default=1800.0, gt=0, description="A start notice older than this (seconds) is dead-lettered."
    )
    timeout: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="Seconds allowed per delivery: Apprise's socket connect and read timeouts, and a hard "
        "deadline on the whole send.",
    )
    end_max_age: float = Field(
        default=21600.0,
        gt=0,
        description="An end notice still failing this many seconds after the end is dead-lettered "
        "(operators are told) instead of retried further.",
    )
    max_uncertain: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Sends of one notice that may have reached the channel (timed out after it was "
        "sent) before it is dead-lettered rather than risk repeating it again.",
    )
    limits: dict[str, float] = Field(
        default_factory=dict,
        description='Requests per second per service host, e.g. "api.telegram.org" = 25 (0 = unlimited); '
        "hosts not named use alertd.channels.services.DEFAULT_HOST_RATES.",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> DeliveryConfig:
        if self.retry_max < self.retry_base:
            raise ValueError("retry_max must be >= retry_base")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(value: Any) -> Any:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"90s"`` or a number of seconds, as a timedelta."""
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m.group(1)) * _DURATION_UNITS[m.group(2)])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


class StoreConfig(_Frozen):
    """Where and how alertd keeps its state (``[store]``).

    Default: one SQLite file in ``state_dir``. With ``url`` (or ``url_file``, or
    ``$CREDENTIALS_DIRECTORY/store.url``) a PostgreSQL database that several instances
    share (README "Two servers"); the URL holds a password, so it is a secret.
    """

    url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/db — a PostgreSQL store shared by several "
        "instances (pip install 'alertd[postgres]'); default: SQLite in state_dir.",
    )
    url_file: Path | None = Field(
        default=None,
        description="File holding the PostgreSQL URL; relative paths resolve against $CREDENTIALS_DIRECTORY "
        "when set, else the config file's directory.",
    )
    instance: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="This instance's name in poll leases, outbox claims, /healthz, /metrics and status; "
        "unique per running instance. Default: host name and process id.",
    )
    claim_lease: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Seconds an instance's claim on outbox rows lasts unless renewed (PostgreSQL): a dead "
        "instance's unsent rows go out from another instance after this long.",
    )

    retention: timedelta = Field(
        default=timedelta(days=30),
        description="How long delivered/dead notices, their attempts and ended alerts' events are kept: "
        '"30d", "12h", "90s" or seconds. The history duplicate detection needs is always kept.',
    )
    prune_interval: float = Field(
        default=600.0, gt=0, description="Seconds between retention runs (each deletes in small batches)."
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (leave it unset for SQLite in state_dir)")
        return value

    @field_validator("retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("retention")
    @classmethod
    def _positive_retention(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("retention must be positive")
        return value


#: Channel kinds a resident may choose on the self-service page (alertd.web.selfservice).
ChannelKind = Literal["ntfy", "telegram", "email", "sms", "apprise"]
#: The placeholder each channel kind's template receives from the resident's input.
CHANNEL_PLACEHOLDERS: dict[str, str] = {
    "ntfy": "topic",
    "telegram": "chat_id",
    "email": "email",
    "sms": "phone",
}
#: Templates used when the operator gives none for a kind.
DEFAULT_CHANNEL_TEMPLATES: dict[str, str] = {"ntfy": "ntfys://ntfy.sh/{topic}"}
#: Values used to check that a template loads in Apprise (``alertd check``).
_PLACEHOLDER_SAMPLES: dict[str, str] = {
    "topic": "alertd-check-topic",
    "chat_id": "-1001234567890",
    "email": "resident@example.org",
    "phone": "+380501234567",
    "bot_token": "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
}


class SelfServiceConfig(_Frozen):
    """Residents subscribe themselves on a web page (``alertd.web.selfservice``); off by default.

    Each offered channel kind is built from the resident's input (a topic, a chat
    id, an address, a phone number) by an operator-written Apprise URL template,
    so the NGO's credentials never reach the resident. ``apprise`` (a raw URL from
    the resident) is accepted only for schemes in ``allowed_schemes`` (default: none).
    """

    enabled: bool = Field(
        default=False, description="Serve the self-service page and API on the http server."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL residents reach the page at; used in every link (required if enabled).",
    )
    channels: list[ChannelKind] = Field(
        default_factory=lambda: list[ChannelKind](["ntfy"]),
        description="Channel kinds offered to residents, in page order.",
    )
    templates: dict[ChannelKind, SecretStr] = Field(
        default_factory=dict,
        description="Apprise URL template per kind: ntfy {topic}, telegram {chat_id} (+ {bot_token}), "
        "email {email}, sms {phone}; ntfy defaults to ntfys://ntfy.sh/{topic}. Secrets: they hold the "
        "NGO's credentials.",
    )
    bot_token: SecretStr | None = Field(default=None, description="Telegram bot token for {bot_token}.")
    bot_token_file: Path | None = Field(default=None, description="File holding the Telegram bot token.")
    allowed_schemes: list[str] = Field(
        default_factory=list, description='Apprise schemes a resident may give as a raw URL (kind "apprise").'
    )
    allow_private_targets: bool = Field(
        default=False, description="Accept raw URLs resolving to loopback/private addresses (tests only)."
    )
    allowed_query_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per scheme, query keys a raw URL may carry beyond format, overflow, emojis, priority, "
        'tags, title, image (e.g. json = ["+X-Token"]). Host, timeout, method and header keys are refused '
        "unless listed here.",
    )
    visitor_threads: int = Field(
        default=4, ge=1, le=64, description="Threads for visitor-triggered sends and lookups (own pool)."
    )
    per_client_inflight: int = Field(
        default=1, ge=1, le=64, description="Visitor-triggered sends in flight per client prefix."
    )
    send_deadline: float = Field(
        default=10.0, gt=0, le=120, description="Seconds a confirmation send may take in total (hard cut)."
    )
    admin_token: SecretStr | None = Field(default=None, description="Bearer token for /api/admin/*.")
    admin_token_file: Path | None = Field(default=None, description="File holding the admin token.")
    pending_ttl: float = Field(default=1800.0, ge=60, le=7 * 86400, description="Seconds a code stays valid.")
    max_pending: int = Field(default=500, ge=1, description="Cap on unconfirmed subscriptions at once.")
    pending_per_prefix: int = Field(
        default=5,
        ge=1,
        description="Unconfirmed subscriptions at once per client prefix (see client_prefix_*).",
    )
    client_prefix_v4: int = Field(default=32, ge=8, le=32, description="IPv4 prefix length one client is.")
    client_prefix_v6: int = Field(default=64, ge=16, le=128, description="IPv6 prefix length one client is.")
    min_topic_length: int = Field(
        default=10, ge=1, le=64, description="Shortest ntfy topic accepted (short topics are guessable)."
    )
    per_client_per_hour: int = Field(
        default=10, ge=1, description="New subscriptions per client address per hour."
    )
    per_destination_per_day: int = Field(
        default=3, ge=1, description="Confirmation messages per destination (phone, address, chat) per day."
    )
    code_length: int = Field(default=6, ge=6, le=10, description="Digits in a confirmation code.")
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="Wrong codes before a pending subscription is void."
    )
    max_body: int = Field(default=16384, ge=1024, le=1_048_576, description="Request body cap in bytes.")
    max_regions: int = Field(default=10, ge=1, le=100, description="Regions one subscription may name.")
    trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Proxies of yours in front of alertd: the client address is the X-Forwarded-For entry "
        "this many from the right (0: ignore the header).",
    )

    def template_for(self, kind: str) -> str | None:
        """The Apprise URL template of a channel kind: the configured one, else the default (ntfy only)."""
        secret = self.templates.get(cast(ChannelKind, kind))  # an unknown kind simply has none
        if secret is not None:
            return secret.get_secret_value()
        return DEFAULT_CHANNEL_TEMPLATES.get(kind)

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("allowed_schemes")
    @classmethod
    def _lower_schemes(cls, value: list[str]) -> list[str]:
        return [v.strip().lower().removesuffix("://") for v in value if v.strip()]


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`, not directly.

    ``Settings()`` on its own reads only init kwargs and ``os.environ``; the
    TOML file and a caller-supplied environment are bound per call by
    :func:`load_settings`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    state_dir: Path = Field(default=Path("/var/lib/alertd"), description="Where the SQLite state lives.")
    language: Language = Field(default="uk", description="Default message language.")
    timezone: str = Field(default="Europe/Kyiv", description="IANA zone for local times in messages.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field(default="text", description="Human text or JSON lines.")
    sources: list[SourceConfig] = Field(default_factory=list, description="Upstream feeds to poll.")
    subscribers: list[SubscriberConfig] = Field(default_factory=list, description="Who hears what.")
    topics: list[TopicConfig] = Field(
        default_factory=list, description="Broadcast topics: one post per place, any number of listeners."
    )
    operators: OperatorsConfig = Field(default_factory=OperatorsConfig, description="Operator channels.")
    http: HttpConfig = Field(default_factory=HttpConfig, description="/healthz and /metrics server.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Alert-correctness knobs.")
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig, description="Outbox dispatcher knobs.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="State store and retention.")
    selfservice: SelfServiceConfig = Field(
        default_factory=SelfServiceConfig, description="Residents' self-service page and API."
    )
    webhooks: WebhooksConfig = Field(
        default_factory=WebhooksConfig, description="Upstream pushes (webhooks) received over HTTP."
    )
    cap_out: CapOutConfig = Field(
        default_factory=CapOutConfig, description="CAP 1.2 feed of alertd's alerts for others."
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description='Jinja2 template overrides keyed "<status>.<language>", e.g. "started.uk".',
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """Local times in an air-raid notice must be right; an unknown zone is an error, not UTC."""
        problem = _timezone_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def db_path(self) -> Path:
        """The SQLite state file."""
        return self.state_dir / "alertd.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """No .env file and no secrets_dir: secrets come through token_file/urls_file instead."""
        return init_settings, env_settings


def _timezone_problem(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {value!r} (use an IANA name such as 'Europe/Kyiv')"
    return None


class _MappingEnvSource(EnvSettingsSource):
    """EnvSettingsSource reading a given mapping instead of ``os.environ``.

    Lets callers (tests, ``alertd check`` with a synthetic environment) load
    settings without mutating process-wide state.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _bound_settings_class(path: Path | None, environ: Mapping[str, str]) -> type[Settings]:
    """A Settings subclass whose sources are (init kwargs, ``environ``, TOML at ``path``).

    pydantic-settings builds sources from the class, so binding per call means a
    class per call; it keeps the path and environment out of any global.
    """

    class _BoundSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [
                init_settings,
                _MappingEnvSource(settings_cls, environ),
            ]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    _BoundSettings.__name__ = _BoundSettings.__qualname__ = "Settings"
    return _BoundSettings


# ---------------------------------------------------------------------------------------------
# loading


def load_settings(
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    registry: RegionLookup | None = None,
    validate_urls: bool = True,
    **overrides: Any,
) -> Settings:
    """Load, resolve secret files and validate; raise one ConfigError listing every problem.

    ``path`` is the ``--config`` file; when None, ``$ALERTD_CONFIG`` (from ``env``)
    names it, and without either only the environment and defaults apply. ``env``
    defaults to ``os.environ``. ``registry`` defaults to the shipped region
    registry (loaded only if some subscriber names regions). ``overrides`` are
    init kwargs and win over everything. ``validate_urls`` toggles the Apprise
    check, which tests of unrelated parts may want off.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None and environ.get(ENV_CONFIG):
        path = Path(environ[ENV_CONFIG])
    where = f"{path}: " if path is not None else ""
    shown = str(path) if path is not None else None

    if path is not None:
        if not path.exists():
            raise ConfigError([f"{path}: cannot read config file: No such file or directory"], shown)
        if not path.is_file():
            raise ConfigError([f"{path}: cannot read config file: not a regular file"], shown)

    # Not prefixed with the file: these come from the environment, not from it.
    problems = _unknown_env_problems(environ)
    kept: dict[str, list[int]] | None = None  # set when checking what was left of an invalid file
    cls = _bound_settings_class(path, environ)
    try:
        settings: Settings = cls(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([*problems, f"{path}: invalid TOML: {exc}"], shown) from None
    except OSError as exc:
        raise ConfigError(
            [*problems, f"{path}: cannot read config file: {exc.strerror or exc}"], shown
        ) from None
    except SettingsError as exc:
        # e.g. ALERTD_SOURCES holding invalid JSON; the message names the field, not the value.
        raise ConfigError([*problems, where + _settings_error_text(exc)], shown) from None
    except ValidationError as exc:
        problems += [where + line for line in _validation_lines(exc)]
        # Keep going on what is valid, so one run reports every problem it can find
        # (an unknown key AND an unknown region), not one stage at a time.
        recovered = _without_invalid(path, overrides, exc)
        if recovered is None:
            raise ConfigError(problems, shown) from None
        settings, kept = recovered

    base_dir = path.parent if path is not None else Path.cwd()
    settings, secret_problems = _resolve_secrets(settings, environ, base_dir)
    if registry is None and any(s.regions for s in settings.subscribers):
        from alertd.core.regions import RegionRegistry

        registry = RegionRegistry.load()
    later = secret_problems + semantic_problems(settings, registry, validate_urls=validate_urls)
    # What was checked after invalid entries were left out names them as the file numbers them.
    problems += [where + (_renumbered(line, kept) if kept is not None else line) for line in later]
    if problems:
        raise ConfigError(problems, shown)
    return settings


def _renumbered(line: str, kept: Mapping[str, list[int]]) -> str:
    """``subscribers[0].regions…`` of the checked remainder → the entry's index in the file."""
    m = re.match(r"^(\w+)\[(\d+)\]", line)
    if m and m.group(1) in kept and int(m.group(2)) < len(kept[m.group(1)]):
        original = kept[m.group(1)][int(m.group(2))]
        return f"{m.group(1)}[{original}]" + line[m.end() :]
    return line


def _without_invalid(
    path: Path | None, overrides: Mapping[str, Any], exc: ValidationError
) -> tuple[Settings, dict[str, list[int]]] | None:
    """The file's settings with every invalid part left out, for the semantic checks only.

    Each reported location is removed (a key, or a list entry whose key cannot be removed
    alone, such as a missing required one) and the rest validated again, a few rounds at
    most. Returns the settings and, per top-level list, the file index of each entry kept
    (so problems name the entry as the file numbers it). None when nothing valid remains or
    the file cannot be read again. The result is never run: ``load_settings`` raises the
    collected problems either way.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
    raw.update(overrides)
    kept = {key: list(range(len(value))) for key, value in raw.items() if isinstance(value, list)}
    cls = _bound_settings_class(None, {})
    error: ValidationError = exc
    for _ in range(6):
        for err in error.errors(include_url=False, include_input=False):
            _drop(raw, tuple(err["loc"]))
        for key, value in raw.items():
            if key in kept and isinstance(value, list):
                kept[key] = [i for i, v in zip(kept[key], value, strict=True) if v is not _DROPPED]
        raw = _compact(raw)
        try:
            return cls(**raw), kept
        except ValidationError as again:
            error = again
        except (SettingsError, ValueError):
            return None
    return None


_DROPPED = object()


def _compact(data: Any) -> Any:
    """``data`` without the list entries :func:`_drop` marked."""
    if isinstance(data, dict):
        return {k: _compact(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_compact(v) for v in data if v is not _DROPPED]
    return data


def _drop(data: Any, loc: tuple[int | str, ...]) -> None:
    """Remove ``loc`` from nested dicts/lists; if it is not there (a missing key), its parent."""
    while loc:
        parent: Any = data
        for part in loc[:-1]:
            in_dict = isinstance(parent, dict) and part in parent
            in_list = isinstance(parent, list) and isinstance(part, int) and 0 <= part < len(parent)
            if not (in_dict or in_list):
                return
            parent = parent[part]
        last = loc[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
            return
        if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
            parent[last] = _DROPPED  # keep the other entries' indexes this round; compacted after
            return
        loc = loc[:-1]


def _unknown_env_problems(environ: Mapping[str, str]) -> list[str]:
    """Top-level ``ALERTD_*`` names that match no setting (nested ones pydantic catches)."""
    known = set(Settings.model_fields)
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == ENV_CONFIG:
            continue
        top = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if top not in known:
            problems.append(f"{name}: unknown setting (environment variable)")
    return problems


def _settings_error_text(exc: SettingsError) -> str:
    text = str(exc)
    m = re.search(r'field "([^"]+)"', text)
    if m:
        return f"{m.group(1)}: cannot parse the environment value (expected JSON)"
    return f"cannot read settings: {text}"


def _format_loc(loc: Sequence[int | str]) -> str:
    """('sources', 0, 'interval') -> 'sources[0].interval' — the spelling operators see in TOML."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _validation_lines(exc: ValidationError) -> list[str]:
    """One ``key: message`` line per pydantic error; messages never echo input values."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{_format_loc(err['loc'])}: {msg}")
    return lines


# ---------------------------------------------------------------------------------------------
# secret files


def _secret_path(value: Path, environ: Mapping[str, str], base_dir: Path) -> Path:
    """Relative paths: systemd's credentials directory if we run under LoadCredential, else next to the config."""
    value = value.expanduser()
    if value.is_absolute():
        return value
    creds = environ.get(ENV_CREDENTIALS)
    return (Path(creds) if creds else base_dir) / value


def _read_text(path: Path) -> tuple[str | None, str | None]:
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError:
        return None, f"cannot read {path}: not UTF-8 text"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"


def _read_token(path: Path, key: str) -> tuple[SecretStr | None, str | None]:
    text, error = _read_text(path)
    if text is None:
        return None, f"{key}: {error}"
    token = text.rstrip("\r\n")
    if not token.strip():
        return None, f"{key}: {path} is empty"
    return SecretStr(token), None


def _read_urls(path: Path, key: str) -> tuple[list[SecretStr], str | None]:
    text, error = _read_text(path)
    if text is None:
        return [], f"{key}: {error}"
    urls = [line.strip() for line in text.splitlines()]
    return [SecretStr(u) for u in urls if u and not u.startswith("#")], None


def _resolve_secrets(
    settings: Settings, environ: Mapping[str, str], base_dir: Path
) -> tuple[Settings, list[str]]:
    """Fold token_file / urls_file / $CREDENTIALS_DIRECTORY/<name>.token into the settings."""
    problems: list[str] = []
    creds = environ.get(ENV_CREDENTIALS)

    sources = []
    for i, src in enumerate(settings.sources):
        token = src.token
        if src.token_file is not None:
            token, error = _read_token(
                _secret_path(src.token_file, environ, base_dir), f"sources[{i}].token_file"
            )
            if error:
                problems.append(error)
        elif token is None and creds:
            candidate = Path(creds) / f"{src.name}.token"
            if candidate.is_file():
                token, error = _read_token(candidate, f"sources[{i}].token")
                if error:
                    problems.append(error)
        sources.append(src if token is src.token else src.model_copy(update={"token": token}))

    subscribers = []
    for i, sub in enumerate(settings.subscribers):
        if sub.urls_file is None:
            subscribers.append(sub)
            continue
        extra, error = _read_urls(
            _secret_path(sub.urls_file, environ, base_dir), f"subscribers[{i}].urls_file"
        )
        if error:
            problems.append(error)
        subscribers.append(sub.model_copy(update={"urls": [*sub.urls, *extra]}))

    topics = []
    for i, topic in enumerate(settings.topics):
        if topic.url_file is None:
            topics.append(topic)
            continue
        url, error = _read_token(_secret_path(topic.url_file, environ, base_dir), f"topics[{i}].url_file")
        if error:
            problems.append(error)
        topics.append(topic.model_copy(update={"url": url}))

    operators = settings.operators
    if operators.urls_file is not None:
        extra, error = _read_urls(_secret_path(operators.urls_file, environ, base_dir), "operators.urls_file")
        if error:
            problems.append(error)
        operators = operators.model_copy(update={"urls": [*operators.urls, *extra]})

    selfservice = settings.selfservice
    for field_name, file_field in (("admin_token", "admin_token_file"), ("bot_token", "bot_token_file")):
        secret_file = getattr(selfservice, file_field)
        if secret_file is None:
            continue
        token, error = _read_token(_secret_path(secret_file, environ, base_dir), f"selfservice.{file_field}")
        if error:
            problems.append(error)
        selfservice = selfservice.model_copy(update={field_name: token})

    store = settings.store
    if store.url_file is not None:
        url, error = _read_token(_secret_path(store.url_file, environ, base_dir), "store.url_file")
        if error:
            problems.append(error)
        store = store.model_copy(update={"url": url})
    elif store.url is None and creds and (Path(creds) / "store.url").is_file():
        url, error = _read_token(Path(creds) / "store.url", "store.url")
        if error:
            problems.append(error)
        store = store.model_copy(update={"url": url})
    if store.url is not None:
        if not store.url.get_secret_value().startswith(("postgresql://", "postgres://")):
            problems.append("store.url: must be a postgresql:// URL")
        missing = [m for m in ("psycopg", "psycopg_pool") if importlib.util.find_spec(m) is None]
        if missing:
            problems.append(
                f"store.url: a PostgreSQL store needs the extra: pip install 'alertd[postgres]' "
                f"({', '.join(missing)} not installed)"
            )

    resolved = settings.model_copy(
        update={
            "store": store,
            "sources": sources,
            "subscribers": subscribers,
            "topics": topics,
            "operators": operators,
            "selfservice": selfservice,
        }
    )
    return resolved, problems


# ---------------------------------------------------------------------------------------------
# semantic checks


def _first_index(names: list[str], section: str, what: str, problems: list[str]) -> dict[str, int]:
    """Each name's first position; a repeat is a problem naming both places."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            problems.append(
                f"{section}[{i}].name: duplicate {what} name {name!r} (also {section}[{first[name]}])"
            )
        else:
            first[name] = i
    return first


def semantic_problems(
    settings: Settings, registry: RegionLookup | None, *, validate_urls: bool = True
) -> list[str]:
    """Problems a schema cannot see: cross-references, duplicates, region codes, Apprise URLs.

    ``registry`` None skips the region-code check (nothing to check against).
    Lines are ``key: message`` without a file prefix; :func:`load_settings` adds it.
    """
    problems: list[str] = []
    tz_problem = _timezone_problem(settings.timezone)
    if tz_problem:
        problems.append(f"timezone: {tz_problem}")

    source_names = _first_index([src.name for src in settings.sources], "sources", "source", problems)
    for i, src in enumerate(settings.sources):
        key = f"sources[{i}]"
        if src.effective_url is None:
            problems.append(f"{key}.url: required for type {src.type}")
        if REGISTRY[src.type].token_required and src.token is None and src.token_file is None:
            problems.append(f"{key}.token: {src.type} needs an API token (token or token_file)")

    _first_index([sub.name for sub in settings.subscribers], "subscribers", "subscriber", problems)
    for i, sub in enumerate(settings.subscribers):
        key = f"subscribers[{i}]"
        found = check_regions(sub.regions, registry)[1] if registry is not None else []
        found += check_advisories(sub.advisories, source_names)[1]
        problems += [f"{key}.{p.field}[{p.index}]: {p.text}" for p in found]
        if not sub.urls and sub.urls_file is None:
            problems.append(f"{key}.urls: no notification URLs (urls or urls_file)")
        if validate_urls:
            problems += _apprise_problems(f"{key}.urls", sub.urls)

    for i, sub in enumerate(settings.subscribers):
        if core_topics.is_topic(sub.name):
            problems.append(
                f"subscribers[{i}].name: names starting with 'topic:' are reserved for [[topics]]"
            )
    problems += _topic_problems(settings.topics, registry, validate_urls=validate_urls)

    if validate_urls:
        problems += _apprise_problems("operators.urls", settings.operators.urls)
    if settings.templates:
        from alertd.core.render import validate_templates  # render imports nothing from here at import time

        problems += validate_templates(settings.templates)
    problems += _selfservice_problems(settings.selfservice, validate_urls=validate_urls)
    if settings.selfservice.enabled and not settings.http.enabled:
        # the page is served by the HTTP server: enabled without it, it would silently not exist
        problems.append(
            "selfservice.enabled: the self-service page needs the HTTP server ([http] enabled = true)"
        )
    secrets_seen: dict[str, str] = {}
    for i, src in enumerate(settings.sources):
        if src.webhook_secret is None:
            continue
        if src.type != "ukrainealarm":
            problems.append(f"sources[{i}].webhook_secret: only ukrainealarm pushes (webhooks)")
        if not settings.http.enabled:
            problems.append(
                f"sources[{i}].webhook_secret: pushes arrive on the HTTP server ([http] enabled = true)"
            )
        value = src.webhook_secret.get_secret_value()
        if value in secrets_seen:
            problems.append(f"sources[{i}].webhook_secret: the same secret as source {secrets_seen[value]}")
        secrets_seen[value] = src.name
        if src.push_interval < src.interval:
            problems.append(f"sources[{i}].push_interval: shorter than interval; pushes should slow polling")
    if settings.cap_out.enabled and not settings.http.enabled:
        problems.append("cap_out.enabled: the CAP feed is served by the HTTP server ([http] enabled = true)")
    return problems


def _topic_problems(
    topics: Sequence[TopicConfig], registry: RegionLookup | None, *, validate_urls: bool
) -> list[str]:
    """[[topics]] checks: placeholders, region codes, one URL per place, each URL loading in Apprise.

    The per-place checks need the full registry (:class:`alertd.core.regions.RegionRegistry`);
    with a small lookup only the explicit places are checked.
    """
    problems: list[str] = []
    _first_index([t.name for t in topics], "topics", "topic", problems)
    full = registry if isinstance(registry, RegionRegistry) else None
    for i, topic in enumerate(topics):
        key = f"topics[{i}]"
        if topic.url is None:
            if topic.url_file is None:
                problems.append(f"{key}.url: required (url or url_file)")
            continue
        template = topic.url.get_secret_value()
        used = core_topics.placeholders(template)
        unknown = used - core_topics.PLACEHOLDERS
        if unknown:
            allowed = ", ".join("{" + p + "}" for p in sorted(core_topics.PLACEHOLDERS))
            problems.append(
                f"{key}.url: unknown placeholder(s) {', '.join(sorted(unknown))} (allowed: {allowed})"
            )
            continue
        if topic.follow is not None:
            bad = core_topics.placeholders(topic.follow) - core_topics.PLACEHOLDERS
            if bad:
                problems.append(f"{key}.follow: unknown placeholder(s) {', '.join(sorted(bad))}")
                continue
        if topic.levels and not used:
            problems.append(
                f"{key}.url: a template applied per place needs {{code}}, {{slug}} or {{oblast_code}}; "
                "for one channel over several places use places = [...]"
            )
            continue
        if registry is not None:
            problems += [
                f"{key}.places[{p.index}]: {p.text}" for p in check_regions(topic.places, registry)[1]
            ]
        rule = topic_rule(topic, "uk")
        if full is not None:
            for first, codes in core_topics.collisions(rule, full):
                more = f" and {len(codes) - 2} more" if len(codes) > 2 else ""
                problems.append(
                    f"{key}.url: places {first} and {codes[1]}{more} expand to the same URL; "
                    "add {code} to the template"
                )
        if validate_urls and full is not None:
            bindings = core_topics.expand([rule], full)
            if bindings:
                from alertd import channels

                problem = channels.problem(bindings[0].url)
                if problem:
                    problems.append(f"{key}.url: {problem} (for place {bindings[0].place})")
        elif validate_urls and not used:
            problems += _apprise_problems(f"{key}.url", [topic.url])
    return problems


def topic_rule(topic: TopicConfig, language: str) -> core_topics.TopicRule:
    """The routing-ready form of a ``[[topics]]`` section; ``language`` is the global default."""
    return core_topics.TopicRule(
        name=topic.name,
        url=topic.url.get_secret_value() if topic.url is not None else "",
        levels=tuple(RegionLevel(level) for level in topic.levels),
        places=tuple(topic.places),
        kinds=frozenset(topic.kinds),
        language=topic.language or language,
        follow=topic.follow,
    )


def _selfservice_problems(cfg: SelfServiceConfig, *, validate_urls: bool) -> list[str]:
    """Self-service checks: public_url, one template per offered kind, each loading in Apprise."""
    if not cfg.enabled:
        return []
    problems: list[str] = []
    if not cfg.public_url:
        problems.append("selfservice.public_url: required when selfservice is enabled (used in every link)")
    if not cfg.channels:
        problems.append("selfservice.channels: offer at least one channel kind")
    if "apprise" in cfg.channels and not cfg.allowed_schemes:
        problems.append(
            'selfservice.allowed_schemes: channel kind "apprise" needs at least one allowed scheme'
        )
    for kind in cfg.channels:
        if kind == "apprise":
            continue
        key = f"selfservice.templates.{kind}"
        template = cfg.template_for(kind)
        if template is None:
            problems.append(f"{key}: channel kind {kind!r} is offered but has no template")
            continue
        placeholder = CHANNEL_PLACEHOLDERS[kind]
        names = set(re.findall(r"{(\w*)}", template))
        if placeholder not in names:
            problems.append(f"{key}: the template must contain {{{placeholder}}}")
        unknown = names - {placeholder, "bot_token"}
        if unknown:
            problems.append(f"{key}: unknown placeholder(s) {', '.join(sorted(unknown))}")
            continue
        if "bot_token" in names and cfg.bot_token is None and cfg.bot_token_file is None:
            problems.append(f"{key}: uses {{bot_token}} but selfservice.bot_token(_file) is not set")
        if validate_urls:
            sample = template
            for name in names:
                sample = sample.replace("{" + name + "}", _PLACEHOLDER_SAMPLES[name])
            from alertd import channels

            problem = channels.problem(sample)
            if problem:
                problems.append(f"{key}: {problem} (with placeholder values filled in)")
    if cfg.admin_token is not None and len(cfg.admin_token.get_secret_value()) < 16:
        problems.append("selfservice.admin_token: use at least 16 characters")
    return problems


def _apprise_problems(key: str, urls: Sequence[SecretStr]) -> list[str]:
    """``<key>[j]: Apprise cannot load '<masked>': <scrubbed reason>`` for each URL Apprise refuses."""
    from alertd import channels

    problems = []
    for j, secret in enumerate(urls):
        problem = channels.problem(secret)
        if problem is not None:
            problems.append(f"{key}[{j}]: {problem}")
    return problems


def summary(settings: Settings) -> str:
    """One line for ``alertd check`` and the start-up log: what will run, no secrets."""
    names = ", ".join(s.name if s.enabled else f"{s.name} (disabled)" for s in settings.sources)
    channels = sum(len(s.urls) for s in settings.subscribers)
    ops = len(settings.operators.urls)
    parts = [
        _plural(len(settings.sources), "source") + (f" ({names})" if names else ""),
        _plural(len(settings.subscribers), "subscriber"),
        _plural(channels, "channel"),
        _plural(ops, "operator channel"),
    ]
    if settings.topics:
        parts.append(_plural(len(settings.topics), "topic"))
    return "config OK: " + ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
