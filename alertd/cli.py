"""The ``alertd`` command line: run, check, parse, status, subscribers, test-notify, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alertd import __version__
from alertd.core.languages import LANGUAGES
from alertd.errors import ConfigError, ParseError, StoreError

if TYPE_CHECKING:  # imported lazily at run time: `alertd --help` must stay quick
    from alertd.config import Settings, SourceConfig
    from alertd.core.model import Notice
    from alertd.core.regions import RegionRegistry
    from alertd.sources.spec import ParseInput
    from alertd.store.base import SourceCursor, StateStore

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _config_path(value: str | None) -> Path | None:
    raw = value or os.environ.get("ALERTD_CONFIG")
    return Path(raw) if raw else None


def _add_config(p: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """``--config``; ``nested`` for an action under a command that has it too, so either place works
    (``alertd subscribers --config X add …`` and ``alertd subscribers add … --config X``)."""
    p.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS if nested else None,
        help="configuration file (TOML); default: $ALERTD_CONFIG",
    )


def build_parser() -> argparse.ArgumentParser:
    from alertd.sources import REGISTRY

    parser = argparse.ArgumentParser(
        prog="alertd",
        description="Civilian air-alert notification daemon: polls alert feeds and advisories, "
        "tracks alert state and notifies subscribers through Apprise.",
    )
    parser.add_argument("--version", action="version", version=f"alertd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the daemon (poll, track, deliver) until SIGTERM/SIGINT")
    _add_config(p)
    p.add_argument(
        "--once", action="store_true", help="poll every source once, deliver what is due, and exit"
    )
    p.add_argument("--log-format", choices=("text", "json"), help="log line format (default: config or text)")
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")
    p.add_argument(
        "--init",
        action="store_true",
        help="start with an empty state even though the state file exists but is empty or not a "
        "database (refused without this flag; the old file is kept beside it as *.refused-TIME)",
    )

    p = sub.add_parser("check", help="validate the configuration and print one line per problem")
    _add_config(p)
    p.add_argument("--no-url-check", action="store_true", help="skip loading Apprise URLs")

    p = sub.add_parser(
        "parse",
        help="print what alertd sees in saved feed payloads, as JSON Lines",
        description="Parse saved upstream payloads and print one JSON object per active alert or notice. "
        "On an untrustworthy payload print one error line on stderr and exit non-zero.",
    )
    p.add_argument(
        "--source", required=True, choices=tuple(REGISTRY), help="feed type of the payload (a source type)"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="payload files; - reads standard input")

    p = sub.add_parser("subscribers", help="manage subscribers kept in the state file")
    _add_config(p)
    subs = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = subs.add_parser(
        "add", help="add a subscriber (regions checked against the registry, URLs with Apprise)"
    )
    _add_config(a, nested=True)
    a.add_argument("name", help="unique name")
    a.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="REGION",
        help="region code (UA-30, ua:6293) or an unambiguous place name (Київ, Irpin); repeatable",
    )
    a.add_argument(
        "--kind", action="append", default=[], metavar="KIND", help="alert kind; repeatable; none: every kind"
    )
    a.add_argument(
        "--advisory",
        action="append",
        default=[],
        metavar="SOURCE|CC",
        help="hear advisories of this source name or ISO country code; repeatable",
    )
    a.add_argument("--language", choices=LANGUAGES, help="message language (default: the configured one)")
    a.add_argument(
        "--url", action="append", default=[], metavar="APPRISE_URL", required=True, help="channel; repeatable"
    )
    a = subs.add_parser("list", help="list every subscriber (config file and state file), URLs masked")
    _add_config(a, nested=True)
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a = subs.add_parser("show", help="show one subscriber, URLs masked")
    _add_config(a, nested=True)
    a.add_argument("name")
    a = subs.add_parser("remove", help="remove a subscriber kept in the state file")
    _add_config(a, nested=True)
    a.add_argument("name")

    p = sub.add_parser(
        "test-notify",
        help="send a clearly marked test message and print each channel's real outcome",
        description="Send a test message (not an alert) now, outside the outbox, and print each channel's outcome. "
        "Without --subscriber or --url, every subscriber channel and every operator channel is tried.",
    )
    _add_config(p)
    p.add_argument(
        "--subscriber", action="append", default=[], metavar="NAME", help="only this subscriber's channels"
    )
    p.add_argument(
        "--url", action="append", default=[], metavar="APPRISE_URL", help="this channel (no config needed)"
    )
    p.add_argument("--language", choices=LANGUAGES, help="message language")

    p = sub.add_parser(
        "topics",
        help="list the broadcast topic(s) residents of a place follow, URLs masked",
        description="Without PLACE: every [[topics]] section and how many places it covers. With PLACE "
        "(a region code or a place name): the topic of each section that carries every alert covering "
        "that place (the place's own, else its nearest enclosing place's), its masked Apprise URL and "
        "the public link residents open.",
    )
    _add_config(p)
    p.add_argument(
        "place", nargs="?", metavar="PLACE", help='region code or place name, e.g. "ua:706" or Ірпінь'
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("regions", help="find region codes by name (Ukrainian or English)")
    p.add_argument("query", nargs="?", help="part of a place name; without it, the 27 first-level divisions")
    p.add_argument("--limit", type=int, default=20, help="most results to print (default 20)")

    p = sub.add_parser(
        "demo",
        help="watch alertd work for about half a minute: no token, no internet, no config needed",
        description="Start a scripted upstream (a local stand-in for alerts.in.ua and ukrainealarm) and a "
        "local notification sink on 127.0.0.1, run the real daemon against them and show, as it happens, "
        "the alerts starting and ending upstream, what alertd decides and the messages four residents "
        "receive (Kyiv, Kharkiv oblast, Irpin, Lviv). Includes an alert already active at start (recorded, "
        "not announced) and a source failing for a while (nothing changes). Ctrl-C stops it early. "
        "Exit status: 0 when every resident received exactly its messages.",
    )
    p.add_argument(
        "--duration",
        type=_demo_duration,
        default=30.0,
        metavar="SECONDS",
        help="length of the scripted timeline, at least 12 (default 30); shorter compresses it",
    )
    p.add_argument(
        "--language",
        choices=LANGUAGES,
        default="uk",
        help="message language of the residents (default uk; one resident always reads English)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the demo's SQLite state here (default: a temporary directory, removed at the end)",
    )

    p = sub.add_parser(
        "webhooks",
        help="register alertd's push endpoint with the upstream (ukrainealarm), check or remove it",
        description="Pushes instead of polls: register <webhooks.public_url>/hooks/ukrainealarm/<secret> "
        "with the source's upstream (POST /api/v3/webhook), show what the endpoint has received "
        "(asked through the public URL), or unregister it.",
    )
    p.add_argument("action", choices=("register", "status", "unregister"), help="what to do")
    p.add_argument(
        "--source", required=True, metavar="NAME", help="a ukrainealarm source with a webhook_secret"
    )
    _add_config(p)

    p = sub.add_parser(
        "store",
        help="move the state to another store (SQLite -> PostgreSQL)",
        description="migrate: copy this install's SQLite state (subscribers, tracker state, events, "
        "outbox, self-service rows) into an empty PostgreSQL database and verify every table's row "
        "count before committing. Stop the daemon first; the SQLite file is left as it was.",
    )
    p.add_argument("action", choices=("migrate",), help="what to do")
    p.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="postgresql://user:password@host:port/db (or 'env' to read ALERTD_STORE__URL)",
    )
    _add_config(p)

    p = sub.add_parser("status", help="print active alerts and source health from the state file")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "run": cmd_run,
        "check": cmd_check,
        "parse": cmd_parse,
        "status": cmd_status,
        "subscribers": cmd_subscribers,
        "regions": cmd_regions,
        "topics": cmd_topics,
        "test-notify": cmd_test_notify,
        "demo": cmd_demo,
        "webhooks": cmd_webhooks,
        "store": cmd_store,
    }[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"config error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"state error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


# -- parse ------------------------------------------------------------------------------
def _parse_record(item: object) -> dict[str, Any]:
    from alertd.core.model import ActiveAlert, Notice, iso_utc

    if isinstance(item, ActiveAlert):
        record = {
            "source": None,
            "kind": str(item.kind),
            "region": {
                "code": item.region.code,
                "level": str(item.region.level),
                "name": item.region.name("uk"),
                "name_en": item.region.name_en,
                "oblast": item.region.oblast,
            },
            "source_id": item.source_id,
            "started_at": iso_utc(item.started_at),
        }
        if item.ended_at is not None:
            record["ended_at"] = iso_utc(item.ended_at)
        return record
    assert isinstance(item, Notice)
    data = item.model_dump(mode="json", exclude_none=True)
    data["published_at"] = iso_utc(item.published_at)
    data["updated_at"] = iso_utc(item.updated_at)
    data["kind"] = str(item.kind)
    return data


def cmd_parse(args: argparse.Namespace) -> int:
    """Parse saved payloads with the type's parser; a thin index's linked messages are fetched."""
    from alertd.config import SourceConfig
    from alertd.core.model import Notice
    from alertd.core.regions import RegionRegistry
    from alertd.sources import REGISTRY
    from alertd.sources.spec import ParseInput

    spec = REGISTRY[args.source]
    registry = RegionRegistry.load()
    lines: list[str] = []
    for name in args.files:
        where = "<stdin>" if name == "-" else name
        try:
            body = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            print(f"alertd parse: cannot read {name}: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILURE
        payload = ParseInput(body, args.source, registry, where)
        try:
            if spec.parse_state is not None:
                snapshot = spec.parse_state(payload)
            else:
                assert spec.parse_items is not None
                notices, skipped = asyncio.run(
                    _parse_items(SourceConfig(name=args.source, type=args.source), payload)
                )
        except ParseError as exc:
            print(f"alertd parse: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        if spec.parse_state is not None:
            for warning in snapshot.warnings:
                print(f"alertd parse: warning: {where}: {warning}", file=sys.stderr)
            for item in (*snapshot.alerts, *snapshot.ended):
                record = _parse_record(item)
                record["source"] = args.source
                ended = item.ended_at is not None or item in snapshot.ended
                record["status"] = "ended" if ended else "active"
                lines.append(json.dumps(record, ensure_ascii=False))
        else:
            for reason in skipped:
                print(f"alertd parse: warning: {where}: {reason}", file=sys.stderr)
            lines += [
                json.dumps(_parse_record(n), ensure_ascii=False) for n in notices if isinstance(n, Notice)
            ]
    # all files parsed before anything is printed: a bad file yields nothing on stdout
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


async def _parse_items(cfg: SourceConfig, payload: ParseInput) -> tuple[list[Notice], list[str]]:
    """An item feed's notices, with the messages a thin index links to fetched (as the daemon would)."""
    from alertd.run.fetch import make_client
    from alertd.run.poll import MessageCache, resolve_links
    from alertd.sources import REGISTRY

    parse_items = REGISTRY[cfg.type].parse_items
    assert parse_items is not None
    batch = parse_items(payload)
    notices = list(batch.notices)
    reasons = [item.reason for item in batch.skipped]
    if batch.links:
        async with make_client() as client:
            linked, skipped, _ = await resolve_links(
                client, cfg, batch, payload.registry, MessageCache(), base_url=payload.where, limit=10_000
            )
        notices += linked
        reasons += [item.reason for item in skipped]
    return notices, reasons


