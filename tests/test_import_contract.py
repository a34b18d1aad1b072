"""The import contract (LAYOUT.md, "The layer rules"): scripts/check_imports.py passes a small tree that keeps it,
names each planted break word for word, and holds the real tree to it once gateway/ is in layer packages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_imports.py"
ORDER = "cli > service > panel > safety > field | uplink > store | config > base"
LAYERS = "cli, service, panel, safety, field, uplink, store, config, base"


def _load() -> ModuleType:
    """The checker, imported from its file (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


check_imports = _load()

# A tree that keeps the contract: every layer, each importing downwards (absolute, relative, `import ... as`,
# `from package import submodule`, a name from a package's face), the face, __main__.py, drivers, simulators
# that share nothing with the gateway, firmware with an __init__.py of its own constants, and a circle in tests/,
# which is not checked.
CLEAN = {
    "gateway/__init__.py": '"""The face."""\n\n__version__ = "0.0.0"\n__all__ = ["__version__"]\n',
    "gateway/__main__.py": "from gateway.cli.main import main\n\nmain()\n",
    "gateway/cli/__init__.py": "",
    "gateway/cli/main.py": "import simulators.site\nfrom gateway.service import app\n\n\ndef main() -> None: ...\n",
    "gateway/service/__init__.py": "",
    "gateway/service/app.py": "from gateway.panel.server import Panel\nfrom gateway.safety import Alarms\n",
    "gateway/service/health.py": "from gateway.uplink import link\n",
    "gateway/panel/__init__.py": "",
    "gateway/panel/server.py": "from ..safety.alarms import Alarms\n\n\nclass Panel: ...\n",
    "gateway/safety/__init__.py": '"""Decisions."""\n\nfrom .alarms import Alarms\n\n__all__ = ["Alarms"]\n',
    "gateway/safety/alarms.py": (
        "import drivers.modbus\n"
        "import gateway.store.outbox as outbox\n"
        "from gateway import __version__\n"
        "from gateway.field import polling\n"
        "from gateway.uplink.link import Link\n"
        "\n\nclass Alarms: ...\n"
    ),
    "gateway/field/__init__.py": "",
    "gateway/field/polling.py": "from gateway.base.clock import now\nfrom gateway.config import Config\n",
    "gateway/uplink/__init__.py": "",
    "gateway/uplink/link.py": "from gateway.store import outbox\n\n\nclass Link: ...\n",
    "gateway/store/__init__.py": "",
    "gateway/store/outbox.py": "from gateway.base import clock\n",
    "gateway/config/__init__.py": "from .models import Config\n\n__all__ = ['Config']\n",
    "gateway/config/models.py": "from ..base.clock import now\n\n\nclass Config: ...\n",
    "gateway/base/__init__.py": "",
    "gateway/base/clock.py": "import time\n\n\ndef now() -> float:\n    return time.time()\n",
    "gateway/locale/README.md": "data, not code\n",
    "drivers/__init__.py": '"""Hardware access."""\n',
    "drivers/modbus.py": "import pymodbus\n\nfrom . import errors\n",
    "drivers/errors.py": "class DriverError(Exception): ...\n",
    "simulators/__init__.py": "",
    "simulators/site.py": "from simulators.devices import SimDevice\n",
    "simulators/devices.py": "class SimDevice: ...\n",
    "firmware/main.py": "from fieldnode import app\n",
    "firmware/fieldnode/__init__.py": "FW_MAJOR = 1\n",
    "firmware/fieldnode/app.py": "from . import FW_MAJOR\n",
    "tests/a.py": "import gateway.cli.main\nimport tests.b\n",
    "tests/b.py": "import simulators.site\nimport tests.a\n",
}


def _tree(root: Path, planted: dict[str, str]) -> Path:
    """The clean tree under root, with the planted files added or put in place of clean ones."""
    for name, text in (CLEAN | planted).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _found(root: Path) -> list[str]:
    return [str(violation) for violation in check_imports.check(root)]


def test_import_contract_passes_a_tree_that_keeps_it(tmp_path: Path) -> None:
    """Every layer importing downwards, the face, drivers, simulators and firmware: no violation."""
    assert _found(_tree(tmp_path, {})) == []


PLANTED = {
    "upward": (
        {"gateway/safety/alarms.py": "from gateway.service.health import HealthSampler\n"},
        [
            "gateway/safety/alarms.py:1: gateway.safety.alarms imports gateway.service.health: safety may not import"
            f" service (layers, top to bottom: {ORDER})"
        ],
    ),
    "upward-relative": (
        {"gateway/base/units.py": "from .. import panel\nfrom ..panel.server import Panel\n"},
        [
            "gateway/base/units.py:1: gateway.base.units imports gateway.panel: base may not import panel (layers, top"
            f" to bottom: {ORDER})",
            "gateway/base/units.py:2: gateway.base.units imports gateway.panel.server: base may not import panel"
            f" (layers, top to bottom: {ORDER})",
        ],
    ),
    "sibling": (
        {"gateway/field/polling.py": "from gateway.uplink.link import Link\n"},
        [
            "gateway/field/polling.py:1: gateway.field.polling imports gateway.uplink.link: field may not import uplink"
            " (siblings never import each other)"
        ],
    ),
    "sibling-relative": (
        {"gateway/store/outbox.py": "from ..config import Config\n"},
        [
            "gateway/store/outbox.py:1: gateway.store.outbox imports gateway.config: store may not import config"
            " (siblings never import each other)"
        ],
    ),
    "drivers-import-gateway": (
        {"drivers/modbus.py": "import gateway.base.clock as clock\n"},
        [
            "drivers/modbus.py:1: drivers.modbus imports gateway.base.clock: drivers/ never imports gateway/ or"
            " simulators/"
        ],
    ),
    "drivers-import-simulators": (
        {"drivers/modbus.py": "from simulators import devices\n"},
        [
            "drivers/modbus.py:1: drivers.modbus imports simulators.devices: drivers/ never imports gateway/ or"
            " simulators/"
        ],
    ),
    "simulators-import-gateway": (
        {"simulators/site.py": "from gateway.config import Config\n"},
        ["simulators/site.py:1: simulators.site imports gateway.config: simulators/ never imports gateway/"],
    ),
    "safety-imports-simulators": (
        {"gateway/safety/alarms.py": "\nfrom simulators.devices import SimDevice\n"},
        [
            "gateway/safety/alarms.py:2: gateway.safety.alarms imports simulators.devices: only gateway/cli/ imports"
            " simulators/"
        ],
    ),
    "firmware-imports-drivers": (
        {"firmware/fieldnode/app.py": "from drivers.modbus import crc\n"},
        [
            "firmware/fieldnode/app.py:1: fieldnode.app imports drivers.modbus: firmware/ imports nothing of gateway/,"
            " drivers/, simulators/"
        ],
    ),
    "circle-of-three": (
        {
            "gateway/base/a.py": "from gateway.base import b\n",
            "gateway/base/b.py": "\nimport gateway.base.c\n",
            "gateway/base/c.py": "from .a import thing\n",
        },
        ["gateway/base/a.py:1: import circle: gateway.base.a -> gateway.base.b -> gateway.base.c -> gateway.base.a"],
    ),
    "circle-through-a-function": (
        {
            "simulators/devices.py": "def make_device() -> None:\n    from simulators.bollard import BollardSim\n",
            "simulators/bollard.py": "from simulators.devices import SimDevice\n",
        },
        ["simulators/bollard.py:1: import circle: simulators.bollard -> simulators.devices -> simulators.bollard"],
    ),
    "type-checking": (
        {
            "gateway/store/outbox.py": (
                "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from gateway.uplink.link import Link\n"
            )
        },
        [
            "gateway/store/outbox.py:4: gateway.store.outbox imports gateway.uplink.link: store may not import uplink"
            f" (layers, top to bottom: {ORDER})",
            "gateway/store/outbox.py:4: import circle: gateway.store.outbox -> gateway.uplink.link ->"
            " gateway.store.outbox",
        ],
    ),
    "init-defines-a-function": (
        {"gateway/safety/__init__.py": '"""Decisions."""\n\n\ndef helper() -> None: ...\n'},
        [
            "gateway/safety/__init__.py:4: gateway.safety defines helper: a package's __init__.py hands names on and"
            " defines nothing"
        ],
    ),
    "init-assigns": (
        {
            "drivers/__init__.py": "TIMEOUT_S = 1.0\n__version__ = '1'\n",
            "gateway/__init__.py": "try:\n    __version__ = '1'\nexcept ImportError:\n    DEBUG: bool = True\n",
        },
        [
            "drivers/__init__.py:1: drivers defines TIMEOUT_S: a package's __init__.py hands names on and defines"
            " nothing",
            "drivers/__init__.py:2: drivers defines __version__: a package's __init__.py hands names on and defines"
            " nothing",
            "gateway/__init__.py:4: gateway defines DEBUG: a package's __init__.py hands names on and defines nothing",
        ],
    ),
    "face-imports-gateway": (
        {"gateway/__init__.py": "from gateway.base.clock import now\nfrom . import store\n"},
        [
            "gateway/__init__.py:1: gateway imports gateway.base.clock: gateway/__init__.py imports nothing of gateway",
            "gateway/__init__.py:2: gateway imports gateway.store: gateway/__init__.py imports nothing of gateway",
        ],
    ),
    "module-directly-in-gateway": (
        {"gateway/alarms.py": "from gateway.base.clock import now\n"},
        [f"gateway/alarms.py:1: gateway.alarms is not in a layer package ({LAYERS})"],
    ),
    "package-not-a-layer": (
        {"gateway/bollards/__init__.py": "", "gateway/bollards/service.py": "from gateway.safety import Alarms\n"},
        [
            f"gateway/bollards/__init__.py:1: gateway.bollards is not in a layer package ({LAYERS})",
            f"gateway/bollards/service.py:1: gateway.bollards.service is not in a layer package ({LAYERS})",
        ],
    ),
    "relative-above-the-top": (
        {"gateway/base/clock.py": "\nfrom ... import elsewhere\n"},
        ["gateway/base/clock.py:2: gateway.base.clock: relative import (level 3) goes above the top package"],
    ),
    "unparsable": (
        {"gateway/base/clock.py": "def now(:\n"},
        ["gateway/base/clock.py:1: cannot be parsed: invalid syntax"],
    ),
}


@pytest.mark.parametrize(("planted", "expected"), PLANTED.values(), ids=PLANTED.keys())
def test_import_contract_names_each_planted_break(tmp_path: Path, planted: dict[str, str], expected: list[str]) -> None:
    """Each rule broken once in an otherwise clean tree: exactly the expected lines, in file and line order."""
    assert _found(_tree(tmp_path, planted)) == expected


def test_import_contract_script_exit_codes(tmp_path: Path) -> None:
    """Run as a script: 0 and silent on a clean tree, 1 with one line per violation and a count on stderr."""
    clean = _tree(tmp_path / "clean", {})
    run = subprocess.run([sys.executable, SCRIPT, clean], capture_output=True, text=True, timeout=60, check=False)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    broken = _tree(tmp_path / "broken", {"simulators/site.py": "import gateway\n", "gateway/alarms.py": ""})
    run = subprocess.run([sys.executable, SCRIPT, broken], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"gateway/alarms.py:1: gateway.alarms is not in a layer package ({LAYERS})",
        "simulators/site.py:1: simulators.site imports gateway: simulators/ never imports gateway/",
    ]
    assert run.stderr == "2 breaks of the import contract (LAYOUT.md, 'The layer rules')\n"


@pytest.mark.skipif(not (ROOT / "gateway" / "base").is_dir(), reason="gateway/ is not yet in layer packages")
def test_import_contract_holds_in_this_repository() -> None:
    """The real tree keeps the contract."""
    assert _found(ROOT) == []
