"""The message catalogue (issue 8, point 7): every installer- and guard-facing message marked in gateway/ has a
Chinese translation with the same placeholders, and the catalogue holds nothing the code no longer says."""

from __future__ import annotations

import ast
import gettext
import importlib.util
import string
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from gateway.base import i18n
from gateway.base.i18n import both, normalise, tr

GATEWAY = Path(i18n.__file__).resolve().parents[1]  # gateway/, every layer
PO = GATEWAY / "locale" / "zh_CN" / "LC_MESSAGES" / "campus-edge.po"
MSGFMT = GATEWAY.parent / "scripts" / "msgfmt.py"


@cache
def catalogue() -> dict[str, str]:
    """msgid -> zh-CN, as written in the .po (fuzzy entries left out, as the compiled catalogue leaves them)."""
    with PO.open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id and m.string and not m.fuzzy}


def msgfmt() -> ModuleType:
    """scripts/msgfmt.py, imported from its file (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("msgfmt", MSGFMT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _marked() -> dict[str, str]:
    """msgid -> where it is first marked (file:line)."""
    found: dict[str, str] = {}
    keywords = {"_": None, "N_": None, "both": None, "_h": None}
    for filename, line, message, _comments, _ctx in extract_from_dir(
        str(GATEWAY), method_map=[("**.py", "python")], keywords=keywords
    ):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, f"gateway/{filename}:{line}")
    return found


KEYWORDS = ("_", "N_", "both", "_h")


def _marker(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in KEYWORDS


def test_i18n_marked_calls_are_seen_by_the_extraction() -> None:
    """A marked call whose text the extraction cannot see is a message that never gets translated: one inside an
    f-string, or one whose argument is not a literal (the extractor then takes whatever string it finds inside,
    e.g. a dictionary key). Dynamic lookups go through tr()."""
    bad = []
    for path in sorted(GATEWAY.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = f"gateway/{path.relative_to(GATEWAY)}"
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                bad += [f"{where}:{node.lineno}: marked inside an f-string" for n in ast.walk(node) if _marker(n)]
            if not isinstance(node, ast.Call) or not _marker(node) or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                continue
            marked = {id(c.args[0]) for c in ast.walk(first) if _marker(c) and c.args}  # type: ignore[attr-defined]
            stray = [c for c in ast.walk(first) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                     and id(c) not in marked]  # fmt: skip
            if stray:
                bad.append(f"{where}:{node.lineno}: not a literal (use tr() for a lookup)")
    assert not bad, "\n".join(bad)


def _carriers(trees: list[ast.Module]) -> set[str]:
    """Message, MessageError and the classes built on MessageError (KeyFileError...): what carries a msgid."""
    names = {"Message", "MessageError"}
    classes = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    grown = True
    while grown:
        more = {c.name for c in classes if any(isinstance(b, ast.Name) and b.id in names for b in c.bases)}
        grown = not more <= names
        names |= more
    return names


def test_i18n_deferred_messages_are_marked() -> None:
    """A Message (or an error carrying one) is made from a msgid marked with N_() where it is written, or from a
    table of marked ones; a bare string there would never reach the catalogue and never be translated."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(GATEWAY.rglob("*.py"))}
    carriers = _carriers(list(trees.values()))
    assert {"Message", "MessageError", "KeyFileError"} <= carriers
    bad = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in carriers):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.JoinedStr) or (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                bad.append(f"gateway/{path.relative_to(GATEWAY)}:{node.lineno}: {node.func.id}() of an unmarked text")
    assert not bad, "mark the text with N_():\n" + "\n".join(bad)


def test_i18n_a_message_renders_when_shown() -> None:
    """A Message keeps its msgid and fields; each rendering picks the language, nested Messages follow it, and
    str() is the active language."""
    used = i18n.Message(i18n.N_("id {id!r} is already used by a {what}"), id="lane-1", what=i18n.Message("lane"))
    assert used.render("en") == "id 'lane-1' is already used by a lane"
    assert used.render("zh-CN") == "编号 'lane-1' 已被车道使用"
    raw = i18n.Message.untranslated("lane")
    assert raw.render("zh-CN") == "lane"
    error = i18n.MessageError(i18n.N_("{path}: not an Ed25519 key"), path="/k.pub")
    try:
        assert str(error) == "/k.pub: not an Ed25519 key"
        i18n.set_language("zh-CN")
        assert str(error) == "/k.pub: 不是 Ed25519 密钥"
        assert str(used) == used.render("zh-CN")
    finally:
        i18n.set_language("en")


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_i18n_every_message_has_a_translation() -> None:
    marked = _marked()
    assert len(marked) > 20, "the extraction found the marked messages"
    zh = catalogue()
    missing = [f"{where}: {msgid!r}" for msgid, where in marked.items() if msgid not in zh]
    assert not missing, "no zh-CN translation (run scripts/i18n, then translate):\n" + "\n".join(missing)
    wrong = [f"{marked[m]}: {m!r} -> {zh[m]!r}" for m in marked if _fields(m) != _fields(zh[m])]
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)
    stale = sorted(set(zh) - set(marked))
    assert not stale, f"in the catalogue but no longer in the code (run scripts/i18n): {stale}"