# -- check ------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from alertd.config import load_settings, summary
    from alertd.core.regions import RegionRegistry

    path = _config_path(args.config)
    if path is None:
        print("alertd check: no configuration: pass --config PATH or set ALERTD_CONFIG", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings(path, registry=RegionRegistry.load(), validate_urls=not args.no_url_check)
    except ConfigError as exc:
        for line in exc.problems:
            print(line)
        return EXIT_CONFIG
    print(summary(settings))
    return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[Settings, RegionRegistry]:
    from alertd.config import load_settings
    from alertd.core.regions import RegionRegistry

    path = _config_path(args.config)
    if path is None:
        raise ConfigError(["no configuration: pass --config PATH or set ALERTD_CONFIG"])
    registry = RegionRegistry.load()
    return load_settings(path, registry=registry), registry


# -- run --------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from alertd.run.app import run_app

    settings, registry = _load(args)
    return asyncio.run(
        run_app(
            settings,
            registry,
            once=args.once,
            log_format=args.log_format,
            log_level=args.log_level,
            init=args.init,
        )
    )


# -- status -----------------------------------------------------------------------------
def cmd_webhooks(args: argparse.Namespace) -> int:
    import asyncio

    import httpx

    from alertd.run import webhooks
    from alertd.run.fetch import make_client

    settings, _registry = _load(args)
    action = {"register": webhooks.register, "status": webhooks.status, "unregister": webhooks.unregister}[
        args.action
    ]

    async def go() -> webhooks.Outcome:
        async with make_client() as client:
            try:
                return await action(client, settings, args.source)
            except httpx.HTTPError as exc:
                return webhooks.Outcome(False, f"upstream not reachable: {type(exc).__name__}")

    outcome = asyncio.run(go())
    print(outcome.text, file=sys.stdout if outcome.ok else sys.stderr)
    return EXIT_OK if outcome.ok else EXIT_FAILURE


def cmd_status(args: argparse.Namespace) -> int:
    from alertd.core.model import iso_utc
    from alertd.store import open_store, store_exists

    settings, _registry = _load(args)
    if not store_exists(settings):
        print(f"no state yet at {settings.db_path} (alertd has not run with this configuration)")
        return EXIT_OK
    store = open_store(settings)
    try:
        active = store.active_alerts()
        cursors = {c.name: c for c in store.cursors()}
        depth = store.outbox_depth()
        size = store.size_bytes()
        leases = {lease.source: lease for lease in store.leases()}
        claims = store.claims()
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "active": [
                        {
                            "region": a.region.code,
                            "name": a.region.name(settings.language),
                            "kind": str(a.kind),
                            "started_at": iso_utc(a.started_at),
                            "source": a.source,
                        }
                        for a in active
                    ],
                    "sources": {
                        cfg.name: _cursor_json(cursors.get(cfg.name))
                        for cfg in settings.sources
                        if cfg.enabled
                    },
                    "outbox": depth,
                    "store": {"location": store.location, "size_bytes": size},
                    "leases": {
                        name: {"holder": lease.holder, "until": iso_utc(lease.until), "live": lease.live}
                        for name, lease in leases.items()
                    },
                    "claimed": claims,
                },
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    print(f"active alerts: {len(active)}")
    for a in active:
        print(
            f"  {a.kind:<14} {a.region.code:<10} {a.region.name(settings.language)}  since {iso_utc(a.started_at)}  ({a.source})"
        )
    print("sources:")
    now = datetime.now(UTC)
    for cfg in settings.sources:
        if not cfg.enabled:
            continue
        c = cursors.get(cfg.name)
        if c is None or c.last_attempt is None:
            print(f"  {cfg.name:<20} never polled")
            continue
        health = (
            "ok"
            if c.consecutive_failures == 0
            else f"FAILING ({c.consecutive_failures} in a row: {c.last_error})"
        )
        ago = f"{(now - c.last_success).total_seconds():.0f}s ago" if c.last_success else "never"
        lease = leases.get(cfg.name)
        held = ""
        if lease is not None:  # several instances on one shared store
            held = f"; polled by {lease.holder}" if lease.live else f"; lease of {lease.holder} expired"
        print(f"  {cfg.name:<20} {health}; last success {ago}; polls every {cfg.interval:g}s{held}")
    print(f"outbox: {depth} deliveries pending")
    for name, count in sorted(claims.items()):
        print(f"  claimed by {name}: {count}")
    print(f"state: {store.location}" + (f" ({_size(size)})" if size is not None else ""))
    return EXIT_OK


