"""Per-service knowledge in one table: what each kind of channel accepts and how fast its host may be used.

"Format for Matrix" or "Telegram allows 25 messages/s" is one entry here
(DESIGN §7). Keys are Apprise plugin module names (``apprise.plugins.<name>``,
the last dotted part), because Apprise's scheme list is long and several
schemes share a plugin.

* :data:`SERVICES` — per plugin: whether it delivers SMS (one segment: 160
  GSM-7 / 70 UCS-2, see :func:`alertd.core.render.sms_length`), limit overrides,
  and the API host it really talks to when the URL's "host" is something else
  (a Telegram URL's host part is the bot id; its requests go to api.telegram.org).
* :data:`DEFAULT_HOST_RATES` — how many requests per second alertd sends to one
  service host unless ``[delivery.limits]`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_HOST_RATES", "SERVICES", "HostRate", "Service", "service_for"]


def _always(plugin: Any) -> bool:
    return True


def _mode_is_sms(attr: str) -> Callable[[Any], bool]:
    """Plugins that can also call, fax or publish to a topic are SMS only in their SMS mode."""

    def check(plugin: Any) -> bool:
        return str(getattr(plugin, attr, "sms")).lower() == "sms"

    return check


def _never(plugin: Any) -> bool:
    return False


@dataclass(frozen=True)
class Service:
    """What alertd knows about one Apprise plugin beyond what the plugin itself declares.

    ``sms``: a check on the plugin instance (SMS-ness can depend on the URL).
    ``body_maxlen`` / ``title_maxlen``: overrides of the plugin's own limits
    (None keeps Apprise's). ``api_host``: the host every request goes to, when it
    is not the URL's host (rate limits and fairness are per real host).
    """

    sms: Callable[[Any], bool] = _never
    body_maxlen: int | None = None
    title_maxlen: int | None = None
    api_host: str | None = None


_SMS = Service(sms=_always)

#: Apprise 2.3 plugin modules with something to add. SMS plugins were chosen by reading each
#: plugin: it sends to phone numbers through an SMS gateway API. Not SMS: WhatsApp/Viber/Signal/
#: Telegram (no segment limit), Pushed and push services with a 160 limit, DAPNET pagers and APRS
#: (their small body_maxlen already applies), Gupshup (WhatsApp only).
SERVICES: dict[str, Service] = {
    "africas_talking": _SMS,  # Africa's Talking
    "bulksms": _SMS,  # BulkSMS
    "bulkvs": _SMS,  # BulkVS
    "burstsms": _SMS,  # Burst SMS
    "clickatell": _SMS,  # Clickatell
    "clicksend": _SMS,  # ClickSend
    "cm": _SMS,  # CM.com (SMS unless other channels are configured)
    "d7networks": _SMS,  # D7 Networks
    "eight00com": _SMS,  # 800.com
    "exotel": _SMS,  # Exotel
    "fortysixelks": _SMS,  # 46elks
    "freemobile": _SMS,  # Free Mobile
    "httpsms": _SMS,  # httpSMS
    "infobip": _SMS,  # Infobip
    "kaleyra": _SMS,  # Kaleyra
    "kavenegar": _SMS,  # Kavenegar
    "messagebird": _SMS,  # MessageBird
    "mobilemessage": _SMS,  # Mobile Message
    "msg91": _SMS,  # MSG91
    "notifyre": Service(sms=_mode_is_sms("mode")),  # Notifyre (SMS or fax)
    "octopush": _SMS,  # Octopush
    "plivo": _SMS,  # Plivo
    "ringcentral": _SMS,  # RingCentral
    "serwersms": _SMS,  # SerwerSMS
    "seven": _SMS,  # seven.io
    "sfr": _SMS,  # SFR
    "sinch": _SMS,  # Sinch
    "smpp": _SMS,  # SMPP
    "smsc": _SMS,  # SMSC
    "smseagle": _SMS,  # SMSEagle
    "smsmanager": _SMS,  # SMS Manager
    "smstunnel": _SMS,  # SMSTunnel
    "sns": Service(sms=_mode_is_sms("mode")),  # AWS SNS (SMS to phone numbers, or topics)
    "telesign": _SMS,  # Telesign
    "telnyx": _SMS,  # Telnyx
    "twilio": Service(sms=_mode_is_sms("method"), api_host="api.twilio.com"),  # Twilio (SMS, or voice calls)
    "voipms": _SMS,  # VoIP.ms
    "vonage": _SMS,  # Vonage (Nexmo)
    # chat and push services whose URL host is not the host they talk to
    "telegram": Service(api_host="api.telegram.org"),
    "discord": Service(api_host="discord.com"),
    "slack": Service(api_host="hooks.slack.com"),
}

_PLAIN = Service()


def service_for(plugin: Any) -> tuple[str, Service]:
    """(plugin module name, its :class:`Service` entry — an empty one when there is none)."""
    module = type(plugin).__module__.rsplit(".", 1)[-1]
    return module, SERVICES.get(module, _PLAIN)


@dataclass(frozen=True)
class HostRate:
    """Requests per second to one host, and how many may go at once after a quiet spell."""

    rate: float
    burst: float


#: Default send rates per service host (requests/s), overridable per host in ``[delivery.limits]``.
#: Each is below the service's published limit for one sender, so alertd is not the one throttled:
#: * api.telegram.org — a bot may send about 30 messages/s overall (Telegram Bot FAQ);
#: * ntfy.sh — the public server gives each client a burst of 60 requests, then one per 5 s
#:   (run your own ntfy server for more: see README "Reaching many people");
#: * api.twilio.com — a long code sends 1 SMS segment/s; Twilio queues the rest (raise it for a
#:   short code or a messaging service);
#: * discord.com — webhooks share a global limit of 50 requests/s;
#: * hooks.slack.com — about one message per second per webhook, short bursts allowed.
DEFAULT_HOST_RATES: dict[str, HostRate] = {
    "api.telegram.org": HostRate(25.0, 25.0),
    "ntfy.sh": HostRate(0.2, 60.0),
    "api.twilio.com": HostRate(1.0, 5.0),
    "discord.com": HostRate(25.0, 25.0),
    "hooks.slack.com": HostRate(1.0, 5.0),
}
