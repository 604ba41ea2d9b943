"""``alertd demo``: the real daemon on an embedded default — no token, no internet, no config file.

It starts :class:`~alertd.devtools.simulate.Upstream` (a scripted alerts.in.ua + ukrainealarm
on 127.0.0.1) and :class:`~alertd.devtools.simulate.Sink` (a local notification service),
builds the settings in code, runs :func:`alertd.run.app.run_app` against them in this
event loop and plays a short timeline, narrating what the upstream does, what
alertd decides (its own log lines, dimmed) and what each resident receives:

* before start: an air raid is already running in Kharkiv oblast — recorded, not
  announced (no flood on start-up); its end later is announced;
* air raid in Kyiv city, then in Kyiv oblast (heard by the Irpin resident, whose
  hromada lies inside it);
* ukrainealarm fails for two polls — alerts.in.ua still answers, nothing changes;
* the three alerts end, one after the other.

The timeline is written for 30 seconds and scaled to ``duration`` (at least 12).
After it, the demo waits (bounded) until every expected message arrived, stops
the daemon, prints a summary and returns 0 — or 1 if a resident did not receive
exactly what they should have, or 130 when interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from alertd.config import Settings, load_settings
from alertd.core.languages import LANGUAGES
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Received, Sink, Upstream
from alertd.logs import SecretFilter, fields_of, format_fields
from alertd.run.app import run_app, settings_secrets
from alertd.run.fetch import no_proxy_with_loopback
from alertd.store import open_store, store_exists

__all__ = ["BASE_DURATION", "MIN_DURATION", "RESIDENTS", "Resident", "run_demo"]

DEMO_TOKEN = "demo-token"
#: The timeline below is written for this many seconds and scaled to the requested duration.
BASE_DURATION = 30.0
MIN_DURATION = 12.0
#: After the timeline: the longest wait for outstanding ends and deliveries.
SETTLE_TIMEOUT = 20.0
EXIT_INTERRUPTED = 130

# alerts.in.ua location uids (for oblasts also the ukrainealarm regionIds)
KYIV_CITY, KYIV_OBLAST, KHARKIV_OBLAST = 31, 14, 22


@dataclass(frozen=True)
class Resident:
    """A demo subscriber: one region, one channel on the local sink (path = name)."""

    name: str
    region: str
    language: str | None = None  # None: the demo's language


RESIDENTS: tuple[Resident, ...] = (
    Resident("olena", "UA-30"),  # Kyiv city
    Resident("mykola", "UA-63"),  # Kharkiv oblast
    Resident("anna", "ua:706", "en"),  # Irpin hromada, inside Kyiv oblast
    Resident("taras", "UA-46"),  # Lviv oblast: nothing happens there
)

#: (seconds into the 30 s timeline, action, alerts.in.ua uid or source)
TIMELINE: tuple[tuple[float, str, object], ...] = (
    (4, "start", KYIV_CITY),
    (8, "start", KYIV_OBLAST),
    (12, "fail", "ukrainealarm"),
    (18, "end", KYIV_CITY),
    (22, "end", KYIV_OBLAST),
    (26, "end", KHARKIV_OBLAST),
)
#: What each resident must receive, in order (Apprise notify types: failure = alert, success = all-clear).
EXPECTED: dict[str, tuple[str, ...]] = {
    "olena": ("failure", "success"),
    "mykola": ("success",),  # its start came before alertd ran: recorded, not announced
    "anna": ("failure", "success"),
    "taras": (),
}
_LABELS = {"failure": "alert", "success": "all-clear", "warning": "advisory", "info": "info"}
#: alertd INFO log lines worth showing; every WARNING and above is shown.
_SHOWN_INFO = ("alert started", "alert ended", "alert already active", "source recovered")
_ID_FIELD = re.compile(r"\s+id=\S+")
#: Facts of a log line that mean nothing to a demo viewer (ids, and a status the message already says).
_HIDDEN_FIELDS = frozenset({"id", "event", "status"})


class _Narrator:
    """Writes timestamped lines to ``out`` from any thread (the sink and Apprise call in from theirs)."""

    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.color = color
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def line(self, text: str = "") -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def say(self, who: str, text: str, code: str = "") -> None:
        stamp = f"{self.elapsed():6.1f}s"
        body = f"{who:<9} {text}"
        self.line(f"{self.style(stamp, '2')}  {self.style(body, code) if code else body}")


class _LogToNarrator(logging.Handler):
    """Shows alertd's own decisions (state changes, poll failures) dimmed among the narration."""

    def __init__(self, narrator: _Narrator) -> None:
        super().__init__(logging.INFO)
        self.narrator = narrator

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno < logging.WARNING and not text.startswith(_SHOWN_INFO):
                return
            # ids mean nothing to a demo viewer; every other fact is shown as logged
            shown = format_fields({k: v for k, v in fields_of(record).items() if k not in _HIDDEN_FIELDS})
            text = _ID_FIELD.sub("", f"{text} {shown}" if shown else text)
            level = "" if record.levelno == logging.INFO else f"{record.levelname} "
            self.narrator.say("alertd", level + text, "2")
        except Exception:
            self.handleError(record)


