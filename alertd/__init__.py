"""alertd: a civilian air-alert notification daemon."""

import sys

__version__ = "0.1.0"

# httpx's package imports its command-line client (httpx._main) whenever click, pygments and
# rich are installed (a dev or test environment, or any shared one): ≈ 4 MB of RSS in every
# alertd process for a tool alertd never runs. Marked absent before httpx is first imported,
# httpx defines its "client not installed" stub instead; a real import done earlier is kept.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
