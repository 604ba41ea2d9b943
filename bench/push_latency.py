"""Push latency: the upstream posts a webhook; when does the resident's sink hear the start?

alertd runs as a real process (``python -m alertd run``) with one ukrainealarm source at
the simulated upstream (:class:`alertd.devtools.simulate.Upstream`, in this process),
its push endpoint on a free local port, and one subscriber (a ``json://`` channel on the
fast sink, ``bench/_sink.py``) following every oblast. The hook URL is registered with
the upstream by ``python -m alertd webhooks register``, as an operator would.

Polling is slow on purpose (``interval`` 30 s, 60 s while pushes arrive), so what is
measured is the push path. Each push: start an air-raid alert in a fresh oblast (no end
needed between pushes), note the time, let the upstream POST the region's state to the
registered URL, wait for the sink to receive the start. Latency = sink receipt − the
moment before the POST, one clock. One warm-up push (not counted) loads the router and
the channel cache.

Usage: ``python bench/push_latency.py [--pushes 20]``. Target: p99 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    OBLAST_UIDS,
    PYTHON,
    TOKEN,
    Alertd,
    Sink,
    alertd_env,
    free_port,
    machine,
    median,
    pct,
    table,
    tempdir,
    wait_until,
)

from alertd.devtools.simulate import Upstream


def write_config(directory: Path, upstream: Upstream, port: int, secret: str, channel: str) -> Path:
    regions = ", ".join(f'"{code}"' for code in OBLAST_UIDS.values())
    text = f"""
state_dir = "{directory / "state"}"
log_level = "WARNING"
[http]
enabled = true
listen = "127.0.0.1:{port}"
[webhooks]
public_url = "http://127.0.0.1:{port}"
[[sources]]
name = "ualarm"
type = "ukrainealarm"
url = "{upstream.ukrainealarm_url}"
token = "{TOKEN}"
webhook_secret = "{secret}"
interval = 30
push_interval = 60
timeout = 5
jitter = 0
[[subscribers]]
name = "resident"
regions = [{regions}]
urls = ["{channel}"]
"""
    path = directory / "alertd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(sink: Sink, pushes: int) -> list[float]:
    uids = list(OBLAST_UIDS)
    if pushes + 1 > len(uids):
        raise SystemExit(f"at most {len(uids) - 1} pushes (one fresh oblast each)")
    latencies: list[float] = []
    with Upstream(token=TOKEN) as up, tempdir("push") as tmp:
        port = free_port()
        config = write_config(Path(tmp), up, port, secrets.token_hex(24), sink.url("/resident"))
        proc = Alertd(config)
        try:
            if not wait_until(lambda: any(r.status == 200 for r in up.requests("ukrainealarm")), 120, 0.1):
                raise RuntimeError("alertd never polled:\n" + proc.tail())
            time.sleep(1.0)  # the baseline poll committed
            reg = subprocess.run(
                [
                    PYTHON,
                    "-m",
                    "alertd",
                    "webhooks",
                    "register",
                    "--source",
                    "ualarm",
                    "--config",
                    str(config),
                ],
                env=alertd_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            if reg.returncode != 0 or len(up.webhooks) != 1:
                raise RuntimeError(f"registration failed: {reg.stdout}{reg.stderr}")
            print(f"  {reg.stdout.strip()}", file=sys.stderr)
            for i, uid in enumerate(uids[: pushes + 1]):
                sink.reset()
                up.add_alert(uid)
                t_push = time.time()
                if up.push(uid) != [200]:
                    raise RuntimeError(f"push {i} refused\n" + proc.tail())
                if sink.wait_count(1, timeout=60) < 1 or not proc.alive():
                    raise RuntimeError(f"push {i}: nothing delivered\n" + proc.tail())
                (received, _path, notify_type) = sink.records()[0]
                if notify_type != "failure":
                    raise RuntimeError(f"push {i}: got a {notify_type} notice, not a start")
                if i:  # the first one is the warm-up
                    latencies.append(received - t_push)
        finally:
            proc.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20)
    args = parser.parse_args()
    print(f"# push latency — {machine()}")
    with Sink() as sink:
        ms = [v * 1000 for v in run(sink, args.pushes)]
    print(
        table(
            ["pushes", "p50 ms", "p99 ms", "max ms", "median ms"],
            [[len(ms), pct(ms, 50), pct(ms, 99), max(ms), median(ms)]],
        )
    )
    print("(sink receipt of the start − the upstream starting its webhook POST; p99 of 20 is the worst one)")


if __name__ == "__main__":
    main()
