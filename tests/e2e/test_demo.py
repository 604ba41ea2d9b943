"""``alertd demo`` as a process: no config, no token, no network beyond 127.0.0.1.

The demo's terminal output is the thing under test: a resident's message is a line
``→ <name>  received alert: …`` or ``received all-clear: …``. Nothing asserts on timing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RECEIVED = re.compile(r"→ (\w+)\s+received (alert|all-clear):")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    # a config the demo must ignore: it builds its own settings and never reads $ALERTD_CONFIG
    env["ALERTD_CONFIG"] = str(tmp_path / "missing.toml")
    env["HOME"] = str(tmp_path)
    return env


def _demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "alertd", "demo", *args],
        env=env or _env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def _received(output: str) -> Counter[tuple[str, str]]:
    return Counter(RECEIVED.findall(output))


def test_demo_runs_the_scripted_timeline(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _demo(tmp_path, "--duration", "12", "--state-dir", str(state))
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in out + err

    got = _received(out)
    # each resident heard its start and end exactly once; Lviv heard nothing
    assert got == Counter(
        {
            ("olena", "alert"): 1,  # Kyiv city
            ("olena", "all-clear"): 1,
            ("anna", "alert"): 1,  # Irpin hromada hears its oblast (Kyiv oblast)
            ("anna", "all-clear"): 1,
            ("mykola", "all-clear"): 1,  # Kharkiv: active at start, recorded not announced; its end is
        }
    ), out
    # the Irpin resident reads English, the others Ukrainian
    assert re.search(r"→ anna\s+received alert: .*Air raid alert — Kyiv Oblast", out), out
    assert re.search(r"→ olena\s+received alert: .*Повітряна тривога — Київ", out), out
    assert re.search(r"recorded not announced source=\S+ kind=air_raid region=UA-63 ", out), out
    # the failing source is shown, and its failures changed nothing
    assert "poll failed (alert state unchanged) source=ukrainealarm" in out
    assert "demo-token" not in out + err
    # summary and the kept state file
    assert "all delivered" in out
    assert (state / "alertd.sqlite3").is_file()
    assert str(state / "alertd.sqlite3") in out


def test_demo_in_english(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--duration", "12", "--language", "en")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, out + err
    assert re.search(r"→ olena\s+received alert: .*Air raid alert — Kyiv", out), out
    assert re.search(r"→ mykola\s+received all-clear: .*All clear — Kharkiv Oblast", out), out
    assert "Traceback" not in out + err


def test_demo_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--duration", "30")
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    # interrupt once the first resident has been alerted: the daemon is mid-run
    for line in proc.stdout:
        seen.append(line)
        if RECEIVED.search(line) or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "interrupted after" in out
    assert ("olena", "alert") in _received(out)


def test_demo_rejects_a_too_short_duration(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--duration", "5")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "between 12 and 3600 seconds" in err


def test_demo_reaches_its_stand_ins_whatever_the_proxy_environment(tmp_path: Path) -> None:
    """A proxy that answers nothing (the discard port), and no NO_PROXY: the demo still works."""
    env = {k: v for k, v in _env(tmp_path).items() if k.lower() != "no_proxy"}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env[name] = "http://127.0.0.1:9"
    proc = _demo(tmp_path, "--duration", "12", env=env)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, out + err
    assert "the first polls did not succeed" not in out + err
    got = _received(out)
    assert got[("olena", "alert")] == 1 and got[("olena", "all-clear")] == 1, out
    assert "all delivered" in out
