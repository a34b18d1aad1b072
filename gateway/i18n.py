"""The message catalogue: installer- and guard-facing text in English (the message ids) and zh-CN.

Text is written in English inside `_()` (translated into the active language), `N_()` (marked for the catalogue,
translated later, for module-level tables) or `both()` (the English and Chinese texts at once, for what the gateway
publishes: events carry `text_en` and `text_zh`). The Chinese is in gateway/locale/zh_CN/LC_MESSAGES/campus-edge.po,
read with Babel when first needed (no compiled .mo to go stale). `scripts/i18n` extracts new messages into it; a test
fails when a message has no translation.

Placeholders are `str.format` fields by name (`{device}`), the same in both languages.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from babel.messages.pofile import read_po

DOMAIN = "campus-edge"
LOCALE_DIR = Path(__file__).parent / "locale"
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
