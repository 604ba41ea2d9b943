"""Memory and idle cost of ``alertd run`` as a real process.

Three configurations, alerts.in.ua sources polling the simulated upstream every 2 s
(no jitter; every poll after the first is a 304), the HTTP server on (/healthz,
/metrics on a free port, as in production), log level WARNING:

* **1 source** and **10 sources** — one subscriber;
* **10 sources + 10,000 subscribers** — one ``json://`` channel each, in the config
  file. Measured twice: idle after start-up (routing table and channel cache not
  built yet), and idle again after one alert was fanned out to all 10,000 channels
  (router and channel cache loaded: the steady state of a daemon that has alerted once).

Figures: RSS now (VmRSS) and peak (VmHWM) from /proc, and CPU seconds (utime+stime)
over 60 s idle → percent of one core.

Usage: ``python bench/idle.py [--seconds 60] [--subscribers 10000] [--only 1|10|subscribers]``
(``--only`` runs one configuration: the 10-source idle CPU check takes about 1.5 min alone).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TOKEN, Alertd, Sink, free_port, machine, table, tempdir, wait_until, write_config

from alertd.devtools.simulate import Upstream


def _idle(proc: Alertd, seconds: float) -> tuple[float, float, int, int]:
    c0, t0 = proc.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = proc.cpu_seconds() - c0, time.monotonic() - t0
    return cpu, wall, proc.status("VmRSS"), proc.status("VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument(
        "--only",
        choices=["1", "10", "subscribers"],
        help="run one configuration: 1 source, 10 sources, or 10 sources + the subscribers",
    )
    args = parser.parse_args()
    configs = {"1": (1, 0), "10": (10, 0), "subscribers": (10, args.subscribers)}
    chosen = [configs[args.only]] if args.only else list(configs.values())
    print(f"# idle cost — {machine()}")
    rows = []
    with Upstream(token=TOKEN) as up, Sink() as sink:
        for sources, subs in chosen:
            with tempdir("idle") as tmp:
                channels = [sink.url(f"/c{i}") for i in range(max(1, subs))]
                config = write_config(
                    Path(tmp), upstream_url=up.alerts_in_ua_url, sources=sources, interval=2,
                    channels=channels, regions=["UA-30"], http_port=free_port(),
                )  # fmt: skip
                up.clear_requests()
                proc = Alertd(config)
                try:
                    settled = wait_until(
                        lambda n=sources: sum(r.status == 304 for r in up.requests()) >= n, 300, 0.2
                    )
                    if not settled:
                        raise RuntimeError("alertd did not settle:\n" + proc.tail())
                    time.sleep(2)
                    label = f"{sources} source{'s' if sources > 1 else ''}" + (
                        f" + {subs:,} subscribers" if subs else ""
                    )
                    cpu, wall, rss, hwm = _idle(proc, args.seconds)
                    rows.append([label, "after start-up", rss / 1024, hwm / 1024, cpu, 100 * cpu / wall])
                    print(f"  {rows[-1]}", file=sys.stderr, flush=True)
                    if subs:
                        sink.reset()
                        up.add_alert(31)  # Kyiv city: every subscriber follows UA-30
                        got = sink.wait_count(subs, timeout=600)
                        if got < subs:
                            raise RuntimeError(f"fan-out: {got}/{subs}\n" + proc.tail())
                        time.sleep(3)  # outcomes flushed, threads idle
                        cpu, wall, rss, hwm = _idle(proc, args.seconds)
                        rows.append(
                            [label, "after one alert to all", rss / 1024, hwm / 1024, cpu, 100 * cpu / wall]
                        )
                        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
                        up.clear_alerts()
                finally:
                    proc.stop()
    print(table(["config", "when", "RSS MB", "peak RSS MB", f"CPU s / {args.seconds:g} s", "CPU %"], rows))
    print("(RSS = VmRSS, peak = VmHWM of the alertd process; CPU = utime+stime while idle, polls every 2 s)")


if __name__ == "__main__":
    main()