def _use_color(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _settings(
    upstream: Upstream, sink: Sink, state_dir: Path, language: str, registry: RegionRegistry
) -> Settings:
    def source(name: str, url: str) -> dict[str, object]:
        return {"name": name, "type": name, "url": url, "token": DEMO_TOKEN, "interval": 1, "jitter": 0.2}

    return load_settings(
        None,
        env={},  # the user's ALERTD_* variables and config file play no part in the demo
        registry=registry,
        validate_urls=True,
        state_dir=state_dir,
        language=language,
        log_level="WARNING",
        sources=[
            source("alerts_in_ua", upstream.alerts_in_ua_url) | {"timeout": 2},
            source("ukrainealarm", upstream.ukrainealarm_url) | {"timeout": 2},
        ],
        subscribers=[
            {"name": r.name, "regions": [r.region], "language": r.language, "urls": [sink.url(r.name)]}
            for r in RESIDENTS
        ],
        http={"enabled": False},
        tracker={"announce_existing": False},
        delivery={"retry_base": 0.5, "retry_max": 2},
    )


class _Demo:
    def __init__(
        self,
        narrator: _Narrator,
        registry: RegionRegistry,
        upstream: Upstream,
        sink: Sink,
        duration: float,
    ) -> None:
        self.n = narrator
        self.registry = registry
        self.upstream = upstream
        self.sink = sink
        self.duration = duration
        self.scale = duration / BASE_DURATION
        self.stop = asyncio.Event()
        self.finishing = False  # True once the demo itself stops the daemon (else: a signal did)
        self.regions = {r.name: registry.get(r.region) for r in RESIDENTS}

    # -- helpers -------------------------------------------------------------------------------
    def place(self, code: str) -> str:
        region = self.registry.get(code)
        if region is None:
            return code
        return f"{region.name_uk} / {region.name_en}" if region.name_uk != region.name_en else region.name_en

    def uid_region(self, uid: object) -> str:
        region = self.registry.by_source_id("alerts_in_ua", str(uid))
        return region.code if region is not None else str(uid)

    def listeners(self, code: str) -> list[str]:
        return [r.name for r in RESIDENTS if self.registry.related(r.region, code)]

    @property
    def interrupted(self) -> bool:
        return self.stop.is_set() and not self.finishing

    async def sleep_until(self, at: float) -> bool:
        """Sleep until ``at`` seconds since start; False when stopped (interrupted) first."""
        delay = at - self.n.elapsed()
        if self.stop.is_set():
            return False
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
        return not self.stop.is_set()

    def on_message(self, received: Received) -> None:
        """Sink callback (server thread): one line per message a resident received."""
        name = received.path.strip("/")
        label = _LABELS.get(received.type, received.type or "message")
        text = " | ".join(line.strip() for line in received.message.splitlines() if line.strip())
        code = {"failure": "1;31", "success": "1;32"}.get(received.type, "1")
        self.n.say(f"→ {name}", self.n.style(f"received {label}:", code) + f" {text}")

    def received_types(self) -> dict[str, tuple[str, ...]]:
        got: dict[str, list[str]] = {r.name: [] for r in RESIDENTS}
        for item in self.sink.received(delivered=True):
            got.setdefault(item.path.strip("/"), []).append(item.type)
        return {name: tuple(types) for name, types in got.items()}

    # -- the run -------------------------------------------------------------------------------
    def intro(self, settings: Settings) -> None:
        n = self.n
        n.line(
            n.style("alertd demo", "1") + " — the real daemon against a scripted upstream, all on 127.0.0.1"
        )
        n.line(f"  upstream (simulated alerts.in.ua + ukrainealarm): {self.upstream.url}")
        n.line(f"  notification sink (Apprise json://):               {self.sink.url('')}")
        n.line(f"  state (SQLite): {settings.db_path}")
        n.line("  residents:")
        for r in RESIDENTS:
            lang = r.language or settings.language
            n.line(f"    {r.name:<7} {r.region:<7} {self.place(r.region)}  [{lang}]  {self.sink.url(r.name)}")
        n.line(
            f"  timeline: {self.duration:g} s; both sources polled every second. "
            "Lines: upstream = what the feeds say, alertd = its decisions, → = what a resident received."
        )
        n.line()

    async def wait_first_polls(self, app: asyncio.Task[int], ready: asyncio.Event) -> bool:
        """Until both sources had a good first poll (their baseline); False if the app ended first."""
        deadline = time.monotonic() + 15
        ready_wait = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({app, ready_wait}, return_when=asyncio.FIRST_COMPLETED, timeout=15)
        finally:
            ready_wait.cancel()
        while not app.done() and not self.stop.is_set() and time.monotonic() < deadline:
            if all(
                any(r.status == 200 and r.sent_at for r in self.upstream.requests(endpoint))
                for endpoint in ("alerts_in_ua", "ukrainealarm")
            ):
                await asyncio.sleep(0.3)  # let both first polls commit
                return True
            await asyncio.sleep(0.05)
        return False

    async def timeline(self, start: float) -> None:
        n = self.n
        for at, action, arg in TIMELINE:
            if not await self.sleep_until(start + at * self.scale):
                return
            if action == "start":
                code = self.uid_region(arg)
                self.upstream.add_alert(arg)  # type: ignore[arg-type]
                who = ", ".join(self.listeners(code)) or "nobody"
                n.say("upstream", f"air raid started in {self.place(code)}  (should reach: {who})", "1;33")
            elif action == "end":
                code = self.uid_region(arg)
                self.upstream.clear_alert(arg)  # type: ignore[arg-type]
                who = ", ".join(self.listeners(code)) or "nobody"
                n.say(
                    "upstream",
                    f"air raid over in {self.place(code)}  "
                    f"(alertd waits for two clean polls of every source; should reach: {who})",
                    "1;33",
                )
            elif action == "fail":
                # both endpoints: a failing status index alone only makes alertd fetch the full list
                self.upstream.set_fault("http500", "ukrainealarm_status", count=2)
                self.upstream.set_fault("http500", "ukrainealarm", count=2)
                n.say(
                    "upstream",
                    "ukrainealarm starts failing (HTTP 500 on its next 2 polls); alerts.in.ua still answers",
                    "1;33",
                )
                n.say("", "a failing source changes nothing: no alert ends, no alert starts, state unchanged")

    async def settle(self, start: float) -> None:
        """Wait to the end of the run, longer (bounded) while expected messages are still due."""
        if not await self.sleep_until(start + self.duration):
            return
        if self.received_types() == EXPECTED:
            return
        self.n.say("", "waiting for the remaining messages…")
        deadline = self.n.elapsed() + SETTLE_TIMEOUT
        while self.n.elapsed() < deadline and self.received_types() != EXPECTED:
            if not await self.sleep_until(self.n.elapsed() + 0.2):
                return
        await self.sleep_until(self.n.elapsed() + 0.5)  # anything extra (a duplicate) would show now

    async def run(self, settings: Settings, registry: RegionRegistry) -> int:
        n = self.n
        self.intro(settings)
        since = (datetime.now(UTC) - timedelta(minutes=40)).replace(second=0, microsecond=0)
        self.upstream.add_alert(KHARKIV_OBLAST, started_at=since)
        local = since.astimezone(_zone(settings.timezone)).strftime("%H:%M")
        n.say(
            "upstream",
            f"air raid already running in {self.place('UA-63')} since {local}, before alertd starts",
            "1;33",
        )
        ready = asyncio.Event()

        def on_ready() -> None:
            # after run_app's logging setup: 1-second polls on a busy machine make APScheduler
            # warn about late or overlapping runs; that is noise here (its errors still show)
            logging.getLogger("apscheduler").setLevel(logging.ERROR)
            ready.set()

        app = asyncio.create_task(
            run_app(settings, registry, stop=self.stop, on_ready=on_ready, log_level="WARNING")
        )
        n.say("alertd", "starting (no config file, no token from you, no internet)")
        ok = await self.wait_first_polls(app, ready)
        if ok:
            n.say(
                "",
                "first polls done: the Kharkiv alert is recorded, not announced "
                "(no flood on start-up); mykola will hear when it ends",
            )
            start = n.elapsed()
            await self.timeline(start)
            await self.settle(start)
        elif not self.stop.is_set() and not app.done():
            n.say("alertd", "the first polls did not succeed within 15 s", "1;31")
        self.finishing = not self.stop.is_set()
        self.stop.set()
        code = await app
        if code != 0:
            n.say("alertd", f"the daemon exited with code {code}", "1;31")
        return code


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _summary(demo: _Demo, settings: Settings, kept: bool, interrupted: bool) -> bool:
    """Print the summary; True when every resident received exactly what they should have."""
    n = demo.n
    got = demo.received_types()
    n.line()
    head = "interrupted" if interrupted else "done"
    n.line(n.style(f"{head} after {n.elapsed():.1f} s", "1"))
    all_ok = True
    for r in RESIDENTS:
        types = got.get(r.name, ())
        want = EXPECTED[r.name]
        ok = types == want
        all_ok &= ok
        labels = ", ".join(_LABELS.get(t, t) for t in types) or "nothing"
        note = ""
        if r.name == "mykola":
            note = "  (its alert began before alertd started: recorded, not announced)"
        elif not want:
            note = "  (no alert in that region)"
        if ok:
            mark = n.style("ok", "32")
        elif interrupted:
            mark = f"(of {len(want)})"
        else:
            mark = n.style(
                f"expected {len(want)}: " + (", ".join(_LABELS[t] for t in want) or "nothing"), "1;31"
            )
        n.line(f"  {r.name:<7} {len(types)} message(s): {labels:<20} {mark}{note}")
    counts: dict[str, int] = {}
    if store_exists(settings):
        store = open_store(settings)
        try:
            counts = store.outbox_counts()
        finally:
            store.close()
    undelivered = sum(v for k, v in counts.items() if k != "delivered")
    outbox = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "empty"
    n.line(f"  outbox: {outbox}" + ("  — all delivered" if counts and not undelivered else ""))
    where = str(settings.db_path) if kept else f"{settings.db_path} (temporary; keep it with --state-dir)"
    n.line(f"  state file: {where}")
    return all_ok and not undelivered


async def run_demo(
    duration: float = BASE_DURATION,
    out: TextIO | None = None,
    language: str = "uk",
    state_dir: Path | None = None,
) -> int:
    """Run the demo; 0 when every resident received exactly its messages, 1 if not, 130 if interrupted.

    ``language`` is the message language of residents without their own (anna
    always reads English); the narration itself is English with place names in
    both. ``state_dir`` keeps the SQLite state there (default: a temporary
    directory, removed at the end).
    """
    if duration < MIN_DURATION:
        raise ValueError(f"duration must be at least {MIN_DURATION:g} seconds")
    if language not in LANGUAGES:
        raise ValueError("language must be 'uk' or 'en'")
    out = out or sys.stdout
    # Everything the demo talks to is on 127.0.0.1: a proxy from the environment must not
    # catch it (alertd's own fetcher never proxies loopback; Apprise reads NO_PROXY).
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = no_proxy_with_loopback(os.environ.get(name))
    narrator = _Narrator(out, _use_color(out))
    registry = RegionRegistry.load()
    loop = asyncio.get_running_loop()
    alertd_log = logging.getLogger("alertd")
    saved_log = (alertd_log.level, alertd_log.propagate)
    handler = _LogToNarrator(narrator)
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alertd-demo-")))
        else:
            state = state_dir
            state.mkdir(parents=True, exist_ok=True)
        upstream = stack.enter_context(Upstream(token=DEMO_TOKEN, registry=registry, timeout_delay=2.5))
        sink = Sink()
        settings = _settings(upstream, sink, state, language, registry)
        demo = _Demo(narrator, registry, upstream, sink, duration)
        sink.on_message = demo.on_message
        stack.enter_context(sink)

        def on_signals() -> None:
            """Ctrl-C before the daemon installs its own handlers (and after it removes them) stops the demo too."""
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, demo.stop.set)

        def off_signals() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)

        on_signals()
        stack.callback(off_signals)
        handler.addFilter(SecretFilter(settings_secrets(settings)))
        stack.callback(logging.getLogger("apscheduler").setLevel, logging.getLogger("apscheduler").level)
        alertd_log.addHandler(handler)
        alertd_log.setLevel(logging.INFO)
        alertd_log.propagate = False  # alertd's lines go to the narration, not to stderr as well
        try:
            code = await demo.run(settings, registry)
            on_signals()  # the daemon removed its handlers on the way out
        finally:
            alertd_log.removeHandler(handler)
            alertd_log.setLevel(saved_log[0])
            alertd_log.propagate = saved_log[1]
        interrupted = demo.interrupted
        all_ok = _summary(demo, settings, kept=state_dir is not None, interrupted=interrupted)
    if interrupted:
        return EXIT_INTERRUPTED
    if code != 0:
        return code
    return 0 if all_ok else 1
