"""The self-service operations, shared by the JSON API and the HTML pages.

Every method either returns plain data or raises :class:`~alertd.web.selfservice.safety.Refusal`
(an HTTP status plus an i18n key), and logs one line per outcome: created,
confirmed, changed, deleted or refused, with the destination masked.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alertd import channels
from alertd.channels.guard import Guard, GuardExpired, Resolver, guard_plugin
from alertd.config import Settings
from alertd.core.regions import RegionRegistry
from alertd.core.subscribers import Problem, check_kinds, check_language, check_regions
from alertd.logs import get_logger
from alertd.store.base import StateStore, StoredSubscriber
from alertd.web.selfservice.i18n import OFFERED_KINDS, t
from alertd.web.selfservice.safety import (
    BuiltChannel,
    RateLimiter,
    Refusal,
    build_channel,
    check_target,
    is_broadcast,
)
from alertd.web.selfservice.store import WebStore, WebSubscription
from alertd.web.selfservice.visitors import Busy, VisitorWork

__all__ = ["SelfService", "Subscription"]

log = get_logger(__name__)

#: The error a missing or malformed value of each channel kind gets.
_VALUE_ERRORS = {"ntfy": "bad_topic", "telegram": "bad_chat_id", "email": "bad_email", "sms": "bad_phone"}

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: Shortest life of an unconfirmed subscription, however full the pending table is (an SMS
#: can take a minute to arrive).
MIN_PENDING_LIFE = 120.0


def pending_life(ttl: float, pending: int, cap: int) -> float:
    """Seconds a new unconfirmed row lives: the full ``ttl`` while the table is under half full,
    then shrinking linearly to :data:`MIN_PENDING_LIFE` at the cap, so a flood of fake sign-ups
    clears itself in minutes instead of locking residents out for ``ttl`` again and again."""
    fill = pending / cap if cap else 1.0
    if fill <= 0.5:
        return ttl
    share = max(0.0, 1.0 - (fill - 0.5) * 2)
    return max(min(MIN_PENDING_LIFE, ttl), ttl * share)


@dataclass(frozen=True)
class Subscription:
    """What a resident (or the admin) may see of a subscription: never the channel URL."""

    id: str
    status: str
    regions: tuple[str, ...]
    kinds: tuple[str, ...]
    language: str
    channel_kind: str
    destination: str  # masked
    created_at: datetime
    confirmed_at: datetime | None
    manage_url: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SelfService:
    """One per process; lives on the daemon's loop with the store."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        registry: RegionRegistry,
        *,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sender: Callable[[str, str, str], Any] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.selfservice
        self.store = store
        self.web = WebStore(store)
        self.registry = registry
        self.clock = clock
        self.limiter = RateLimiter(self.web)
        self.public_url = (self.cfg.public_url or "").rstrip("/")
        self._sender = sender
        self._footer_version: int | None = None
        self._footer_tokens: dict[str, str] = {}
        self._raw_version: int | None = None
        self._raw_subscribers: set[str] = set()
        # Everything blocking a visitor can trigger runs here, never on the daemon's executor.
        self.visitors = VisitorWork(
            threads=self.cfg.visitor_threads,
            per_client=self.cfg.per_client_inflight,
            send_deadline=self.cfg.send_deadline,
            resolver=resolver,
        )
        self._notices: set[asyncio.Task[Any]] = set()
        self._refusal_log = RefusalLog(clock=monotonic)

    # -- links -----------------------------------------------------------------------------------
    def manage_url(self, token: str) -> str:
        return f"{self.public_url}/s/{token}"

    def confirm_url(self, sub_id: str, code: str, lang: str) -> str:
        return f"{self.public_url}/confirm?id={sub_id}&code={code}&lang={lang}"

    def footer_for(self, subscriber: str, language: str) -> str | None:
        """The dispatcher's footer hook: the management link of an active web subscriber."""
        version = self.store.subscribers_version()
        if version != self._footer_version:
            self._footer_tokens = {
                row.subscriber: row.manage_token
                for row in self.web.all()
                if row.status == "active" and not is_broadcast(row.channel_kind, row.destination_masked)
            }
            self._footer_version = version
        token = self._footer_tokens.get(subscriber)
        if token is None:  # not a web subscriber, or one on a channel others can read
            return None
        return t("footer", language, link=self.manage_url(token))

    def guard_for(self, subscriber: str, channel: Any) -> Guard | None:
        """The dispatcher's guard hook: a resident's raw URL is sent under the connect-time guard
        (address checked at every connect, after DNS and redirects; Apprise redirects off)."""
        version = self.store.subscribers_version()
        if version != self._raw_version:
            self._raw_subscribers = {
                row.subscriber for row in self.web.all() if row.channel_kind == "apprise"
            }
            self._raw_version = version
        if subscriber not in self._raw_subscribers:
            return None
        guard_plugin(getattr(channel, "plugin", None))
        return Guard(allow_private=self.cfg.allow_private_targets, resolver=self.visitors.resolver)

    # -- validation --------------------------------------------------------------------------------
    # The rules are alertd.core.subscribers' (shared with the config file and the CLI); the
    # first problem becomes the refusal, its key the translated error code.
    def _regions(self, value: Any) -> list[str]:
        codes, problems = check_regions(value, self.registry, required=True, limit=self.cfg.max_regions)
        _refuse_first(problems)
        return list(codes)

    @staticmethod
    def _kinds(value: Any) -> list[str]:
        kinds, problems = check_kinds(value, allowed=OFFERED_KINDS, required=True)
        _refuse_first(problems)
        return [str(kind) for kind in kinds]

    @staticmethod
    def _language(value: Any) -> str:
        language, problems = check_language(value)
        _refuse_first(problems)
        return str(language)

    def _refused(self, exc: Refusal, action: str, client: str, **fields: object) -> None:
        show, suppressed = self._refusal_log.admit(client)
        if show:
            extra = {"suppressed": suppressed} if suppressed else {}
            log.info("subscription refused", action=action, reason=exc.key, client=client, **fields, **extra)

    # -- create ------------------------------------------------------------------------------------
    async def create(self, data: dict[str, Any], client: str) -> tuple[WebSubscription, str]:
        """Validate, rate-limit, send the code through the very channel; returns (pending row, lang)."""
        try:
            return await self._create(data, client)
        except Refusal as exc:
            channel = data.get("channel") if isinstance(data, dict) else None
            kind = channel.get("kind") if isinstance(channel, dict) else None
            self._refused(exc, "create", client, channel=str(kind)[:16] if kind else None)
            raise

    async def _create(self, data: dict[str, Any], client: str) -> tuple[WebSubscription, str]:
        now = self.clock()
        regions = self._regions(data.get("regions"))
        kinds = self._kinds(data.get("kinds"))
        language = self._language(data.get("language"))
        channel = data.get("channel")
        if not isinstance(channel, dict) or not isinstance(channel.get("kind"), str):
            raise Refusal(400, "channel_not_offered", field="channel")
        if channel["kind"] not in self.cfg.channels:
            raise Refusal(400, "channel_not_offered", field="channel")
        value = channel.get("value")
        if not isinstance(value, str) or not value.strip():
            raise Refusal(400, _VALUE_ERRORS.get(channel["kind"], "bad_url"), field="value")

        # Count the attempt before anything costly (DNS, Apprise, sending) happens.
        if not self.limiter.allow("client", client, self.cfg.per_client_per_hour, HOUR, now):
            raise Refusal(429, "rate_client")
        self.limiter.hit("client", client, now)

        bot = self.cfg.bot_token.get_secret_value() if self.cfg.bot_token else None
        built = build_channel(self.cfg, channel["kind"], value, bot_token=bot)

        self.web.purge(now)
        pending = self.web.count_pending()
        if pending >= self.cfg.max_pending:
            raise Refusal(503, "too_many_pending")
        if self.web.count_pending(client=client) >= self.cfg.pending_per_prefix:
            raise Refusal(429, "too_many_pending_client")
        try:
            await check_target(
                built,
                allow_private=self.cfg.allow_private_targets,
                resolve=lambda host: self.visitors.resolve(client, host),
            )
        except Busy as exc:
            raise _busy(exc) from None
        destination = self.web.digest("destination", built.destination)
        if not self.limiter.allow("destination", destination, self.cfg.per_destination_per_day, DAY, now):
            raise Refusal(429, "rate_destination")

        sub_id = secrets.token_urlsafe(12)
        code = "".join(str(secrets.randbelow(10)) for _ in range(self.cfg.code_length))
        token = secrets.token_urlsafe(24)  # 192 bits
        record = StoredSubscriber(
            name=f"web-{sub_id}",
            regions=tuple(regions),
            kinds=tuple(kinds),
            language=language,
            urls=(built.url,),
            origin="web",
            status="pending",
        )
        self.web.create(
            sub_id=sub_id,
            record=record,
            manage_token=token,
            code_hash=self.web.digest("code", f"{sub_id}:{code}"),
            expires_at=now
            + timedelta(seconds=pending_life(self.cfg.pending_ttl, pending, self.cfg.max_pending)),
            channel_kind=built.kind,
            destination=destination,
            destination_masked=built.masked,
            client=client,
            now=now,
        )
        self.limiter.hit("destination", destination, now)
        try:
            ok = await self._send_code(built, sub_id, code, language, client)
        except Busy as exc:
            self.web.delete(sub_id)
            raise _busy(exc) from None
        if not ok:
            self.web.delete(sub_id)
            raise Refusal(502, "send_failed", field="value")
        log.info(
            "subscription created",
            id=sub_id,
            channel=built.kind,
            destination=built.masked,
            regions=regions,
            kinds=kinds,
            language=language,
            client=client,
        )
        row = self.web.get(sub_id)
        assert row is not None
        return row, language

    async def _send_code(self, built: BuiltChannel, sub_id: str, code: str, lang: str, client: str) -> bool:
        title = t("code_message_title", lang)
        lines = [t("code_message", lang, code=code)]
        # The direct link carries the subscription id and leads to the management page: not on a
        # channel others read. The code alone is useless to them (confirming needs the id too).
        if self.public_url and not is_broadcast(built.kind, built.masked):
            lines.append(t("code_message_link", lang, link=self.confirm_url(sub_id, code, lang)))
        lines.append(t("code_message_ignore", lang))
        body = "\n".join(lines)
        if self._sender is not None:  # tests
            return bool(await self._sender(built.url, title, body))
        ok, detail = await self._visitor_send(built.kind, built.url, title, body, client, short=lines[0])
        if not ok:
            log.warning("confirmation not delivered", id=sub_id, channel=built.masked, error=detail)
        return ok

    async def _visitor_send(
        self, kind: str, url: str, title: str, body: str, client: str, *, short: str | None = None
    ) -> tuple[bool, str]:
        """One visitor-triggered send: the visitors' pool, a hard deadline, and for a raw URL the
        connect-time address guard with Apprise's redirects off. Raises :class:`Busy`."""
        raw = kind == "apprise"
        deadline = self.cfg.send_deadline
        channel = channels.load(url, timeout=deadline)
        if raw:
            guard_plugin(channel.plugin)  # Apprise's redirects off, timeouts ours
        limit = channel.limits.body_maxlen
        if short is not None and limit and len(body) > limit:
            body = short  # an SMS segment: the code alone
        allow_private = self.cfg.allow_private_targets or not raw  # templates: the operator's hosts
        try:
            result = await self.visitors.send(
                client,
                channels.send,
                channel,
                title,
                body,
                channels.INFO,
                "text",
                allow_private=allow_private,
            )
        except GuardExpired:
            return False, f"no answer within {deadline:g}s"
        return result.ok, result.detail

    def _notify_change(self, row: WebSubscription, action: str, client: str) -> None:
        """Tell the resident's own channel that their subscription was changed or removed.

        Someone else holding the management link (a forwarded message, a shared
        phone) can then be noticed. In the background, in the visitors' pool; a
        busy pool skips the notice (logged) rather than delaying the answer.
        """
        if not row.urls:
            return
        lang = row.language or self.settings.language
        title = t(f"{action}_notice_title", lang)
        body = t(f"{action}_notice", lang, site=self.public_url or "")

        async def notify() -> None:
            try:
                if self._sender is not None:  # tests
                    await self._sender(row.urls[0], title, body)
                    return
                ok, detail = await self._visitor_send(row.channel_kind, row.urls[0], title, body, client)
            except Busy:
                ok, detail = False, "visitor pool busy"
            except Exception as exc:  # a notice must never break the request that caused it
                ok, detail = False, type(exc).__name__
            if not ok:
                log.warning(
                    "change notice not delivered",
                    id=row.id,
                    action=action,
                    channel=row.destination_masked,
                    error=detail,
                )

        task = asyncio.ensure_future(notify())
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def aclose(self) -> None:
        """Let change notices in flight finish (bounded by the send deadline), then free the pool."""
        if self._notices:
            await asyncio.wait(set(self._notices), timeout=self.cfg.send_deadline + 2)
        self.visitors.close()

    # -- confirm -----------------------------------------------------------------------------------
    async def confirm(self, sub_id: Any, code: Any, client: str) -> WebSubscription:
        try:
            return self._confirm(sub_id, code)
        except Refusal as exc:
            self._refused(exc, "confirm", client, id=str(sub_id)[:24])
            raise

    def _confirm(self, sub_id: Any, code: Any) -> WebSubscription:
        now = self.clock()
        if not isinstance(sub_id, str) or not sub_id or len(sub_id) > 64:
            raise Refusal(404, "not_found")
        code = code.strip().replace(" ", "") if isinstance(code, str) else ""
        if not code.isdigit() or len(code) != self.cfg.code_length:
            raise Refusal(400, "bad_code", field="code", length=self.cfg.code_length)
        row = self.web.get(sub_id)
        if row is None:
            raise Refusal(404, "not_found")
        if row.status != "pending":
            raise Refusal(409, "already_confirmed")
        if row.expires_at is not None and row.expires_at < now:
            self.web.delete(sub_id)
            raise Refusal(410, "expired")
        if not row.code_hash or not hmac.compare_digest(
            row.code_hash, self.web.digest("code", f"{sub_id}:{code}")
        ):
            attempts = self.web.wrong_code(sub_id)
            left = self.cfg.max_attempts - attempts
            if left <= 0:
                self.web.delete(sub_id)
                raise Refusal(429, "too_many_attempts")
            raise Refusal(400, "wrong_code", field="code", left=left)
        self.web.activate(sub_id, now)
        log.info(
            "subscription confirmed", id=sub_id, channel=row.channel_kind, destination=row.destination_masked
        )
        fresh = self.web.get(sub_id)
        assert fresh is not None
        return fresh

    # -- manage ------------------------------------------------------------------------------------
    def by_token(self, token: str) -> WebSubscription:
        if not isinstance(token, str) or not 20 <= len(token) <= 64:
            raise Refusal(404, "not_found")
        row = self.web.by_token(token)
        if row is None or row.status == "pending":
            raise Refusal(404, "not_found")
        return row

    def update(self, token: str, data: dict[str, Any], client: str) -> WebSubscription:
        try:
            row = self.by_token(token)
            regions = self._regions(data["regions"]) if "regions" in data else None
            kinds = self._kinds(data["kinds"]) if "kinds" in data else None
            language = self._language(data["language"]) if "language" in data else None
        except Refusal as exc:
            self._refused(exc, "update", client)
            raise
        self.web.update(row.id, regions=regions, kinds=kinds, language=language, now=self.clock())
        self._notify_change(row, "changed", client)
        log.info(
            "subscription changed",
            id=row.id,
            regions=regions,
            kinds=kinds,
            language=language,
            client=client,
        )
        return self.by_token(token)

    def delete(self, token: str, client: str) -> None:
        try:
            row = self.by_token(token)
        except Refusal as exc:
            self._refused(exc, "delete", client)
            raise
        self.web.delete(row.id)
        self._notify_change(row, "deleted", client)
        log.info(
            "subscription deleted",
            id=row.id,
            channel=row.channel_kind,
            destination=row.destination_masked,
            client=client,
        )

    # -- admin ------------------------------------------------------------------------------------
    def disable(self, name: str) -> bool:
        changed = self.store.set_subscriber_status(name, "disabled")
        if changed:
            log.info("subscriber disabled by operator", subscriber=name)
        return changed

    def view(self, row: WebSubscription, *, with_link: bool = True) -> Subscription:
        return Subscription(
            id=row.id,
            status=row.status,
            regions=row.regions,
            kinds=row.kinds,
            language=row.language or self.settings.language,
            channel_kind=row.channel_kind,
            destination=row.destination_masked,
            created_at=row.created_at,
            confirmed_at=row.confirmed_at,
            manage_url=self.manage_url(row.manage_token) if with_link else None,
        )

    def region_names(self, codes: Iterable[str], lang: str) -> list[dict[str, str]]:
        out = []
        for code in codes:
            region = self.registry.get(code)
            if region is not None:
                out.append(self.region_json(region, lang))
        return out

    def region_json(self, region: Any, lang: str) -> dict[str, str]:
        oblast = self.registry.get(region.oblast) if region.oblast else None
        context = oblast.name(lang) if oblast is not None and oblast.code != region.code else ""
        return {"code": region.code, "name": region.name(lang), "level": str(region.level), "oblast": context}


