"""Shared dispatch: deliveries/s of one event to N channels with 1, 2, 3 instances on one PostgreSQL.

In one run, beside the embedded default (SQLite, one instance): k ``alertd run``
processes share one PostgreSQL database (a throwaway cluster started from the installed
server binaries, ``tests/support/pg.py``) and the fast sink (``bench/_sink.py``). One
instance polls the simulated alerts.in.ua upstream (the poll lease); every instance
claims rows of the shared outbox (``FOR UPDATE SKIP LOCKED``) and delivers them.

Each round: an air-raid alert starts in an oblast all N subscribers (one ``json://``
channel each) follow; the figure is N / (last sink receipt − first sink receipt), i.e.
the fan-out's own rate once it has begun (the poll wait before it is not dispatch).

Usage: ``python bench/shared_dispatch.py [--n 10000] [--instances 1 2 3] [--rounds 2]``.
Medians over rounds (one warm-up round, not counted, loads routers and channel caches).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/support/pg.py

from _common import (
    OBLAST_UIDS,
    TOKEN,
    Alertd,
    Sink,
    machine,
    median,
    table,
    tempdir,
    wait_until,
    write_config,
)

from alertd.devtools.simulate import Upstream


def _config(directory: Path, name: str, upstream: Upstream, channels: list[str], url: str | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(
        directory,
        upstream_url=upstream.alerts_in_ua_url,
        interval=1,
        channels=channels,
        regions=list(OBLAST_UIDS.values()),
    )
    if url is not None:
        text = path.read_text(encoding="utf-8")
        path.write_text(text + f'[store]\nurl = "{url}"\ninstance = "{name}"\n', encoding="utf-8")
    return path


def _connections(url: str) -> int:
    """Client connections to the bench database (each instance's pool keeps at least one)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def run(sink: Sink, n: int, instances: int, rounds: int, url: str | None) -> tuple[list[float], float]:
    """Deliveries/s per counted round, and the seconds until every instance was ready."""
    rates: list[float] = []
    channels = [sink.url(f"/c{i}") for i in range(n)]
    uids = list(OBLAST_UIDS)
    with Upstream(token=TOKEN) as up, tempdir("shared") as tmp:
        procs = [Alertd(_config(Path(tmp) / f"i{k}", f"i{k}", up, channels, url)) for k in range(instances)]
        try:
            began = time.monotonic()
            if not wait_until(lambda: any(r.status == 200 for r in up.requests("alerts_in_ua")), 300, 0.1):
                raise RuntimeError("alertd never polled:\n" + procs[0].tail())
            # every instance has loaded its configuration (10,000 subscribers take a while) and
            # opened its store: one pooled connection each
            if url is not None and not wait_until(lambda: _connections(url) >= instances, 300, 0.2):
                raise RuntimeError("an instance did not start:\n" + "\n".join(p.tail() for p in procs))
            ready = time.monotonic() - began
            time.sleep(2)
            for i, uid in enumerate(uids[: rounds + 1]):
                sink.reset()
                up.add_alert(uid)
                got = sink.wait_count(n, timeout=600)
                if got < n:
                    raise RuntimeError(f"sink got {got}/{n}:\n" + "\n".join(p.tail() for p in procs))
                stamps = sorted(r[0] for r in sink.records())
                rate = n / max(1e-6, stamps[-1] - stamps[0])
                print(
                    f"  {instances} × {'PostgreSQL' if url else 'SQLite'} round {i}: {rate:,.0f}/s",
                    file=sys.stderr,
                )
                if i > 0:
                    rates.append(rate)
        finally:
            for p in procs:
                p.stop()
    return rates, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from support.pg import start_cluster

    cluster = start_cluster()
    if cluster is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    print(f"# shared dispatch — {machine()}")
    rows = []
    try:
        with Sink() as sink:
            rates, ready = run(sink, args.n, 1, args.rounds, None)
            rows.append(["SQLite", 1, median(rates), ready])
            for k in args.instances:
                url = cluster.url(cluster.create_database())
                rates, ready = run(sink, args.n, k, args.rounds, url)
                rows.append(["PostgreSQL", k, median(rates), ready])
    finally:
        cluster.destroy()
    base = rows[0][2]
    print(
        table(
            ["store", "instances", f"deliveries/s (N={args.n:,})", "vs SQLite", "start-up s"],
            [[r[0], r[1], r[2], r[2] / base, r[3]] for r in rows],
        )
    )
    print(
        f"(medians of {args.rounds} rounds after one warm-up; deliveries/s = N / (last − first sink receipt); "
        "every instance on this one 2-core machine, so instances compete for the same cores)"
    )


if __name__ == "__main__":
    main()
