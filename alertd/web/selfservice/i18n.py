"""Every word the self-service page and API say, in Ukrainian and English.

One table, looked up by key: :func:`t` formats a message for a language and
falls back to English, then to the key itself (a missing translation must show
*something*, never crash a page). Error keys are also the machine-readable
``error`` field of API answers, so clients can branch on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from alertd.core.kinds import OFFERED_KINDS, kind_name
from alertd.core.languages import LANGUAGES

__all__ = ["LANGUAGES", "MESSAGES", "OFFERED_KINDS", "kind_labels", "pick_language", "t"]

MESSAGES: dict[str, dict[str, str]] = {
    # -- errors (also the API's "error" codes) --------------------------------------------
    "json_required": {
        "uk": "Надсилайте дані як JSON (Content-Type: application/json).",
        "en": "Send the data as JSON (Content-Type: application/json).",
    },
    "form_required": {
        "uk": "Форму надіслано в непідтримуваному форматі.",
        "en": "The form was sent in an unsupported format.",
    },
    "bad_json": {
        "uk": "Не вдалося прочитати запит: некоректний JSON.",
        "en": "Could not read the request: invalid JSON.",
    },
    "too_large": {
        "uk": "Запит завеликий (не більше {limit} байт).",
        "en": "The request is too large (at most {limit} bytes).",
    },
    "no_regions": {
        "uk": "Оберіть хоча б одну громаду чи місто.",
        "en": "Choose at least one hromada or city.",
    },
    "unknown_region": {"uk": "Невідомий регіон: {code}.", "en": "Unknown region: {code}."},
    "too_many_regions": {
        "uk": "Можна обрати не більше {limit} регіонів.",
        "en": "You can choose at most {limit} regions.",
    },
    "no_kinds": {"uk": "Оберіть хоча б один вид тривоги.", "en": "Choose at least one kind of alert."},
    "unknown_kind": {"uk": "Невідомий вид тривоги: {kind}.", "en": "Unknown kind of alert: {kind}."},
    "bad_language": {"uk": "Мова має бути «uk» або «en».", "en": 'Language must be "uk" or "en".'},
    "channel_not_offered": {
        "uk": "Такий спосіб сповіщення тут недоступний.",
        "en": "This way of being notified is not offered here.",
    },
    "bad_topic": {
        "uk": "Тема ntfy: до 64 латинських літер, цифр, «-» або «_».",
        "en": "ntfy topic: up to 64 Latin letters, digits, '-' or '_'.",
    },
    "short_topic": {
        "uk": "Тема ntfy має містити щонайменше {min} символів: коротку тему легко вгадати.",
        "en": "An ntfy topic needs at least {min} characters: a short one is easy to guess.",
    },
    "query_key_not_allowed": {
        "uk": "Параметр «{name}» в адресі каналу тут не дозволено.",
        "en": 'The parameter "{name}" is not allowed in a channel address here.',
    },
    "cross_origin": {
        "uk": "Запит надійшов з іншого сайту; його відхилено.",
        "en": "The request came from another site; it was refused.",
    },
    "busy_client": {
        "uk": "Попередній запит з вашої адреси ще виконується. Зачекайте кілька секунд.",
        "en": "Your previous request is still being handled. Wait a few seconds.",
    },
    "busy": {
        "uk": "Сервер зараз зайнятий. Спробуйте за хвилину.",
        "en": "The server is busy right now. Try again in a minute.",
    },
    "too_many_pending_client": {
        "uk": "З вашої мережі вже забагато непідтверджених підписок. Підтвердіть їх або зачекайте.",
        "en": "Your network already has too many unconfirmed subscriptions. Confirm them or wait.",
    },
    "bad_chat_id": {
        "uk": "Ідентифікатор чату Telegram: число (напр. 123456789 або -100…) або @назва_каналу.",
        "en": "Telegram chat id: a number (e.g. 123456789 or -100…) or @channel_name.",
    },
    "bad_email": {"uk": "Перевірте адресу електронної пошти.", "en": "Check the e-mail address."},
    "bad_phone": {
        "uk": "Номер телефону в міжнародному форматі, напр. +380501234567.",
        "en": "Phone number in international format, e.g. +380501234567.",
    },
    "bad_url": {"uk": "Некоректна адреса каналу.", "en": "The channel address is not valid."},
    "scheme_not_allowed": {
        "uk": "Канали типу «{scheme}» тут не приймаються.",
        "en": 'Channels of type "{scheme}" are not accepted here.',
    },
    "private_target": {
        "uk": "Адреса каналу веде до внутрішньої або службової мережі; таку не приймаємо.",
        "en": "The channel address points to an internal or reserved network; it is refused.",
    },
    "unresolvable": {
        "uk": "Не вдалося знайти сервер каналу ({host}).",
        "en": "The channel's server could not be found ({host}).",
    },
    "channel_unavailable": {
        "uk": "Цей спосіб сповіщення зараз недоступний. Спробуйте інший.",
        "en": "This way of being notified is unavailable right now. Try another.",
    },
    "rate_client": {
        "uk": "Забагато спроб з вашої адреси. Спробуйте пізніше.",
        "en": "Too many attempts from your address. Please try again later.",
    },
    "rate_destination": {
        "uk": "На цей номер чи адресу вже надіслано забагато кодів сьогодні. Спробуйте завтра.",
        "en": "Too many codes were sent to this number or address today. Try again tomorrow.",
    },
    "too_many_pending": {
        "uk": "Зараз забагато непідтверджених підписок. Спробуйте за кілька хвилин.",
        "en": "Too many subscriptions are waiting for confirmation. Try again in a few minutes.",
    },
    "send_failed": {
        "uk": "Не вдалося надіслати код на вказаний канал. Перевірте дані.",
        "en": "The code could not be sent to this channel. Check what you entered.",
    },
    "not_found": {
        "uk": "Підписку не знайдено (можливо, її вже скасовано).",
        "en": "Subscription not found (it may have been cancelled).",
    },
    "expired": {
        "uk": "Код прострочено. Підпишіться ще раз.",
        "en": "The code has expired. Please subscribe again.",
    },
    "wrong_code": {
        "uk": "Неправильний код. Залишилось спроб: {left}.",
        "en": "Wrong code. Attempts left: {left}.",
    },
    "too_many_attempts": {
        "uk": "Забагато неправильних кодів; підписку скасовано. Підпишіться ще раз.",
        "en": "Too many wrong codes; the subscription was voided. Please subscribe again.",
    },
    "already_confirmed": {
        "uk": "Підписку вже підтверджено.",
        "en": "This subscription is already confirmed.",
    },
    "bad_code": {"uk": "Код складається з {length} цифр.", "en": "The code has {length} digits."},
    "csrf": {
        "uk": "Сторінка застаріла. Оновіть її і спробуйте знову.",
        "en": "This page has expired. Reload it and try again.",
    },
    "unauthorized": {"uk": "Потрібен токен оператора.", "en": "An operator token is required."},
    "admin_disabled": {"uk": "Адміністрування вимкнено.", "en": "Administration is disabled."},
    "bad_query": {"uk": "Введіть щонайменше 2 літери назви.", "en": "Type at least 2 letters of the name."},
    # -- page text -----------------------------------------------------------------------------
    "site_title": {"uk": "Сповіщення про тривоги", "en": "Air alert notifications"},
    "intro": {
        "uk": "Отримуйте повідомлення про початок і відбій тривоги у вашій громаді.",
        "en": "Be told when an alert starts and ends where you live.",
    },
    "step_place": {"uk": "1. Ваша громада чи місто", "en": "1. Your hromada or city"},
    "search_label": {"uk": "Назва (українською чи англійською)", "en": "Name (in Ukrainian or English)"},
    "search_button": {"uk": "Знайти", "en": "Search"},
    "no_results": {"uk": "Нічого не знайдено.", "en": "Nothing found."},
    "results": {"uk": "Оберіть зі списку:", "en": "Choose from the list:"},
    "step_kinds": {"uk": "2. Про що повідомляти", "en": "2. What to be told about"},
    "step_language": {"uk": "3. Мова повідомлень", "en": "3. Language of messages"},
    "step_channel": {"uk": "4. Куди надсилати", "en": "4. Where to send"},
    "lang_uk": {"uk": "Українська", "en": "Ukrainian"},
    "lang_en": {"uk": "Англійська", "en": "English"},
    "channel_ntfy": {"uk": "ntfy (застосунок)", "en": "ntfy (app)"},
    "channel_telegram": {"uk": "Telegram", "en": "Telegram"},
    "channel_email": {"uk": "Електронна пошта", "en": "E-mail"},
    "channel_sms": {"uk": "SMS", "en": "SMS"},
    "channel_apprise": {"uk": "Адреса Apprise", "en": "Apprise URL"},
    "hint_ntfy": {"uk": "Назва теми в застосунку ntfy", "en": "Topic name in the ntfy app"},
    "hint_telegram": {
        "uk": "Ідентифікатор чату (напишіть нашому боту /start, він підкаже)",
        "en": "Chat id (send /start to our bot to learn it)",
    },
    "hint_email": {"uk": "Адреса електронної пошти", "en": "E-mail address"},
    "hint_sms": {"uk": "Номер телефону, напр. +380501234567", "en": "Phone number, e.g. +380501234567"},
    "hint_apprise": {"uk": "Адреса каналу, напр. {example}", "en": "Channel URL, e.g. {example}"},
    "destination_label": {"uk": "Тема, номер або адреса", "en": "Topic, number or address"},
    "subscribe_button": {"uk": "Підписатися", "en": "Subscribe"},
    "confirm_title": {"uk": "Підтвердження", "en": "Confirmation"},
    "check_code": {
        "uk": "Ми надіслали код підтвердження на {destination}. Перевірте телефон чи пошту й введіть код.",
        "en": "We sent a confirmation code to {destination}. Check your phone or inbox and enter the code.",
    },
    "code_label": {"uk": "Код підтвердження", "en": "Confirmation code"},
    "confirm_button": {"uk": "Підтвердити", "en": "Confirm"},
    "manage_title": {"uk": "Ваша підписка", "en": "Your subscription"},
    "welcome": {
        "uk": "Готово! Підписку підтверджено. Збережіть посилання на цю сторінку: лише за ним можна змінити підписку чи відписатися.",
        "en": "Done! Your subscription is confirmed. Keep the link to this page: it is the only way to change it or leave.",
    },
    "manage_link": {"uk": "Посилання для керування", "en": "Management link"},
    "status_active": {"uk": "активна", "en": "active"},
    "status_pending": {"uk": "очікує підтвердження", "en": "waiting for confirmation"},
    "status_disabled": {"uk": "вимкнена оператором", "en": "disabled by the operator"},
    "status_label": {"uk": "Стан", "en": "Status"},
    "channel_label": {"uk": "Канал", "en": "Channel"},
    "regions_label": {"uk": "Громади й міста", "en": "Places"},
    "add_region": {"uk": "Додати громаду чи місто", "en": "Add a place"},
    "save_button": {"uk": "Зберегти зміни", "en": "Save changes"},
    "saved": {"uk": "Зміни збережено.", "en": "Changes saved."},
    "leave_title": {"uk": "Відписатися", "en": "Leave"},
    "leave_button": {"uk": "Відписатися від усіх повідомлень", "en": "Stop all messages"},
    "left": {
        "uk": "Ви відписалися. Повідомлень більше не буде. Дякуємо!",
        "en": "You have left. You will get no more messages. Thank you!",
    },
    "new_subscription": {"uk": "Нова підписка", "en": "New subscription"},
    "other_language": {"uk": "English", "en": "Українською"},
    "error_title": {"uk": "Помилка", "en": "Error"},
    "fix_errors": {"uk": "Виправте, будь ласка:", "en": "Please fix:"},
    # -- public topics (alertd.web.selfservice.topics) ----------------------------------------
    "follow_title": {
        "uk": "Стежити, не даючи нам жодних персональних даних",
        "en": "Follow without giving us any personal data",
    },
    "follow_intro": {
        "uk": "Відкрийте посилання або скануйте код телефоном: ви бачитимете кожну тривогу для цього місця "
        "(його власну, району й області). Ми не знаємо, хто стежить, і нічого не зберігаємо.",
        "en": "Open the link or scan the code with your phone: you will see every alert for this place "
        "(its own, its raion's and its oblast's). We do not know who follows, and we store nothing.",
    },
    "follow_none": {
        "uk": "Для цього місця ще немає публічного каналу. Підпишіться нижче.",
        "en": "No public channel covers this place yet. Subscribe below.",
    },
    "follow_enclosing": {"uk": "Спільний канал:", "en": "Shared channel:"},
    "follow_qr": {"uk": "QR-код: {link}", "en": "QR code: {link}"},
    "follow_how_ntfy": {
        "uk": "У застосунку ntfy: «+», потім ця адреса (сервер і тема).",
        "en": "In the ntfy app: tap +, then this address (server and topic).",
    },
    "follow_how_telegram": {"uk": "Канал у Telegram: «Приєднатися».", "en": "A Telegram channel: tap Join."},
    "follow_how_link": {"uk": "Відкрийте посилання.", "en": "Open the link."},
    "follow_short": {"uk": "стежити без підписки", "en": "follow, no sign-up"},
    "follow_or_subscribe": {
        "uk": "Або підпишіться на особисті повідомлення (SMS, пошта, чат)",
        "en": "Or subscribe to personal messages (SMS, e-mail, chat)",
    },
    # -- messages sent to the resident -------------------------------------------------------
    "code_message_title": {"uk": "Код підтвердження", "en": "Confirmation code"},
    "code_message": {
        "uk": "Ваш код підтвердження сповіщень про тривоги: {code}",
        "en": "Your air alert notification confirmation code: {code}",
    },
    "code_message_link": {"uk": "Або відкрийте: {link}", "en": "Or open: {link}"},
    "code_message_ignore": {
        "uk": "Якщо ви не підписувалися, просто проігноруйте це повідомлення.",
        "en": "If you did not subscribe, just ignore this message.",
    },
    "footer": {"uk": "Керувати/відписатися: {link}", "en": "Manage or leave: {link}"},
    "changed_notice_title": {"uk": "Підписку змінено", "en": "Subscription changed"},
    "changed_notice": {
        "uk": "Вашу підписку на сповіщення про тривоги змінено через посилання керування. "
        "Якщо це були не ви, підпишіться знову на {site}.",
        "en": "Your air-alert subscription was changed through its management link. "
        "If this was not you, subscribe again at {site}.",
    },
    "deleted_notice_title": {"uk": "Підписку скасовано", "en": "Subscription cancelled"},
    "deleted_notice": {
        "uk": "Вашу підписку на сповіщення про тривоги скасовано; повідомлень сюди більше не буде. "
        "Якщо це були не ви, підпишіться знову на {site}.",
        "en": "Your air-alert subscription was cancelled; no more alerts will come here. "
        "If this was not you, subscribe again at {site}.",
    },
}


def t(key: str, lang: str, **params: object) -> str:
    """The message ``key`` in ``lang`` (else English, else the key), formatted with ``params``."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry.get("en") or key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def pick_language(
    *candidates: str | None,
    accept: str | None = None,
    default: str = "uk",
    allowed: Iterable[str] = LANGUAGES,
) -> str:
    """The first supported language among ``candidates``, then ``Accept-Language``, then ``default``."""
    allowed = tuple(allowed)
    for value in candidates:
        if value and value.lower()[:2] in allowed:
            return value.lower()[:2]
    if accept:
        for part in accept.split(","):
            code = part.split(";", 1)[0].strip().lower()[:2]
            if code in allowed:
                return code
    return default if default in allowed else allowed[0]


def labels(lang: str) -> Mapping[str, str]:
    """All page strings for one language (templates use ``L.key``)."""
    return {key: t(key, lang) for key in MESSAGES}


def kind_labels(lang: str) -> dict[str, str]:
    """The kinds a resident may pick, in page order, named as alert messages name them."""
    return {str(kind): kind_name(kind, lang) for kind in OFFERED_KINDS}
