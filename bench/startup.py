"""Start-up: time from spawning ``alertd run`` to its first poll arriving at the upstream.

alertd runs as a real process against the simulated alerts.in.ua upstream (one
source, 1 s interval, HTTP server off, log level WARNING), with 1 subscriber and with
10,000 subscribers in the config file (each ``json://`` URL is checked by Apprise at
load). Also shown: the bare interpreter start and ``import alertd.run.app`` for scale.

Usage: ``python bench/startup.py [--repeat 5] [--subscribers 1 10000]``. Medians.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    TOKEN,
    Alertd,
    alertd_env,
    machine,
    median,
    table,
    tempdir,
    wait_until,
    write_config,
)

from alertd.devtools.simulate import Upstream


def _spawn(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], check=True, env=alertd_env())
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 10_000])
    args = parser.parse_args()
    print(f"# start-up — {machine()}")
    rows = [
        ["python -c pass", "", args.repeat, median([_spawn("pass") for _ in range(args.repeat)]) * 1000],
        ["python -c 'import alertd.run.app'", "", args.repeat,
         median([_spawn("import alertd.run.app") for _ in range(args.repeat)]) * 1000],
    ]  # fmt: skip
    with Upstream(token=TOKEN) as up:
        for subs in args.subscribers:
            samples = []
            repeat = args.repeat if subs < 1000 else max(1, min(args.repeat, 3))
            for _ in range(repeat):
                with tempdir("startup") as tmp:
                    channels = [f"json://127.0.0.1:9/c{i}" for i in range(subs)]
                    config = write_config(Path(tmp), upstream_url=up.alerts_in_ua_url, channels=channels)
                    up.clear_requests()
                    proc = Alertd(config)
                    try:
                        if not wait_until(lambda: up.requests("alerts_in_ua"), 300, 0.01):
                            raise RuntimeError("no poll:\n" + proc.tail())
                        samples.append(up.requests("alerts_in_ua")[0].time - proc.spawned_at)
                    finally:
                        proc.stop()
            rows.append(["alertd run → first poll", f"{subs:,}", repeat, median(samples) * 1000])
            print(
                f"  {subs} subscribers: {[round(s * 1000) for s in samples]} ms", file=sys.stderr, flush=True
            )
    print(table(["what", "subscribers", "runs", "median ms"], rows))


if __name__ == "__main__":
    main()
