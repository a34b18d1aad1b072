"""The message catalogue: installer- and guard-facing text in English (the message ids) and zh-CN.

Text is written in English inside `_()` (translated into the active language), `N_()` (marked for the catalogue,
translated later, for module-level tables) or `both()` (the English and Chinese texts at once, for what the gateway
publishes: events carry `text_en` and `text_zh`). The Chinese is written in
gateway/locale/zh_CN/LC_MESSAGES/campus-edge.po and read, when first needed, with the standard library's gettext from
the campus-edge.mo compiled beside it (scripts/msgfmt.py: when a wheel is built, and by scripts/bootstrap and
scripts/i18n in a checkout), so that a running gateway needs no .po reader. `scripts/i18n` extracts new messages into
the .po; a test fails when a message has no translation or the .mo is older than the .po.

Placeholders are `str.format` fields by name (`{device}`), the same in both languages.

Text made before anyone knows who reads it (a configuration error: the installer's terminal, or the service's
English log) is a `Message`: the marked msgid and its fields, rendered when it is shown. `MessageError` is a
ValueError carrying one, so that validators can raise it through pydantic, which keeps the exception.
"""

from __future__ import annotations

import functools
import gettext
import logging
import os
from pathlib import Path

DOMAIN = "campus-edge"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"  # gateway/locale, package data
LANGUAGES = ("zh-CN", "en")

log = logging.getLogger(__name__)

_active = "en"


def normalise(lang: str | None) -> str:
    """zh-CN for any Chinese tag (zh, zh_CN.UTF-8, zh-Hans), en for the rest."""
    if lang and lang.replace("_", "-").lower().startswith("zh"):
        return "zh-CN"
    return "en"


def from_environment() -> str:
    """The language the user's locale asks for (LC_ALL, LC_MESSAGES, LANG, as gettext looks)."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return normalise(value)
    return "en"


def set_language(lang: str | None) -> str:
    """Make `lang` (or, if None, the locale's language) the language of `_()`; return it normalised."""
    global _active  # noqa: PLW0603 (one language per process: a command line or the gateway's own log)
    _active = normalise(lang) if lang else from_environment()
    return _active


def language() -> str:
    return _active


def catalogue_file(lang: str) -> Path:
    """The compiled catalogue of `lang` (zh-CN: gateway/locale/zh_CN/LC_MESSAGES/campus-edge.mo)."""
    return LOCALE_DIR / lang.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.mo"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The translations of `lang`: none for English, the language of the ids.

    A missing or unreadable catalogue is an installation fault, not a reason to stop a gateway in the middle of an
    alarm: it is logged once, loudly, and the text stays English.
    """
    if lang == "en":
        return gettext.NullTranslations()
    path = catalogue_file(lang)
    try:
        with path.open("rb") as f:
            return gettext.GNUTranslations(f)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        log.error("%s: cannot read the %s catalogue (%s): its text stays English. A wheel carries it; a checkout "
                  "makes it with scripts/bootstrap or python3 scripts/msgfmt.py", path, lang, reason)  # fmt: skip
        return gettext.NullTranslations()


def tr(msgid: str, lang: str, **fields: object) -> str:
    """`msgid` in `lang`, its fields filled in; the English when a translation is missing."""
    text = translations(normalise(lang)).gettext(msgid) if msgid else msgid  # gettext's "" is the header
    return text.format(**fields) if fields else text


def _(msgid: str, **fields: object) -> str:
    """`msgid` in the active language."""
    return tr(msgid, _active, **fields)


def N_(msgid: str) -> str:  # noqa: N802 (the gettext convention)
    """Mark `msgid` for the catalogue without translating it yet."""
    return msgid


def both(msgid: str, **fields: object) -> tuple[str, str]:
    """(English, Chinese) of `msgid`, for payloads that carry both."""
    return tr(msgid, "en", **fields), tr(msgid, "zh-CN", **fields)


class Message:
    """The msgid (marked with `N_()` where it is written) and its fields, rendered in a language chosen later.

    Fields that are Messages are rendered in the same language; `str()` is the active language.
    """

    __slots__ = ("fields", "msgid", "verbatim")

    def __init__(self, msgid: str, /, **fields: object) -> None:
        self.msgid = msgid
        self.fields = fields
        self.verbatim = False

    @classmethod
    def untranslated(cls, text: str) -> Message:
        """Text from elsewhere (a library's English, an operating system's reason), shown as it is."""
        message = cls(text)
        message.verbatim = True
        return message

    def render(self, lang: str) -> str:
        if self.verbatim:
            return self.msgid
        values = {k: v.render(lang) if isinstance(v, Message) else v for k, v in self.fields.items()}
        return tr(self.msgid, lang, **values)

    def __str__(self) -> str:
        return self.render(_active)

    def __repr__(self) -> str:
        return f"Message({self.msgid!r}, **{self.fields!r})"


class MessageError(ValueError):
    """A ValueError whose text is a `Message`: `str()` in the active language, `.message` for any other."""

    def __init__(self, msgid: str, /, **fields: object) -> None:
        self.message = Message(msgid, **fields)
        super().__init__(msgid)

    def __str__(self) -> str:
        return str(self.message)
