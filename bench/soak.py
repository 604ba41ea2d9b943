"""Soak: alertd as a process for N minutes, an alert flipping on and off every 10 s.

What it shows (issue 11, "unbounded growth"): over a long run nothing is lost or
sent twice, and the process and its state file stop growing — RSS, open file
descriptors and the database size level off once retention starts pruning.

Setup: the simulated alerts.in.ua upstream (:class:`alertd.devtools.simulate.Upstream`,
in this process), alertd polling it every second, ``--subscribers`` residents
(one ``json://`` channel each on the fast sink, ``bench/_sink.py``). Every
``--flip`` seconds Kyiv's air-raid alert starts (a fresh start time each time)
or ends; every channel must receive each start (Apprise type ``failure``) and
each end (``success``) exactly once. ``[store] retention`` is short here
(``--retention``, default 2 minutes, pruning every 20 s) so the pruning
that a real install does after 30 days happens inside the run.

Every 10 s it samples alertd's RSS (VmRSS), its open descriptors
(/proc/PID/fd) and the state file plus its WAL. Slopes are least-squares fits,
per hour: over the whole run, and over its second half (after retention has
started working) — the figure that must be near zero.

Usage: ``python bench/soak.py [--minutes 10] [--subscribers 200] [--flip 10]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from _common import TOKEN, Alertd, Sink, machine, table, tempdir, wait_until, write_config

from alertd.devtools.simulate import Upstream

KYIV_UID = 31  # alerts.in.ua uid of Kyiv city (UA-30)
SAMPLE_EVERY = 10.0


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, scaled to one hour."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    if sxx == 0:
        return float("nan")
    sxy = sum((t - mx) * (v - my) for t, v in points)
    return sxy / sxx * 3600.0


def db_bytes(state: Path) -> int:
    total = 0
    for name in ("alertd.sqlite3", "alertd.sqlite3-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += (state / name).stat().st_size
    return total


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--flip", type=float, default=10.0, help="seconds between flips")
    ap.add_argument("--retention", default="2m", help='[store] retention for the run (default "2m")')
    ap.add_argument("--prune-interval", type=float, default=20.0)
    args = ap.parse_args()

    print(f"# soak: {args.minutes:g} min, {args.subscribers} subscribers, a flip every {args.flip:g} s")
    print(f"# {machine()}")
    with Sink() as sink, Upstream(token=TOKEN) as up, tempdir("soak") as tmp:
        directory = Path(tmp)
        channels = [sink.url(f"/c{i}") for i in range(args.subscribers)]
        config = write_config(
            directory,
            upstream_url=up.alerts_in_ua_url,
            interval=1,
            channels=channels,
            regions=["UA-30"],
            log_level="INFO",  # "history pruned" lines are counted below
        )
        with config.open("a", encoding="utf-8") as f:
            f.write(f'[store]\nretention = "{args.retention}"\nprune_interval = {args.prune_interval}\n')
        state = directory / "state"
        proc = Alertd(config)
        try:
            if not wait_until(lambda: any(r.status == 200 for r in up.requests("alerts_in_ua")), 120, 0.1):
                raise SystemExit("alertd never polled:\n" + proc.tail())
            time.sleep(2)  # the baseline poll is done: from now on every change is announced
            up.clear_requests()
            samples: list[tuple[float, int, int, int]] = []  # (t, rss kB, fds, db bytes)
            starts = ends = 0
            t0 = time.monotonic()
            next_flip = t0
            next_sample = t0
            on = False
            deadline = t0 + args.minutes * 60
            while time.monotonic() < deadline:
                now = time.monotonic()
                if now >= next_flip:
                    if on:
                        up.clear_alert(KYIV_UID)
                        ends += 1
                    else:
                        up.add_alert(KYIV_UID)
                        starts += 1
                    on = not on
                    next_flip += args.flip
                if now >= next_sample:
                    if not proc.alive():
                        raise SystemExit("alertd died:\n" + proc.tail())
                    samples.append((now - t0, proc.status("VmRSS"), fds(proc.pid), db_bytes(state)))
                    next_sample += SAMPLE_EVERY
                time.sleep(0.05)
            if on:  # end the last alert so every start has its end
                up.clear_alert(KYIV_UID)
                ends += 1
            expected = (starts + ends) * args.subscribers
            sink.wait_count(expected, timeout=180)
            time.sleep(3)  # anything extra (a duplicate) would arrive now
            records = sink.records()
            samples.append((time.monotonic() - t0, proc.status("VmRSS"), fds(proc.pid), db_bytes(state)))
        finally:
            proc.stop()
        per_channel: dict[str, Counter[str]] = {}
        for _t, path, kind in records:
            per_channel.setdefault(path, Counter())[kind] += 1
        lost = dup = 0
        for i in range(args.subscribers):
            got = per_channel.get(f"/c{i}", Counter())
            for kind, want in (("failure", starts), ("success", ends)):
                have = got.get(kind, 0)
                lost += max(0, want - have)
                dup += max(0, have - want)
        half = [s for s in samples if s[0] >= samples[-1][0] / 2]

        def slopes(points: list[tuple[float, int, int, int]]) -> tuple[str, str, str]:
            rss = slope_per_hour([(t, r / 1024) for t, r, _, _ in points])
            fd = slope_per_hour([(t, f) for t, _, f, _ in points])
            db = slope_per_hour([(t, d / 1e6) for t, _, _, d in points])
            return f"{rss:+.1f} MB/h", f"{fd:+.1f} /h", f"{db:+.2f} MB/h"

        print(f"flips: {starts} starts, {ends} ends; notices expected {expected}, received {len(records)}")
        print(f"lost: {lost}   duplicated: {dup}")
        print(
            table(
                ["window", "RSS slope", "fd slope", "DB size slope"],
                [["whole run", *slopes(samples)], ["second half", *slopes(half)]],
            )
        )
        first, last = samples[0], samples[-1]
        print(
            table(
                ["", "RSS", "fds", "DB (+WAL)"],
                [
                    ["start", f"{first[1] / 1024:.1f} MB", first[2], f"{first[3] / 1e6:.2f} MB"],
                    ["max", f"{max(s[1] for s in samples) / 1024:.1f} MB", max(s[2] for s in samples),
                     f"{max(s[3] for s in samples) / 1e6:.2f} MB"],
                    ["end", f"{last[1] / 1024:.1f} MB", last[2], f"{last[3] / 1e6:.2f} MB"],
                ],
            )
        )  # fmt: skip
        pruned = [line for line in proc.tail(100000).splitlines() if "history pruned" in line]
        print(f"retention runs that pruned: {len(pruned)}")


if __name__ == "__main__":
    main()
