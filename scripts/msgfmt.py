"""Compile the gettext catalogues (`.po`) into the `.mo` files that gateway/base/i18n.py reads with the standard
library.

The running gateway carries no `.po` reader (Babel alone is some 30 MB): the `.mo` is made when a wheel is built
(setup.py) and in a checkout (scripts/bootstrap, scripts/i18n). Standard library only, so that a build needs nothing
but setuptools. Fuzzy and untranslated entries are left out, as GNU msgfmt leaves them out. The same catalogue gives
the same bytes (ids sorted, no hash table), so a test can tell a stale `.mo`.

Run from the repository root as `python3 scripts/msgfmt.py [LOCALE_DIR]` (default `gateway/locale`): each
`*/LC_MESSAGES/*.po` under it becomes the `.mo` beside it. Exit 1 with `FILE:LINE: what` on a malformed catalogue.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = 0x950412DE  # GNU .mo, little endian, format revision 0
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}  # what Babel and xgettext write
_ESCAPE = re.compile(r"\\(.?)")
_KEYWORD = re.compile(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*)$')


class PoError(ValueError):
    """A catalogue that cannot be compiled; the message names the file and the line."""

    def __init__(self, path: str, line: int, what: str) -> None:
        self.path, self.line, self.what = path, line, what
        super().__init__(f"{path}:{line}: {what}")


@dataclass
class _Entry:
    """One message as it is read: where it starts, its flags and its strings."""

    line: int
    fuzzy: bool = False
    context: str | None = None
    msgid: str | None = None
    plural: str | None = None
    strings: dict[int, str] = field(default_factory=dict)


def _unquote(text: str, path: str, line: int) -> str:
    """The value of one quoted .po string, escapes resolved."""
    text = text.strip()
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        raise PoError(path, line, f"expected a quoted string, found {text!r}")

    def escape(match: re.Match[str]) -> str:
        if match.group(1) not in _ESCAPES:
            raise PoError(path, line, f'unknown escape \\{match.group(1)} (use \\\\, \\", \\n, \\t or \\r)')
        return _ESCAPES[match.group(1)]

    body = text[1:-1]
    if re.search(r'(?<!\\)(?:\\\\)*"', body):
        raise PoError(path, line, f'a quote inside a string must be written \\": {text}')
    return _ESCAPE.sub(escape, body)


def _key_and_value(entry: _Entry, path: str) -> tuple[str, str] | None:
    """The .mo key and value of a finished entry; None when it is fuzzy or not translated (yet)."""
    if entry.msgid is None:
        raise PoError(path, entry.line, "an entry without msgid")
    if not entry.strings:
        raise PoError(path, entry.line, f"msgid {entry.msgid!r} has no msgstr")
    if entry.plural is None and set(entry.strings) != {0}:
        raise PoError(path, entry.line, f"msgid {entry.msgid!r} has msgstr[N] but no msgid_plural")
    if entry.plural is not None and set(entry.strings) != set(range(len(entry.strings))):
        raise PoError(path, entry.line, f"msgid {entry.msgid!r}: the msgstr[N] are not numbered 0, 1, ...")
    values = [entry.strings[n] for n in sorted(entry.strings)]
    if (entry.fuzzy and entry.msgid) or not all(values):
        return None
    key = entry.msgid if entry.plural is None else f"{entry.msgid}\0{entry.plural}"
    if entry.context is not None:
        key = f"{entry.context}\x04{key}"
    return key, "\0".join(values)


def parse(text: str, path: str) -> dict[str, str]:
    """The translated messages of a .po text: key (context and plural joined as gettext does) -> translation."""
    messages: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    entry: _Entry | None = None
    target: tuple[str, int] | None = None  # which string a continuation line extends

    def finish() -> None:
        nonlocal entry, target
        if entry is not None:
            found = _key_and_value(entry, path)
            where = first_seen.setdefault(repr((entry.context, entry.msgid)), entry.line)
            if where != entry.line:
                raise PoError(path, entry.line, f"msgid {entry.msgid!r} is there twice (first at line {where})")
            if found is not None:
                messages[found[0]] = found[1]
        entry, target = None, None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):  # an obsolete entry, kept for translators
            continue
        if line.startswith("#"):
            if entry is not None and entry.msgid is not None:
                finish()
            if line.startswith("#,") and "fuzzy" in (flag.strip() for flag in line[2:].split(",")):
                entry = entry or _Entry(number)
                entry.fuzzy = True
            continue
        if line.startswith('"'):
            if entry is None or target is None:
                raise PoError(path, number, "a continued string without msgid or msgstr before it")
            value = _unquote(line, path, number)
            _extend(entry, target, value)
            continue
        match = _KEYWORD.match(line)
        if match is None:
            raise PoError(path, number, f"expected msgctxt, msgid, msgid_plural or msgstr, found {line[:40]!r}")
        keyword, index, quoted = match.group(1), match.group(2), match.group(3)
        value = _unquote(quoted, path, number)
        if keyword in ("msgctxt", "msgid") and entry is not None and entry.strings:
            finish()
        entry = entry or _Entry(number)
        target = _assign(entry, keyword, int(index) if index is not None else None, value, path, number)
    finish()
    return messages


def _assign(entry: _Entry, keyword: str, index: int | None, value: str, path: str, line: int) -> tuple[str, int]:
    """Set one keyword's string of `entry`; return what a continuation line would extend."""
    if keyword == "msgctxt":
        if entry.context is not None or entry.msgid is not None:
            raise PoError(path, line, "msgctxt must come first in an entry, and once")
        entry.context = value
    elif keyword == "msgid":
        if entry.msgid is not None:
            raise PoError(path, line, "a second msgid in one entry")
        entry.msgid = value
    elif keyword == "msgid_plural":
        if entry.msgid is None or entry.plural is not None or entry.strings:
            raise PoError(path, line, "msgid_plural must follow the msgid, once")
        entry.plural = value
    else:
        n = index if index is not None else 0
        if entry.msgid is None:
            raise PoError(path, line, "msgstr without msgid")
        if (index is None) == (entry.plural is not None):
            raise PoError(path, line, "msgstr[N] goes with msgid_plural, plain msgstr without it")
        if n in entry.strings:
            raise PoError(path, line, f"msgstr[{n}] is there twice")
        entry.strings[n] = value
        return keyword, n
    return keyword, 0