def test_i18n_languages_and_fallback() -> None:
    assert normalise("zh_CN.UTF-8") == "zh-CN"
    assert normalise("zh-Hans") == "zh-CN"
    assert normalise("en_GB.UTF-8") == "en"
    assert normalise(None) == "en"
    assert tr("a message nobody translated", "zh-CN") == "a message nobody translated"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_i18n_both_fills_the_fields_in_each_language(lang: str) -> None:
    some = next(m for m in catalogue() if _fields(m))
    fields = dict.fromkeys(_fields(some), "X1")
    en, zh = both(some, **fields)
    assert "X1" in en
    assert "X1" in zh
    assert tr(some, lang, **fields) == (zh if lang == "zh-CN" else en)


def test_i18n_compiled_catalogue_matches_the_po() -> None:
    """The .mo the gateway reads is the compilation of today's .po; an older one would show yesterday's words."""
    mo = i18n.catalogue_file("zh-CN")
    assert mo.is_file(), f"{mo} is missing (run scripts/bootstrap or scripts/i18n)"
    assert mo.read_bytes() == msgfmt().compile_po(PO), f"{mo} is older than its .po (run scripts/i18n)"


def test_i18n_the_runtime_reads_the_catalogue_without_babel() -> None:
    """Babel is a development tool (extraction): a running gateway translates with the standard library alone."""
    probe = (
        "import sys\n"
        "sys.modules['babel'] = None  # not installed, as in a runtime install\n"
        "from gateway.base.i18n import tr\n"
        "print(tr('1 or 2', 'zh-CN'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=GATEWAY.parent, check=False)
    assert out.stderr == ""
    assert out.stdout == "1 或 2\n"


HEADER = (  # 5 lines
    'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n\n'
)


def test_i18n_msgfmt_compiles_what_gettext_reads(tmp_path: Path) -> None:
    """Translated entries, a context and a plural reach gettext; fuzzy and untranslated ones are left out."""
    po = tmp_path / "x.po"
    po.write_text(
        HEADER + 'msgid "door"\nmsgstr "门"\n\n#, fuzzy\nmsgid "lane"\nmsgstr "车道?"\n\nmsgid "gate"\nmsgstr ""\n\n'
        'msgctxt "panel"\nmsgid "reset"\nmsgstr "复位"\n\n'
        'msgid "one \\"alarm\\""\nmsgid_plural "{n} alarms"\nmsgstr[0] "{n} 条\\t报警"\n\n'
        '#~ msgid "gone"\n#~ msgstr "旧"\n',
        encoding="utf-8",
    )
    mo = tmp_path / "x.mo"
    msgfmt().write_mo(po, mo)
    with mo.open("rb") as f:
        cat = gettext.GNUTranslations(f)
    assert cat.gettext("door") == "门"
    assert cat.gettext("lane") == "lane"
    assert cat.gettext("gate") == "gate"
    assert cat.pgettext("panel", "reset") == "复位"
    assert cat.ngettext('one "alarm"', "{n} alarms", 3) == "{n} 条\t报警"
    assert cat.gettext("gone") == "gone"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('msgid "a"\nmsgstr "甲\\q"\n', 'x.po:7: unknown escape \\q (use \\\\, \\", \\n, \\t or \\r)'),
        ('msgid "a"\nmsgstr "甲"\n\nmsgid "a"\nmsgstr "乙"\n', "x.po:9: msgid 'a' is there twice (first at line 6)"),
        ('msgid "a"\nmsgstr "甲"\nbogus\n', "x.po:8: expected msgctxt, msgid, msgid_plural or msgstr, found 'bogus'"),
        ('msgid "a"\n\n', "x.po:6: msgid 'a' has no msgstr"),
        ('msgid "a"\nmsgstr "甲"乙"\n', 'x.po:7: a quote inside a string must be written \\": "甲"乙"'),
    ],
)
def test_i18n_msgfmt_names_the_line_of_a_bad_catalogue(tmp_path: Path, body: str, error: str) -> None:
    """A catalogue that cannot be compiled is refused at its line; no .mo is written."""
    po = tmp_path / "x.po"
    po.write_text(HEADER + body, encoding="utf-8")
    mod = msgfmt()
    with pytest.raises(mod.PoError) as raised:
        mod.write_mo(po, tmp_path / "x.mo")
    assert str(raised.value) == f"{tmp_path}/{error}"
    assert not (tmp_path / "x.mo").exists()
