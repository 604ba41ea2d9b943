"""The one module that imports Apprise (DESIGN §7: every contact with Apprise lives in ``alertd.channels``).

Three things happen here and nowhere else:

* **Loading** a URL into a plugin (:func:`instantiate`), with what Apprise said
  about it captured, never printed: Apprise logs an unparseable URL verbatim.
  Only the plugin module serving the URL's scheme is imported (:func:`_ensure_plugin`),
  not all of Apprise's plugins.
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
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import apprise
from apprise.conversion.format import convert_between as _untyped_convert_between
from apprise.manager_plugins import NotificationManager as _UntypedNotificationManager
from apprise.plugins import url_to_dict as _untyped_url_to_dict
from apprise.utils.cwe312 import cwe312_loggable as _untyped_cwe312_loggable
from apprise.utils.parse import GET_SCHEMA_RE as _GET_SCHEMA_RE

from alertd.channels._apprise_index import SCHEME_MODULES

__all__ = ["captured", "convert", "install_capture", "installed_scheme_modules", "instantiate", "notify"]

_LOGGER_NAME = "apprise"
#: Apprise's own logger: complaints alertd words for Apprise are captured like Apprise's.
_LOG = logging.getLogger(_LOGGER_NAME)


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
    logger = _LOG
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


# ------------------------------------------------------------------------------------------------
# plugin modules: only the ones the configured schemes need

#: Apprise's plugin registry (a process-wide singleton, as in Apprise itself).
_PLUGINS: Any = cast(Callable[[], Any], _UntypedNotificationManager)()
#: Marks the registry as set up when only some plugin modules were imported; Apprise's own
#: plugin directory stays unmarked, so :func:`_load_all_plugins` still imports the rest.
_SELECTED = "alertd: selected Apprise plugin modules"
_PLUGIN_LOCK = threading.Lock()


def _known(scheme: str) -> bool:
    """Whether Apprise's registry already serves ``scheme`` (never triggers Apprise's full load)."""
    return bool(_PLUGINS) and scheme in _PLUGINS


def _load_all_plugins() -> None:
    """Apprise's own full load: every plugin module (what Apprise does on first use)."""
    _PLUGINS.load_modules()


def _load_plugin_module(module_name: str) -> None:
    """Import one plugin module and register its plugin as Apprise's ``load_modules`` does.

    Same rules as Apprise: the module's first class named ``Notify…`` with an
    ``app_id``, mapped to every scheme its ``schemas()`` names, a scheme already
    taken keeping its plugin. A later full load skips the module ("already loaded").
    """
    prefix = str(_PLUGINS.module_name_prefix)
    module = importlib.import_module(f"{prefix}.{module_name}")
    plugin = next(
        (
            obj
            for name in dir(module)
            if _PLUGINS.module_filter_re.match(name) and hasattr(obj := getattr(module, name), "app_id")
        ),
        None,
    )
    if plugin is None:
        return
    schemes = plugin.schemas(plugin) if callable(getattr(plugin, "schemas", None)) else set()
    with _PLUGINS._lock:
        if not _PLUGINS:  # nothing loaded yet: set the registry up as load_modules would
            _PLUGINS._module_map, _PLUGINS._schema_map, _PLUGINS._custom_module_map = {}, {}, {}
            _PLUGINS._loaded.add(_SELECTED)
        if module_name in _PLUGINS._module_map:
            return
        _PLUGINS._module_map[module_name] = {
            "plugin": {plugin},
            "module": module,
            "path": f"{prefix}.{module_name}",
            "native": True,
        }
        for scheme in schemes:
            _PLUGINS._schema_map.setdefault(scheme, plugin)


def _ensure_plugin(url: str) -> None:
    """Make Apprise able to load ``url`` while importing as few plugin modules as possible.

    A scheme :data:`SCHEME_MODULES` names: that module alone. Anything else (an
    unknown scheme, a service's own ``https://`` URL that Apprise matches by asking
    every plugin, a table that does not fit the installed Apprise, any surprise in
    Apprise's registry): Apprise's full load, exactly as without this function, so
    Apprise's answer (and its complaint about a bad URL) is always its own.
    """
    match = _GET_SCHEMA_RE.match(url.replace("/#", "/%23"))
    scheme = match.group("schema").lower() if match else ""
    if scheme and _known(scheme):  # the usual case, without the lock
        return
    with _PLUGIN_LOCK:
        if scheme and _known(scheme):
            return
        module_name = SCHEME_MODULES.get(scheme)
        if module_name is not None:
            with contextlib.suppress(Exception):  # a changed Apprise: fall back to its full load
                _load_plugin_module(module_name)
            if _known(scheme):
                return
        _load_all_plugins()


def installed_scheme_modules() -> dict[str, str]:
    """Every scheme of the installed Apprise → its plugin module (imports them all: for tests and
    for regenerating :mod:`alertd.channels._apprise_index`)."""
    with captured():
        _load_all_plugins()
    out: dict[str, str] = {}
    for module_name, meta in _PLUGINS._module_map.items():
        for scheme, plugin in _PLUGINS._schema_map.items():
            if plugin in meta["plugin"]:
                out[scheme] = module_name
    return out