def _extend(entry: _Entry, target: tuple[str, int], value: str) -> None:
    keyword, n = target
    if keyword == "msgctxt":
        entry.context = (entry.context or "") + value
    elif keyword == "msgid":
        entry.msgid = (entry.msgid or "") + value
    elif keyword == "msgid_plural":
        entry.plural = (entry.plural or "") + value
    else:
        entry.strings[n] += value


def mo_bytes(messages: dict[str, str]) -> bytes:
    """The GNU .mo image of `messages`, UTF-8, ids sorted as gettext's binary search needs them."""
    pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in messages.items())
    ids = strs = b""
    spans = []
    for key, value in pairs:
        spans.append((len(key), len(ids), len(value), len(strs)))
        ids += key + b"\0"  # the terminator is no part of the length, but gettext expects it
        strs += value + b"\0"
    ids_at = 7 * 4 + 16 * len(pairs)
    strs_at = ids_at + len(ids)
    head = struct.pack("<7I", MAGIC, 0, len(pairs), 7 * 4, 7 * 4 + 8 * len(pairs), 0, ids_at)
    key_table = b"".join(struct.pack("<2I", length, ids_at + at) for length, at, _vl, _va in spans)
    value_table = b"".join(struct.pack("<2I", length, strs_at + at) for _kl, _ka, length, at in spans)
    return head + key_table + value_table + ids + strs


def compile_po(po: Path) -> bytes:
    """The .mo image of the catalogue in `po`; PoError names its file and line when it cannot be read."""
    try:
        text = po.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = po.read_bytes()[: exc.start].count(b"\n") + 1
        raise PoError(str(po), line, "not UTF-8") from exc
    messages = parse(text, str(po))
    header = messages.get("", "")
    charset = re.search(r"charset=([\w-]+)", header)
    if charset is None or charset.group(1).lower().replace("_", "-") != "utf-8":
        raise PoError(str(po), 1, "the header must say Content-Type: text/plain; charset=UTF-8")
    return mo_bytes(messages)


def write_mo(po: Path, mo: Path) -> None:
    """Compile `po` into `mo`, replacing it whole (a reader never sees half a catalogue)."""
    image = compile_po(po)
    mo.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=mo.parent, prefix=f".{mo.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(image)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a catalogue is for every reader
        os.replace(tmp, mo)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def catalogues(locale_dir: Path) -> list[Path]:
    """Every .po under `locale_dir` (LANG/LC_MESSAGES/DOMAIN.po)."""
    return sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    locale_dir = Path(args[0] if args else "gateway/locale")
    found = catalogues(locale_dir)
    if not found:
        print(f"{locale_dir}: no LANG/LC_MESSAGES/*.po catalogue here", file=sys.stderr)
        return 1
    try:
        for po in found:
            write_mo(po, po.with_suffix(".mo"))
    except PoError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
