"""The message catalogue: installer- and guard-facing text in English (the message ids) and zh-CN.

Text is written in English inside `_()` (translated into the active language), `N_()` (marked for the catalogue,
translated later, for module-level tables) or `both()` (the English and Chinese texts at once, for what the gateway
publishes: events carry `text_en` and `text_zh`). The Chinese is in gateway/locale/zh_CN/LC_MESSAGES/campus-edge.po,
read with Babel when first needed (no compiled .mo to go stale). `scripts/i18n` extracts new messages into it; a test
fails when a message has no translation.

Placeholders are `str.format` fields by name (`{device}`), the same in both languages.

Text made before anyone knows who reads it (a configuration error: the installer's terminal, or the service's
English log) is a `Message`: the marked msgid and its fields, rendered when it is shown. `MessageError` is a
ValueError carrying one, so that validators can raise it through pydantic, which keeps the exception.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from babel.messages.pofile import read_po

DOMAIN = "campus-edge"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"  # gateway/locale, package data
LANGUAGES = ("zh-CN", "en")

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


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> translation for `lang` (empty for English, the language of the ids); fuzzy entries are left out."""
    if lang == "en":
        return {}
    path = LOCALE_DIR / lang.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as f:
        cat = read_po(f)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def tr(msgid: str, lang: str, **fields: object) -> str:
    """`msgid` in `lang`, its fields filled in; the English when a translation is missing."""
    text = catalogue(normalise(lang)).get(msgid, msgid)
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
