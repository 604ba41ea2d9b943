"""City scenario: a nationwide alert with broadcast topics plus 10,000 individual channels.

alertd runs as a real process (``python -m alertd run``) polling the simulated
alerts.in.ua upstream. Configured:

* **topics** at oblast and hromada level (``json://…/t/{code}`` on the fast sink, one path
  per place: 27 oblasts + 1,469 hromadas = 1,496 topics), every kind;
* **N individual channels** (default 10,000), one subscriber each, spread round-robin over
  the 27 oblasts (so each subscriber hears exactly one of the alerts below).

One flip starts an air-raid alert in **every oblast at once** (one upstream change, so one
poll carries 27 new alerts). Every topic receives exactly one post (an oblast alert reaches
the oblast's topic and each hromada topic inside it) and every individual channel one.

Reported per run (all on one clock; "sent" = the moment the upstream finished writing the
poll response that carried the alerts, i.e. detection):

* **last topic** — the last of the 1,496 topic posts received, − sent;
* **last individual** — the last of the N individual deliveries received, − sent;
* first topic / first individual, and how many individual deliveries had arrived before
  the last topic post (topics are routed, claimed and sent first).

Usage: ``python bench/city.py [--individuals 10000] [--repeat 1] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OBLAST_UIDS, TOKEN, Alertd, Sink, machine, median, table, tempdir, wait_until

from alertd.core.model import RegionLevel
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import SimAlert, Upstream


def write_city_config(
    directory: Path, upstream_url: str, sink: Sink, individuals: int, concurrency: int | None
) -> Path:
    oblasts = list(OBLAST_UIDS.values())
    lines = [
        f'state_dir = "{directory / "state"}"',
        'log_level = "WARNING"',
        "[http]",
        "enabled = false",
        "[tracker]",
        "end_confirmations = 1",
    ]
    if concurrency:
        lines += ["[delivery]", f"concurrency = {concurrency}"]
    lines += [
        "[[sources]]",
        'name = "aiu"',
        'type = "alerts_in_ua"',
        f'url = "{upstream_url}"',
        f'token = "{TOKEN}"',
        "interval = 1",
        "timeout = 5",
        "jitter = 0",
        "[[topics]]",
        'name = "places"',
        f'url = "{sink.url("/t/")}{{code}}"',
        'levels = ["oblast", "hromada"]',
    ]
    for i in range(individuals):
        lines += [
            "[[subscribers]]",
            f'name = "s{i}"',
            f'regions = ["{oblasts[i % len(oblasts)]}"]',
            f'urls = ["{sink.url(f"/c{i}")}"]',
        ]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_one(sink: Sink, individuals: int, concurrency: int | None, topics: int) -> dict[str, float]:
    total = topics + individuals
    with Upstream(token=TOKEN) as up, tempdir("city") as tmp:
        config = write_city_config(Path(tmp), up.alerts_in_ua_url, sink, individuals, concurrency)
        proc = Alertd(config)
        try:
            if not wait_until(lambda: any(r.status == 200 for r in up.requests("alerts_in_ua")), 300, 0.1):
                raise RuntimeError("alertd never polled:\n" + proc.tail())
            time.sleep(1.5)  # the baseline poll is done: nothing is announced from it
            sink.reset()
            t_flip = time.time()
            up.set_alerts(SimAlert(uid) for uid in OBLAST_UIDS)
            got = sink.wait_count(total, timeout=900)
            if got < total or not proc.alive():
                raise RuntimeError(f"{got}/{total} delivered\n" + proc.tail())
            records = sink.records()
            carrier = [
                r for r in up.requests("alerts_in_ua") if r.status == 200 and (r.sent_at or 0) > t_flip
            ]
            if not carrier:
                raise RuntimeError("no poll response carried the alerts")
            sent = min(r.sent_at for r in carrier)  # type: ignore[type-var]
        finally:
            proc.stop()
    topic_times = sorted(t for t, path, kind in records if path.startswith("/t/") and kind == "failure")
    person_times = sorted(t for t, path, kind in records if path.startswith("/c") and kind == "failure")
    topic_paths = {path for _, path, _ in records if path.startswith("/t/")}
    if len(topic_times) != topics or len(topic_paths) != topics or len(person_times) != individuals:
        raise RuntimeError(
            f"expected {topics} topic posts on {topics} paths and {individuals} individual deliveries, "
            f"got {len(topic_times)} on {len(topic_paths)} paths and {len(person_times)}"
        )
    last_topic = topic_times[-1]
    return {
        "first_topic": topic_times[0] - sent,
        "last_topic": last_topic - sent,
        "first_person": person_times[0] - sent,
        "last_person": person_times[-1] - sent,
        "persons_before_last_topic": float(sum(1 for t in person_times if t < last_topic)),
        "detect": sent - t_flip,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="delivery.concurrency (default: alertd's)"
    )
    args = parser.parse_args()
    registry = RegionRegistry.load()
    topics = sum(1 for r in registry if r.level in (RegionLevel.OBLAST, RegionLevel.HROMADA))
    print(f"# city scenario — {machine()}")
    runs = []
    with Sink() as sink:
        for i in range(args.repeat):
            t0 = time.monotonic()
            r = run_one(sink, args.individuals, args.concurrency, topics)
            runs.append(r)
            print(
                f"  run {i + 1}: last topic {r['last_topic']:.2f}s, last individual {r['last_person']:.2f}s "
                f"after detection ({time.monotonic() - t0:.0f}s in all)",
                file=sys.stderr,
                flush=True,
            )
    col = {k: median([r[k] for r in runs]) for k in runs[0]}
    print(
        table(
            [
                "oblast alerts",
                "topics",
                "individual",
                "runs",
                "first topic s",
                "**last topic s**",
                "first individual s",
                "**last individual s**",
                "individual before last topic",
            ],
            [
                [
                    len(OBLAST_UIDS),
                    topics,
                    args.individuals,
                    len(runs),
                    col["first_topic"],
                    col["last_topic"],
                    col["first_person"],
                    col["last_person"],
                    int(col["persons_before_last_topic"]),
                ]
            ],
        )
    )
    print("(seconds after the poll response that carried the alerts was sent; medians over runs)")


if __name__ == "__main__":
    main()
