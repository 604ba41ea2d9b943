"""Operator notices: alertd telling the people who run it that something needs them (DESIGN §6).

Announced: a source down for longer than its allowance, its recovery, the
state store failing to write and its recovery, and deliveries that were given up on (dead letters, one message per
event with how many channels failed). They go through Apprise *directly*, not
through the outbox: the outbox is what may be stuck when these matter.

A flapping source or a broken channel must not turn into a pager storm, so every
notice has a (kind, subject) key and at most one message per key goes out per
:data:`RATE_LIMIT` seconds; what is held back is still logged. With several instances
on one shared store, ``once`` (the store's cross-instance dedup) makes that "once per
window" hold for all of them together: whichever instance notices first sends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import SecretStr

from alertd import channels
from alertd.core.clock import SYSTEM_CLOCK, Clock
from alertd.core.kinds import kind_name
from alertd.core.languages import language_of
from alertd.core.model import AlertEvent
from alertd.logs import get_logger

__all__ = ["RATE_LIMIT", "OperatorNotifier"]

log = get_logger(__name__)

#: Seconds between two messages with the same (kind, subject).
RATE_LIMIT = 600.0

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "down_title": "alertd: source {source} is down",
        "down_body": "Source {source} has been failing since {since} UTC ({minutes} min; allowed {allowance} min). "
        "Alerts from it are not being received. Last error: {error}",
        "up_title": "alertd: source {source} recovered",
        "up_body": "Source {source} is answering again after {minutes} min down.",
        "store_down_title": "alertd: state store cannot be written",
        "store_down_body": "alertd cannot write its state store ({cause}). New alerts are not recorded or "
        "delivered until this is fixed (free disk space, release the lock); alertd retries by itself.",
        "store_up_title": "alertd: state store writable again",
        "store_up_body": "The state store is writable again after {minutes} min; alerts are recorded and "
        "delivered again.",
        "dead_title": "alertd: {count} deliveries failed",
        "dead_body": "{count} channel(s) could not be given the {status} notice for {what} (event {event}); "
        "gave up. Last error: {error}",
    },
    "uk": {
        "down_title": "alertd: джерело {source} недоступне",
        "down_body": "Джерело {source} не відповідає з {since} UTC ({minutes} хв; дозволено {allowance} хв). "
        "Тривоги з нього не надходять. Остання помилка: {error}",
        "up_title": "alertd: джерело {source} відновилося",
        "up_body": "Джерело {source} знову відповідає після {minutes} хв простою.",
        "store_down_title": "alertd: не вдається записати стан",
        "store_down_body": "alertd не може записати сховище стану ({cause}). Нові тривоги не записуються й не "
        "надсилаються, доки це не виправлено (звільніть місце на диску, зніміть блокування); alertd "
        "повторює спроби сам.",
        "store_up_title": "alertd: запис стану відновлено",
        "store_up_body": "Сховище стану знову доступне для запису після {minutes} хв; тривоги знову "
        "записуються й надсилаються.",
        "dead_title": "alertd: не доставлено {count} повідомлень",
        "dead_body": "{count} канал(ів) не отримали повідомлення «{status}» про {what} (подія {event}); "
        "доставку припинено. Остання помилка: {error}",
    },
}


class OperatorNotifier:
    """Sends operator notices to the operators' Apprise URLs; a no-op when there are none."""

    def __init__(
        self,
        urls: Sequence[str | SecretStr],
        language: str = "en",
        *,
        rate_limit: float = RATE_LIMIT,
        clock: Clock | None = None,
        timeout: float | None = None,
        once: Callable[[str], bool] | None = None,
    ) -> None:
        self._once = once
        self._urls = [u.get_secret_value() if isinstance(u, SecretStr) else u for u in urls]
        self._language = language_of(language)
        self._text = _TEXT[self._language]
        self._rate_limit = rate_limit
        #: monotonic for the in-process rate limit; wall time for the shared window and notice text
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._last: dict[tuple[str, str], float] = {}
        self._timeout = timeout
        self._channels: dict[str, channels.Channel] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    async def notify(
        self,
        title: str,
        body: str,
        notify_type: str = "warning",
        *,
        kind: str | None = None,
        subject: str | None = None,
    ) -> bool:
        """Send one notice to every operator channel; True if at least one channel took it.

        With ``kind`` given, at most one message per (kind, subject) per rate-limit window.
        """
        if not self._urls:
            return False
        if kind is not None:
            key = (kind, subject or "")
            now = self._clock.monotonic()
            last = self._last.get(key)
            if last is not None and now - last < self._rate_limit:
                log.info("operator notice held back (rate limit)", kind=kind, subject=subject)
                return False
            self._last[key] = now
            if self._once is not None and not self._shared_first(kind, subject or ""):
                log.info("operator notice sent by another instance", kind=kind, subject=subject)
                return False
        results = await asyncio.gather(*(self._send(url, title, body, notify_type) for url in self._urls))
        return any(results)

    def _shared_first(self, kind: str, subject: str) -> bool:
        """Is this instance the first of all to send (kind, subject) in this rate-limit window?

        The window is counted on the wall clock (every instance must agree on it); a store
        that cannot answer lets the notice through: twice is better than never.
        """
        assert self._once is not None
        window = int(self._clock.wall() // self._rate_limit)
        try:
            return self._once(f"operator:{kind}:{subject}:{window}")
        except Exception:
            return True

    async def _send(self, url: str, title: str, body: str, notify_type: str) -> bool:
        channel = self._channels.get(url)
        if channel is None:
            channel = self._channels[url] = channels.load(url, timeout=self._timeout)
        result = await asyncio.to_thread(
            channels.send, channel, title, body, notify_type, None, timeout=self._timeout
        )
        ok, detail = result.ok, result.detail
        if ok:
            log.info("operator notice sent", channel=channel.masked, title=title)
        else:
            log.warning("operator notice failed", channel=channel.masked, title=title, error=detail)
        return ok

    # -- the notices ------------------------------------------------------------------------------
    async def source_down(
        self, source: str, since: datetime, error: str, allowance_seconds: float, now: datetime | None = None
    ) -> bool:
        """A source has been failing longer than its allowance (one message per outage)."""
        now = now or self._clock.now()
        minutes = max(0, int((now - since).total_seconds() // 60))
        fmt = {
            "source": source,
            "since": since.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            "minutes": minutes,
            "allowance": f"{allowance_seconds / 60:g}",
            "error": error[:200],
        }
        return await self.notify(
            self._text["down_title"].format(**fmt),
            self._text["down_body"].format(**fmt),
            "failure",
            kind="source_down",
            subject=source,
        )

    async def source_recovered(self, source: str, down_seconds: float) -> bool:
        """A source that was reported down answers again (one message per recovery)."""
        fmt = {"source": source, "minutes": max(0, int(down_seconds // 60))}
        return await self.notify(
            self._text["up_title"].format(**fmt),
            self._text["up_body"].format(**fmt),
            "success",
            kind="source_recovered",
            subject=source,
        )

    async def store_failing(self, cause: str) -> bool:
        """The state store cannot be written (one message per outage)."""
        return await self.notify(
            self._text["store_down_title"],
            self._text["store_down_body"].format(cause=cause[:200]),
            "failure",
            kind="store_failing",
        )

    async def store_recovered(self, down_seconds: float) -> bool:
        """The state store is writable again (one message per recovery)."""
        return await self.notify(
            self._text["store_up_title"],
            self._text["store_up_body"].format(minutes=max(0, int(down_seconds // 60))),
            "success",
            kind="store_recovered",
        )

    async def dead_letters(self, event: AlertEvent, count: int, error: str) -> bool:
        """``count`` channels were given up on for ``event`` (aggregated by the dispatcher per batch)."""
        kind = kind_name(event.kind, self._language)
        if event.region is not None:
            what = f"{kind} {event.region.code} {event.region.name(self._language)}"
        else:
            what = f"{kind} {event.headline[:80]}".strip()
        fmt = {
            "count": count,
            "status": str(event.status),
            "what": what,
            "event": event.id,
            "error": error[:200],
        }
        return await self.notify(
            self._text["dead_title"].format(**fmt),
            self._text["dead_body"].format(**fmt),
            "warning",
            kind="dead_letter",
            subject=event.id,
        )
