"""Build hook: the wheel carries the compiled message catalogues (.mo), made from the .po by scripts/msgfmt.py.

Everything else about the package is in pyproject.toml. The .mo is generated, never committed: into the build tree
for a wheel, and into the source tree for an editable install (a checkout), where scripts/bootstrap and
scripts/i18n keep it fresh.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LOCALE = Path("gateway") / "locale"


def _msgfmt() -> ModuleType:
    """scripts/msgfmt.py, loaded from its file (scripts/ is no package, and no part of the wheel)."""
    spec = importlib.util.spec_from_file_location("campus_edge_msgfmt", ROOT / "scripts" / "msgfmt.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildWithCatalogues(build_py):
    """build_py, then each gateway/locale/LANG/LC_MESSAGES/DOMAIN.po compiled into the .mo beside it."""

    def run(self) -> None:
        super().run()
        msgfmt = _msgfmt()
        into = ROOT if self.editable_mode else Path(self.build_lib)
        for po in msgfmt.catalogues(ROOT / LOCALE):
            mo = into / po.relative_to(ROOT).with_suffix(".mo")
            msgfmt.write_mo(po, mo)


setup(cmdclass={"build_py": BuildWithCatalogues})
