"""Only the Apprise plugin modules a configuration needs are imported (issue 12, RSS).

Apprise imports all of its plugin modules on first use; alertd imports the one module
serving a URL's scheme (alertd.channels._apprise_index) and falls back to Apprise's full
load for anything else. Apprise's plugin registry is one per process, so each case runs
in a fresh interpreter and reports what a resident or an operator would see: whether
the channel loads, its masked name, its service host, its limits, Apprise's complaint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import apprise

from alertd import channels
from alertd.channels import _apprise
from alertd.channels._apprise_index import APPRISE_VERSION, SCHEME_MODULES

#: One URL per commonly used service, each a different plugin module (email is a package).
URLS = [
    "json://127.0.0.1:8080/hook",
    "jsons://user:pass@example.org/hook",
    "form://example.org/path",
    "tgram://123456789:abcdefg_hijklmnop/12345",
    "ntfys://ntfy.example.org/alerts-UA-30",
    "mailto://user:pass@example.org?to=olena@example.org",
    "twilio://AC" + "a" * 32 + ":" + "b" * 32 + "@+15551234567/+15557654321",
    "discord://1234567890/abcdefghijklmnop",
    "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
    "matrixs://user:pass@matrix.example.org/#alerts",
    "signal://127.0.0.1:8080/+380501234567/+380507654321",
]

_REPORT = """
import json, sys
from alertd import channels
from alertd.channels import _apprise, _apprise_index
{setup}
out = {{}}
for url in json.loads(sys.argv[1]):
    ch = channels.load(url)
    out[url] = [ch.usable, ch.masked, ch.host, ch.limits.name, ch.limits.body_maxlen,
                ch.limits.notify_format, ch.limits.sms, ch.error, channels.problem(url)]
mods = sorted(m for m in sys.modules if m.startswith("apprise.plugins."))
print(json.dumps({{"channels": out, "plugin_modules": mods}}))
"""


def _run(urls: list[str], setup: str = "") -> dict:
    code = _REPORT.format(setup=textwrap.dedent(setup))
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(urls)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _full_load_first() -> str:
    return "_apprise._load_all_plugins()"


def test_each_channel_imports_only_its_own_plugin_module_and_loads_as_with_every_plugin() -> None:
    selective = _run(URLS)
    full = _run(URLS, _full_load_first())
    assert selective["channels"] == full["channels"]
    assert all(row[0] for row in selective["channels"].values()), selective["channels"]
    top = {m.split(".")[2] for m in selective["plugin_modules"]}
    wanted = {SCHEME_MODULES[url.partition("://")[0]] for url in URLS}
    assert top == wanted | {"base"}, top - wanted
    assert len({m.split(".")[2] for m in full["plugin_modules"]}) > 3 * len(top)


def test_an_unknown_scheme_gets_apprises_own_complaint() -> None:
    urls = ["notaservice://secret-token/x", "json://"]
    selective = _run(urls)
    assert selective["channels"] == _run(urls, _full_load_first())["channels"]
    unknown = selective["channels"]["notaservice://secret-token/x"]
    assert unknown[0] is False and "secret-token" not in json.dumps(unknown)
    assert unknown[8] == "Apprise cannot load 'notaservice://****': Unparseable URL notaservice://****"
    assert selective["channels"]["json://"][8].startswith(
        "Apprise cannot load 'json://****': Unparseable JSON URL"
    )


def test_a_services_own_https_url_still_loads() -> None:
    """Apprise recognises e.g. a Discord webhook's https:// URL by asking every plugin: full load."""
    url = "https://discord.com/api/webhooks/1234567890/abcdefghijklmnop"
    selective = _run([url])
    assert selective["channels"] == _run([url], _full_load_first())["channels"]
    assert selective["channels"][url][0] and selective["channels"][url][3] == "Discord"


def test_a_table_that_does_not_fit_apprise_costs_memory_not_a_channel() -> None:
    """A scheme the table sends to the wrong module, or to one that does not exist, still loads."""
    urls = ["json://127.0.0.1:8080/hook", "tgram://123456789:abcdefg_hijklmnop/12345"]
    setup = """
        _apprise.SCHEME_MODULES["json"] = "telegram"
        _apprise.SCHEME_MODULES["tgram"] = "no_such_plugin_module"
    """
    wrong = _run(urls, setup)
    assert wrong["channels"] == _run(urls)["channels"]
    assert all(row[0] for row in wrong["channels"].values())


def test_the_scheme_table_matches_the_installed_apprise() -> None:
    installed = _apprise.installed_scheme_modules()
    for url in URLS:  # the services people use most: whatever the Apprise version
        scheme = url.partition("://")[0]
        assert SCHEME_MODULES[scheme] == installed[scheme], scheme
    if apprise.__version__ == APPRISE_VERSION:
        assert installed == SCHEME_MODULES


def test_socket_timeouts_are_set_on_every_plugin_the_url_or_the_deliverys() -> None:
    """Every loaded plugin gets its timeouts set (see _apprise._finish); the URL's own stay without one."""
    own = channels.load("json://localhost/?cto=7&rto=9").plugin
    assert (own.socket_connect_timeout, own.socket_read_timeout) == (7.0, 9.0)
    given = channels.load("json://localhost/?cto=7&rto=9", timeout=2.5).plugin
    assert (given.socket_connect_timeout, given.socket_read_timeout) == (2.5, 2.5)
    default = channels.load("json://localhost/").plugin
    assert (default.socket_connect_timeout, default.socket_read_timeout) == (4.0, 4.0)


_PER_CHANNEL = """
import gc, json, tracemalloc
from alertd import channels
for i in range(300):  # alertd run checks every configured URL first (config validation)
    assert channels.problem(f"json://127.0.0.1:8080/check{i}") is None
cache = channels.ChannelCache(5000, timeout=5)
cache.get("json://127.0.0.1:8080/warm-up")
gc.collect()
tracemalloc.start()
for i in range(2000):
    cache.get(f"json://127.0.0.1:8080/c{i}")
gc.collect()
print(json.dumps(tracemalloc.get_traced_memory()[0] / 2000))
"""


def test_a_loaded_channel_costs_about_1_kb_after_the_config_check() -> None:
    """A dispatcher keeps one loaded channel per resident (10,000 in a city). Each was ≈ 2.8 KB when
    the delivery timeouts reached a plugin after its config-check siblings had none (a dict of its
    own), 1.4 KB with every plugin finished alike, ≈ 1.05 KB slotted, with shared hosts and no
    per-plugin empty tag set."""
    done = subprocess.run([sys.executable, "-c", _PER_CHANNEL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) < 1300
