"""What `alertd run` imports and does not (issue 12, RSS): checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

_CHECK = """
import json, sys
import alertd.cli, alertd.run.app, alertd.run.daemon
import httpx
from alertd.sources.rss import parse_feed
loaded = {name: sys.modules.get(name) is not None for name in ("httpx._main", "rich", "pygments", "feedparser")}
loaded["httpx_ok"] = callable(httpx.AsyncClient) and callable(httpx.main)
feed = b'<rss version="2.0"><channel><title>t</title><item><title>Advisory</title><guid>1</guid></item></channel></rss>'
loaded["rss_titles"] = [n.title for n in parse_feed(feed, source="rss").notices]
loaded["feedparser_after_parse"] = "feedparser" in sys.modules
print(json.dumps(loaded))
"""


def test_the_daemon_does_not_import_httpxs_cli_or_feedparser_until_a_feed_needs_it() -> None:
    done = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["httpx._main"] is False and got["rich"] is False and got["pygments"] is False
    assert got["feedparser"] is False and got["httpx_ok"] is True
    assert got["rss_titles"] == ["Advisory"] and got["feedparser_after_parse"] is True