def cmd_store(args: argparse.Namespace) -> int:
    """``alertd store migrate --to URL``: SQLite in state_dir → an empty PostgreSQL database."""
    from alertd.store.migrate import copy_sqlite_to_postgres
    from alertd.store.postgres import redact_url

    settings, _registry = _load(args)
    url = os.environ.get("ALERTD_STORE__URL", "") if args.to == "env" else args.to
    if not url.startswith(("postgresql://", "postgres://")):
        print("store migrate: --to must be a postgresql:// URL", file=sys.stderr)
        return EXIT_CONFIG
    copies = copy_sqlite_to_postgres(settings.db_path, url)
    for c in copies:
        print(f"  {c.table:<18} {c.source_rows:>8} rows copied, {c.copied_rows} verified")
    print(
        f"migrated {settings.db_path} to {redact_url(url)}: {sum(c.copied_rows for c in copies)} rows. "
        "Set [store] url (or url_file) in the configuration of every instance, then start them."
    )
    return EXIT_OK


def _size(n: int) -> str:
    """Bytes for people: 812 KiB, 27.4 MiB."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("bytes", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


def _cursor_json(c: SourceCursor | None) -> dict[str, Any] | None:
    from alertd.core.model import iso_utc

    if c is None:
        return None
    return {
        "last_success": iso_utc(c.last_success),
        "last_attempt": iso_utc(c.last_attempt),
        "consecutive_failures": c.consecutive_failures,
        "last_error": c.last_error,
    }


# -- topics -----------------------------------------------------------------------------
def cmd_topics(args: argparse.Namespace) -> int:
    from alertd import channels
    from alertd.core.route import topic_bindings
    from alertd.core.topics import for_place

    settings, registry = _load(args)
    bindings = topic_bindings(settings, registry)
    if args.place is None:
        records: list[dict[str, Any]] = []
        for topic in settings.topics:
            mine = [b for b in bindings if b.topic == topic.name]
            records.append(
                {
                    "name": topic.name,
                    "levels": list(topic.levels),
                    "places": len(mine),
                    "topics": len({b.url for b in mine}),
                    "kinds": [str(k) for k in topic.kinds],
                    "language": topic.language or settings.language,
                    "example": channels.mask(mine[0].url) if mine else None,
                }
            )
        if args.json:
            print(json.dumps(records, ensure_ascii=False, indent=2))
        elif not records:
            print("no [[topics]] configured", file=sys.stderr)
        for r in records if not args.json else []:
            where = ", ".join(r["levels"]) if r["levels"] else "explicit list"
            print(
                f"{r['name']}: {r['topics']} topic(s) for {r['places']} place(s) ({where}), e.g. {r['example']}"
            )
        return EXIT_OK if records else EXIT_FAILURE
    code, error = _resolve_region(registry, args.place)
    if code is None:
        print(error, file=sys.stderr)
        return EXIT_FAILURE
    region = registry.get(code)
    assert region is not None
    found: list[dict[str, Any]] = [
        {
            "topic": b.topic,
            "place": b.place,
            "place_name": _names(registry, b.place),
            "url": channels.mask(b.url),
            "follow": b.follow,
            "language": b.language,
            "kinds": sorted(str(k) for k in b.kinds),
        }
        for b in for_place(bindings, registry, code)
    ]
    if args.json:
        print(json.dumps({"region": code, "topics": found}, ensure_ascii=False, indent=2))
    else:
        print(f"{code} {region.name('uk')} / {region.name('en')}")
        if not found:
            print("  no topic covers this place")
        for t in found:
            print(f"  {t['topic']}: {t['url']}  (place {t['place']}, {t['place_name']['en']})")
            if t["follow"]:
                print(f"    follow: {t['follow']}")
    return EXIT_OK if found else EXIT_FAILURE


def _names(registry: RegionRegistry, code: str) -> dict[str, str]:
    place = registry.get(code)
    return {"uk": place.name("uk"), "en": place.name("en")} if place is not None else {"uk": code, "en": code}


# -- regions ----------------------------------------------------------------------------
def cmd_regions(args: argparse.Namespace) -> int:
    from alertd.core.regions import RegionRegistry

    registry = RegionRegistry.load()
    regions = registry.search(args.query, limit=args.limit) if args.query else registry.oblasts()
    if not regions:
        print(f"no region matches {args.query!r}", file=sys.stderr)
        return EXIT_FAILURE
    for r in regions:
        print(f"{r.code:<10} {r.level:<8} {r.name_uk}  /  {r.name_en}  ({r.oblast})")
    return EXIT_OK


# -- subscribers ------------------------------------------------------------------------
def _resolve_region(registry: RegionRegistry, value: str) -> tuple[str | None, str | None]:
    """A region code, or a place name that names exactly one region; else an error text."""
    if registry.get(value) is not None:
        return value, None
    matches = registry.find(value)
    if len(matches) == 1:
        return matches[0].code, None
    if matches:
        options = ", ".join(f"{r.code} ({r.name('uk')}, {r.oblast})" for r in matches[:6])
        return None, f"{value!r} names {len(matches)} places; use a code: {options}"
    hints = registry.search(value, limit=5)
    hint = f"; did you mean {', '.join(f'{r.code} ({r.name()})' for r in hints)}?" if hints else ""
    return None, f"unknown region {value!r}{hint}"


def cmd_subscribers(args: argparse.Namespace) -> int:
    from alertd.store import open_store

    settings, registry = _load(args)
    store = open_store(settings)
    try:
        if args.action == "add":
            return _subscribers_add(args, settings, registry, store)
        if args.action == "remove":
            return _subscribers_remove(args, settings, store)
        return _subscribers_show(args, settings, registry, store)
    finally:
        store.close()


def _subscribers_add(
    args: argparse.Namespace, settings: Settings, registry: RegionRegistry, store: StateStore
) -> int:
    """``subscribers add``: every problem with the arguments at once, else one row in the store."""
    from alertd.store import StoredSubscriber

    problems, regions, kinds = _add_problems(args, settings, registry)
    if problems:
        for line in problems:
            print(f"alertd subscribers add: {line}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        store.add_subscriber(
            StoredSubscriber(
                name=args.name,
                regions=regions,
                kinds=kinds,
                advisories=tuple(args.advisory),
                language=args.language,
                urls=tuple(args.url),
            )
        )
    except StoreError as exc:
        print(f"alertd subscribers add: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"added {args.name}: regions {', '.join(regions) or '-'}; {len(args.url)} channel(s)")
    return EXIT_OK


def _add_problems(
    args: argparse.Namespace, settings: Settings, registry: RegionRegistry
) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    """What is wrong with ``subscribers add``'s arguments, and the region codes and kinds they name.

    Regions may be given by name here (the CLI's convenience); kinds and advisories follow the
    rules of :mod:`alertd.core.subscribers`, the same as the configuration file and self-service.
    """
    from alertd import channels
    from alertd.core.subscribers import check_advisories, check_kinds
    from alertd.core.topics import is_topic

    problems: list[str] = []
    if is_topic(args.name):  # the outbox tells topic posts from people by this prefix
        problems.append(f"NAME: names starting with 'topic:' are reserved for [[topics]] ({args.name!r})")
    regions: list[str] = []
    for value in args.region:
        code, error = _resolve_region(registry, value)
        if code is None:
            problems.append(f"--region: {error}")
        elif code not in regions:
            regions.append(code)
    kinds, kind_problems = check_kinds(args.kind)
    problems += [f"--kind: {p.text}" for p in kind_problems]
    _advisories, advisory_problems = check_advisories(args.advisory, {s.name for s in settings.sources})
    problems += [f"--advisory: {p.text}" for p in advisory_problems]
    for i, url in enumerate(args.url):
        problem = channels.problem(url)
        if problem:
            problems.append(f"--url[{i}]: {problem}")
    if not regions and not args.advisory:
        problems.append("give at least one --region or --advisory: this subscriber would hear nothing")
    if any(s.name == args.name for s in settings.subscribers):
        problems.append(f"{args.name!r} is already a subscriber in the configuration file")
    return problems, tuple(regions), tuple(str(k) for k in kinds)


def _subscribers_remove(args: argparse.Namespace, settings: Settings, store: StateStore) -> int:
    """``subscribers remove``: only store rows; a subscriber from the configuration file is edited there."""
    if store.remove_subscriber(args.name):
        print(f"removed {args.name}")
        return EXIT_OK
    if any(s.name == args.name for s in settings.subscribers):
        print(
            f"alertd subscribers remove: {args.name!r} is defined in the configuration file; edit it there",
            file=sys.stderr,
        )
    else:
        print(f"alertd subscribers remove: no subscriber named {args.name!r}", file=sys.stderr)
    return EXIT_FAILURE


def _subscribers_show(
    args: argparse.Namespace, settings: Settings, registry: RegionRegistry, store: StateStore
) -> int:
    """``subscribers list`` and ``show NAME``: masked channels, region names beside the codes."""
    from alertd import channels

    records = _all_subscribers(settings, store)
    if args.action == "show":
        records = [r for r in records if r["name"] == args.name]
        if not records:
            print(f"alertd subscribers show: no subscriber named {args.name!r}", file=sys.stderr)
            return EXIT_FAILURE
    for record in records:
        # channels.mask shortens phone numbers that Apprise's privacy URL keeps in the path.
        record["urls"] = [channels.mask(u) for u in record["urls"]]
        record["regions"] = [
            f"{code} ({region.name(settings.language)})" if (region := registry.get(code)) else code
            for code in record["regions"]
        ]
    if getattr(args, "json", False):
        print(json.dumps(records, ensure_ascii=False, indent=None))
        return EXIT_OK
    if not records:
        print("no subscribers")
    for r in records:
        print(f"{r['name']}  [{r['origin']}]  language={r['language']}")
        print(f"  regions:    {', '.join(r['regions']) or '-'}")
        print(f"  kinds:      {', '.join(r['kinds']) or 'every kind'}")
        print(f"  advisories: {', '.join(r['advisories']) or '-'}")
        for url in r["urls"]:
            print(f"  channel:    {url}")
    return EXIT_OK


def _all_subscribers(settings: Settings, store: StateStore) -> list[dict[str, Any]]:
    records = [
        {
            "name": s.name,
            "origin": "config",
            "regions": list(s.regions),
            "kinds": [str(k) for k in s.kinds],
            "advisories": list(s.advisories),
            "language": s.language or settings.language,
            "urls": [u.get_secret_value() for u in s.urls],
        }
        for s in settings.subscribers
    ]
    records += [
        {
            "name": s.name,
            "origin": s.origin,
            "regions": list(s.regions),
            "kinds": list(s.kinds),
            "advisories": list(s.advisories),
            "language": s.language or settings.language,
            "urls": list(s.urls),
        }
        for s in store.subscribers(status=None)
    ]
    return records


# -- test-notify ------------------------------------------------------------------------
def cmd_test_notify(args: argparse.Namespace) -> int:
    from alertd.config import load_settings
    from alertd.logs import setup_logging
    from alertd.run.dispatch import send_test
    from alertd.store import open_store

    if args.url and not args.subscriber and _config_path(args.config) is None:
        # a bare URL needs no configuration: defaults for language and time zone
        settings = load_settings(None, env={}, validate_urls=False)
        targets = [(url, args.language or settings.language) for url in args.url]
    else:
        settings, _registry = _load(args)
        store = open_store(settings)
        try:
            records = _all_subscribers(settings, store)
        finally:
            store.close()
        if args.subscriber:
            unknown = set(args.subscriber) - {r["name"] for r in records}
            if unknown:
                print(
                    f"alertd test-notify: no subscriber named {', '.join(sorted(unknown))}", file=sys.stderr
                )
                return EXIT_FAILURE
            records = [r for r in records if r["name"] in args.subscriber]
        if args.subscriber or not args.url:
            targets = [(u, args.language or r["language"]) for r in records for u in r["urls"]]
        else:
            targets = []
        targets += [(u, args.language or settings.language) for u in args.url]
        if not args.subscriber and not args.url:
            targets += [(u.get_secret_value(), settings.operators.language) for u in settings.operators.urls]
    if not targets:
        print("alertd test-notify: no channels to test", file=sys.stderr)
        return EXIT_FAILURE
    setup_logging(level="WARNING", fmt="text", secrets=[u for u, _ in targets])

    async def send() -> list[tuple[str, bool, str]]:
        results: list[tuple[str, bool, str]] = []
        for language in sorted({lang for _, lang in targets}):
            results += await send_test(settings, [u for u, lang in targets if lang == language], language)
        return results

    results = asyncio.run(send())
    failed = 0
    for masked, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'}  {masked}" + ("" if ok else f"  ({detail})"))
        failed += not ok
    print(f"{len(results) - failed} ok, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_FAILURE


# -- demo -------------------------------------------------------------------------------
def _demo_duration(value: str) -> float:
    from alertd.devtools.demo import MIN_DURATION

    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not MIN_DURATION <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"between {MIN_DURATION:g} and 3600 seconds")
    return seconds


def cmd_demo(args: argparse.Namespace) -> int:
    from alertd.devtools.demo import run_demo

    state_dir = Path(args.state_dir) if args.state_dir else None
    return asyncio.run(run_demo(args.duration, language=args.language, state_dir=state_dir))


logging.getLogger("alertd").addHandler(logging.NullHandler())
