"""The one module that imports Apprise (DESIGN §7: every contact with Apprise lives in ``alertd.channels``).

Three things happen here and nowhere else:

* **Loading** a URL into a plugin (:func:`instantiate`), with what Apprise said
  about it captured, never printed: Apprise logs an unparseable URL verbatim.
* **Sending** one message through one plugin (:func:`notify`), in the calling
  thread. The plugin's own ``notify()`` is called, not ``Apprise.notify()``: the
  wrapper builds a result object and attaches and detaches a log-capture handler
  on every call, under ``logging``'s module-wide lock, which serialised every
  worker thread of a 10,000-channel fan-out (bench/README.md).
* **Capturing** what Apprise logs during a load or a send. One handler stays on
  the ``apprise`` logger for the life of the process and appends a record to the
  calling thread's list only while that thread asked for it (:func:`captured`),
  so capture costs nothing per call and never takes a global lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import apprise
from apprise.conversion.format import convert_between as _untyped_convert_between

__all__ = ["captured", "convert", "install_capture", "instantiate", "notify"]

_LOGGER_NAME = "apprise"


class _ThreadCapture(logging.Handler):
    """Appends the messages of WARNING+ records to the current thread's list, if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: the list is thread-local
        lines: list[str] | None = getattr(self.local, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            try:
                lines.append(record.getMessage())
            except Exception:  # a malformed record must not break a send
                lines.append(str(record.msg))
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does the work
        self.handle(record)


_CAPTURE = _ThreadCapture()
_INSTALL_LOCK = threading.Lock()


def install_capture() -> None:
    """Keep Apprise's records away from the application's handlers and route them to :func:`captured`.

    Idempotent; process-wide by nature (loggers are). The logger keeps its level
    at WARNING at most, or the captured reasons would be lost.
    """
    logger = logging.getLogger(_LOGGER_NAME)
    with _INSTALL_LOCK:
        logger.propagate = False
        if _CAPTURE not in logger.handlers:
            logger.addHandler(_CAPTURE)
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """What Apprise logs at WARNING or above in this thread while the block runs."""
    install_capture()
    previous = getattr(_CAPTURE.local, "lines", None)
    lines: list[str] = []
    _CAPTURE.local.lines = lines
    try:
        yield lines
    finally:
        _CAPTURE.local.lines = previous


#: One asset for every plugin, as one ``Apprise()`` object shares one among its plugins: a
#: fresh ``AppriseAsset`` per plugin is ≈ 300 bytes × 10,000 channels. Never modified.
_ASSET = apprise.AppriseAsset()
#: The same defaults without Apprise's secure logging, for the first load attempt only: with it
#: on, Apprise masks the URL for a log line it builds even when the line is dropped (a second
#: parse, about half of every load). What that attempt logs is thrown away; a URL it cannot
#: load is loaded again with :data:`_ASSET`, whose complaint is the one returned.
_FAST_ASSET = apprise.AppriseAsset(secure_logging=False)


def _load(url: str, asset: Any) -> tuple[Any, list[str]]:
    with captured() as lines:
        try:
            plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
        except Exception as exc:  # Apprise promises not to raise; a bad URL must not crash anything
            plugin = None
            lines.append(type(exc).__name__)
    return (plugin or None), lines


def instantiate(url: str) -> tuple[Any, str]:
    """Apprise's plugin for ``url`` (or None) and Apprise's last complaint about it (raw, NOT scrubbed).

    Loaded once without Apprise's log masking (nothing it logged is kept) and, only
    when that fails, again with it, so the complaint returned is Apprise's masked one.
    A loaded plugin is handed the shared secure asset for everything it does later.
    """
    plugin, _ = _load(url, _FAST_ASSET)
    if plugin is not None:
        plugin.asset = _ASSET
        return plugin, ""
    plugin, lines = _load(url, _ASSET)
    if plugin is not None:  # not expected (the asset differs only in logging); keep what loaded
        return plugin, ""
    reason = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return None, reason


def notify(
    plugin: Any, title: str, body: str, notify_type: str, body_format: str | None
) -> tuple[bool, list[str]]:
    """Send through ``plugin`` in this thread: (its outcome, what it logged at WARNING+). Never raises."""
    kwargs: dict[str, Any] = {"body": body, "title": title, "notify_type": notify_type}
    if body_format is not None:
        kwargs["body_format"] = body_format
    with captured() as lines:
        try:
            ok = bool(plugin.notify(**kwargs))
        except Exception as exc:  # a plugin crash is a failed delivery, not a dispatcher crash
            lines.append(f"{type(exc).__name__}: {exc}")
            ok = False
    return ok, lines


#: Apprise's own text → Markdown/HTML conversion; the function has no annotations, so its
#: signature is stated here once instead of silencing the checker at each call.
convert_between = cast(Callable[[str, str, str], object], _untyped_convert_between)


def convert(text: str, notify_format: str) -> str:
    """``text`` as Apprise converts a plain-text body for a channel of ``notify_format``."""
    if notify_format == "text":
        return text
    return str(convert_between("text", notify_format, text))
