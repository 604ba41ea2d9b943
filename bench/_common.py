"""Shared pieces of the benchmarks: the sink process, alertd as a process, configs, tables.

Benchmarks print figures; they assert nothing. Every server is on 127.0.0.1.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TOKEN = "bench-token"
#: alerts.in.ua uids of oblast-level regions (uid → registry code), used as flip targets:
#: each flip starts an alert in a fresh oblast, so no end (and no end confirmation) is needed.
OBLAST_UIDS: dict[int, str] = {
    4: "UA-05", 8: "UA-07", 16: "UA-09", 9: "UA-12", 28: "UA-14", 10: "UA-18", 11: "UA-21",
    12: "UA-23", 13: "UA-26", 31: "UA-30", 14: "UA-32", 15: "UA-35", 30: "UA-40", 29: "UA-43",
    27: "UA-46", 17: "UA-48", 18: "UA-51", 19: "UA-53", 5: "UA-56", 20: "UA-59", 21: "UA-61",
    22: "UA-63", 23: "UA-65", 3: "UA-68", 24: "UA-71", 25: "UA-74", 26: "UA-77",
}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# reporting


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import alertd

    return (
        f"alertd at {Path(alertd.__file__).parent}; {os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load {load:.2f}, "
        f"{_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}"
    )


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        out.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(out)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# the sink (bench/_sink.py in its own process)


class Sink:
    """The fast json:// sink as a child process, with its control endpoints."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "_sink.py")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise RuntimeError(f"sink did not start: {line!r}")
        self.port = int(line.split()[1])
        self._seen = 0

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def _get(self, target: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{target}", timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._get("/_reset")

    def records(self, start: int = 0) -> list[tuple[float, str, str]]:
        return [tuple(r) for r in self._get(f"/_stats?from={start}")["items"]]  # type: ignore[misc]

    def count(self) -> int:
        return int(self._get("/_stats?from=999999999")["count"])

    def wait_count(self, n: int, timeout: float = 300.0, step: float = 0.05) -> int:
        deadline = time.monotonic() + timeout
        while True:
            c = self.count()
            if c >= n or time.monotonic() > deadline:
                return c
            time.sleep(step)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# alertd as a process


def alertd_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_config(
    directory: Path,
    *,
    upstream_url: str,
    sources: int = 1,
    interval: float = 1,
    channels: Sequence[str] = (),
    regions: Sequence[str] = ("UA-30",),
    http_port: int | None = None,
    concurrency: int | None = None,
    log_level: str = "WARNING",
) -> Path:
    """An alertd.toml: ``sources`` alerts.in.ua sources at ``upstream_url``, one subscriber per channel."""
    lines = [
        f'state_dir = "{directory / "state"}"',
        f'log_level = "{log_level}"',
        "[http]",
        f"enabled = {'true' if http_port else 'false'}",
    ]
    if http_port:
        lines.append(f'listen = "127.0.0.1:{http_port}"')
    lines += ["[tracker]", "end_confirmations = 1"]
    if concurrency:
        lines += ["[delivery]", f"concurrency = {concurrency}"]
    for i in range(sources):
        lines += [
            "[[sources]]",
            f'name = "aiu{i}"',
            'type = "alerts_in_ua"',
            f'url = "{upstream_url}"',
            f'token = "{TOKEN}"',
            f"interval = {interval}",
            "timeout = 5",
            "jitter = 0",
        ]
    region_list = ", ".join(f'"{r}"' for r in regions)
    for i, url in enumerate(channels):
        lines += ["[[subscribers]]", f'name = "s{i}"', f"regions = [{region_list}]", f'urls = ["{url}"]']
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Alertd:
    """``python -m alertd run --config …`` in the background; stderr to a file."""

    def __init__(self, config: Path) -> None:
        self.log = config.parent / "alertd.log"
        self._stderr = self.log.open("ab")
        self.spawned_at = time.time()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "alertd", "run", "--config", str(config)],
            env=alertd_env(),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self, key: str) -> int:
        """A kB figure from /proc/<pid>/status (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._stderr.close()

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def tempdir(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=f"alertd-bench-{prefix}-")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