def _instantiate(url: str, asset: Any) -> Any:
    """``Apprise.instantiate(url, asset)`` for a URL string, less its debug line.

    Apprise renders the whole plugin back into a URL only to log it at DEBUG, a level
    alertd never shows: a third of a channel's load, paid again for every channel of a
    fan-out too large for the channel cache. The complaints are Apprise's own words.
    """
    results = url_to_dict(url, secure_logging=asset.secure_logging)
    if results is None:
        return None
    plugin_class = _PLUGINS[results["schema"]]
    if not plugin_class.enabled:
        _LOG.error("%s:// is disabled on this system.", results["schema"])
        return None
    results["tag"] = set()
    results["asset"] = asset
    try:
        return plugin_class(**results)
    except Exception:
        loggable = cwe312_loggable(url, asset.secure_logging)
        _LOG.error(f"Could not load {plugin_class.service_name} URL: {loggable}")
        return None


def _load(url: str, asset: Any) -> tuple[Any, list[str]]:
    with captured() as lines:
        try:
            plugin = _instantiate(url, asset)
        except Exception as exc:  # Apprise promises not to raise; a bad URL must not crash anything
            plugin = None
            lines.append(type(exc).__name__)
    return (plugin or None), lines


def _finish(plugin: Any, timeout: float | None) -> Any:
    """The shared secure asset, and both socket timeouts set on every plugin, in one order.

    ``timeout`` replaces Apprise's (4 s, or the URL's ``cto``/``rto``); without it the
    plugin's own values are set again. Why always: CPython keeps the attributes of a
    class's instances in one compact shared table only while they are added in the same
    order; a plugin given its timeouts when its siblings (loaded to check the config)
    had none got a dict of its own, ≈ 1.6 KB more per channel (16 MB at 10,000 channels).
    """
    plugin.asset = _ASSET
    if not plugin.tags and plugin.tags is not getattr(type(plugin), "tags", None):
        # No tags (alertd never uses Apprise's tags): the class's empty default, as for a plugin
        # built without ``tag``, instead of the fresh empty set Apprise.instantiate gives each.
        del plugin.tags
    connect = plugin.socket_connect_timeout if timeout is None else timeout
    read = plugin.socket_read_timeout if timeout is None else timeout
    plugin.socket_connect_timeout = float(connect)
    plugin.socket_read_timeout = float(read)
    return plugin


def instantiate(url: str, timeout: float | None = None) -> tuple[Any, str]:
    """Apprise's plugin for ``url`` (or None) and Apprise's last complaint about it (raw, NOT scrubbed).

    Loaded once without Apprise's log masking (nothing it logged is kept) and, only
    when that fails, again with it, so the complaint returned is Apprise's masked one.
    A loaded plugin is handed the shared secure asset for everything it does later,
    and ``timeout`` (seconds) for its socket connect and read timeouts (see :func:`_finish`).
    """
    with captured():  # what a full plugin load logs ("already loaded; ignoring …") is noise here
        _ensure_plugin(url)
    plugin, _ = _load(url, _FAST_ASSET)
    if plugin is not None:
        return _finish(plugin, timeout), ""
    plugin, lines = _load(url, _ASSET)
    if plugin is not None:  # not expected (the asset differs only in logging); keep what loaded
        return _finish(plugin, timeout), ""
    reason = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return None, reason


_NOTIFY_TYPES: dict[str, Any] = {kind.value: kind for kind in apprise.NotifyType}


def notify(
    plugin: Any, title: str, body: str, notify_type: str, body_format: str | None
) -> tuple[bool, list[str]]:
    """Send through ``plugin`` in this thread: (its outcome, what it logged at WARNING+). Never raises."""
    kind = _NOTIFY_TYPES.get(notify_type, notify_type)  # Apprise converts a plain string at every send
    kwargs: dict[str, Any] = {"body": body, "title": title, "notify_type": kind}
    if body_format is not None:
        kwargs["body_format"] = body_format
    with captured() as lines:
        try:
            ok = bool(plugin.notify(**kwargs))
        except Exception as exc:  # a plugin crash is a failed delivery, not a dispatcher crash
            lines.append(f"{type(exc).__name__}: {exc}")
            ok = False
    return ok, lines


#: Apprise's URL parser and its log masking, untyped like the conversion below.
url_to_dict = cast(Callable[..., dict[str, Any] | None], _untyped_url_to_dict)
cwe312_loggable = cast(Callable[[str, bool], str], _untyped_cwe312_loggable)

#: Apprise's own text → Markdown/HTML conversion; the function has no annotations, so its
#: signature is stated here once instead of silencing the checker at each call.
convert_between = cast(Callable[[str, str, str], object], _untyped_convert_between)


def convert(text: str, notify_format: str) -> str:
    """``text`` as Apprise converts a plain-text body for a channel of ``notify_format``."""
    if notify_format == "text":
        return text
    return str(convert_between("text", notify_format, text))
