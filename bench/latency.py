"""Detection latency: an alert flips on upstream at a random moment; when do the sinks hear it?

alertd runs as a real process (``python -m alertd run``) polling the simulated
alerts.in.ua upstream (:class:`alertd.devtools.simulate.Upstream`, in this process) with N
subscribers, one ``json://`` channel each, on the fast sink (``bench/_sink.py``).

Each flip: wait a random time in [0, interval), start an air-raid alert in an oblast
every subscriber follows (a fresh oblast per flip, so no end notice is needed), then
wait until all N channels received the start notice. Per flip:

* **first / last** — sink receipt of the first / last channel minus the flip moment
  (includes waiting for the next poll: on average interval/2);
* **overhead first / last** — the same receipts minus the moment the upstream finished
  sending the poll response that carried the alert (``RecordedRequest.sent_at``):
  alertd's own cost (parse, tracker, routing + outbox transaction, claim, render, Apprise).

One warm-up flip (not counted) loads the router and the channel cache, as in a daemon
that has been running. Same machine clock for all timestamps.

Usage: ``python bench/latency.py [--n 1 100 1000 10000] [--interval 1 10] [--flips 20]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OBLAST_UIDS, TOKEN, Alertd, Sink, machine, pct, table, tempdir, wait_until, write_config

from alertd.devtools.simulate import Upstream


def run_one(sink: Sink, n: int, interval: float, flips: int, rng: random.Random) -> dict[str, list[float]]:
    uids = list(OBLAST_UIDS)
    rng.shuffle(uids)
    if flips + 1 > len(uids):
        raise SystemExit(f"at most {len(uids) - 1} flips (one fresh oblast each)")
    out: dict[str, list[float]] = {"first": [], "last": [], "ov_first": [], "ov_last": [], "fanout": []}
    with Upstream(token=TOKEN) as up, tempdir("latency") as tmp:
        channels = [sink.url(f"/c{i}") for i in range(n)]
        config = write_config(
            Path(tmp), upstream_url=up.alerts_in_ua_url, interval=interval, channels=channels,
            regions=list(OBLAST_UIDS.values()),
        )  # fmt: skip
        proc = Alertd(config)
        try:
            # baseline: the first good poll (fresh install: nothing announced)
            if not wait_until(lambda: any(r.status == 200 for r in up.requests("alerts_in_ua")), 300, 0.1):
                raise RuntimeError("alertd never polled:\n" + proc.tail())
            time.sleep(interval + 0.5)
            for i, uid in enumerate(uids[: flips + 1]):
                sink.reset()
                time.sleep(rng.uniform(0, interval))
                t_flip = time.time()
                up.add_alert(uid)
                got = sink.wait_count(n, timeout=600)
                if got < n or not proc.alive():
                    raise RuntimeError(f"flip {i}: {got}/{n} delivered\n" + proc.tail())
                times = sorted(r[0] for r in sink.records() if r[2] == "failure")
                carrier = [
                    r for r in up.requests("alerts_in_ua") if r.status == 200 and (r.sent_at or 0) > t_flip
                ]
                if not carrier or len(times) < n:
                    raise RuntimeError(f"flip {i}: no poll response found / {len(times)} start notices")
                sent = min(r.sent_at for r in carrier)  # type: ignore[type-var]
                if i == 0:
                    continue  # warm-up
                out["first"].append(times[0] - t_flip)
                out["last"].append(times[n - 1] - t_flip)
                out["ov_first"].append(times[0] - sent)
                out["ov_last"].append(times[n - 1] - sent)
                out["fanout"].append(times[n - 1] - times[0])
        finally:
            proc.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 100, 1000, 10_000])
    parser.add_argument("--interval", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"# detection latency — {machine()}")
    rows = []
    with Sink() as sink:
        for interval in args.interval:
            for n in args.n:
                t0 = time.monotonic()
                r = run_one(sink, n, interval, args.flips, rng)
                ms = {k: [v * 1000 for v in vals] for k, vals in r.items()}
                row = [
                    f"{interval:g} s", n, len(ms["first"]),
                    pct(ms["first"], 50), pct(ms["first"], 99), pct(ms["last"], 50), pct(ms["last"], 99),
                    pct(ms["ov_first"], 50), pct(ms["ov_first"], 99), pct(ms["ov_last"], 50), pct(ms["ov_last"], 99),
                ]  # fmt: skip
                rows.append(row)
                print(
                    f"  interval {interval:g}s N={n}: done in {time.monotonic() - t0:.0f}s; "
                    f"overhead first p50/p99 {row[7]:.0f}/{row[8]:.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        table(
            [
                "poll",
                "N",
                "flips",
                "first p50 ms",
                "first p99 ms",
                "last p50 ms",
                "last p99 ms",
                "overhead first p50",
                "overhead first p99",
                "overhead last p50",
                "overhead last p99",
            ],
            rows,
        ),
    )
    print(
        "(first/last: sink receipt − flip; overhead: sink receipt − poll response sent; ms; "
        f"p99 of {args.flips} flips is {'the worst one' if args.flips < 100 else 'the 99th percentile'})"
    )


if __name__ == "__main__":
    main()