def _refuse_first(problems: list[Problem]) -> None:
    """A 400 refusal naming the first problem; its message parameters as the page's texts expect."""
    if not problems:
        return
    first = problems[0]
    params: dict[str, object] = {}
    if first.key == "unknown_region":
        params["code"] = first.value[:32]
    elif first.key == "unknown_kind":
        params["kind"] = first.value[:32]
    if first.limit is not None:
        params["limit"] = first.limit
    raise Refusal(400, first.key, field=first.field, **params)


class RefusalLog:
    """At most ``burst`` "subscription refused" lines per client prefix per ``window`` seconds.

    Under attack every refused request would otherwise be a log line (thousands a
    second), and journald's per-service rate limit would then drop alertd's own
    lines about alerts and deliveries. The lines held back are counted and the
    next line for that client says how many (``suppressed=``).
    """

    def __init__(
        self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window, self.clock = burst, window, clock
        self._clients: dict[str, list[float]] = {}  # client -> [window start, lines shown, held back]

    def admit(self, client: str) -> tuple[bool, int]:
        """(log this refusal?, refusals held back since the last line shown for this client)."""
        now = self.clock()
        entry = self._clients.get(client)
        if entry is None or now - entry[0] >= self.window:
            held = int(entry[2]) if entry is not None else 0
            if len(self._clients) >= 10_000:  # many clients: forget the old windows wholesale
                self._clients.clear()
            self._clients[client] = [now, 1, 0]
            return True, held
        if entry[1] < self.burst:
            entry[1] += 1
            held, entry[2] = int(entry[2]), 0
            return True, held
        entry[2] += 1
        return False, 0


def _busy(exc: Busy) -> Refusal:
    """A full visitor box, as the resident is told it."""
    return Refusal(429, "busy_client") if exc.scope == "client" else Refusal(503, "busy")
