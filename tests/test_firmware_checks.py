"""The firmware's own checks, run from the test suite: its unit tests inside MicroPython (the WebAssembly port from
npm, firmware/wasm/run.mjs) and its type check against MicroPython's RP2040 stubs (firmware/mypy.ini).

Both need what scripts/bootstrap installs (Node.js, the npm package, the stubs); without it they skip and say why.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
WASM_PACKAGE = FIRMWARE / "wasm" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
STUBS = FIRMWARE / ".stubs"


def firmware_test_count() -> int:
    """How many test methods the firmware's unit tests define."""
    return sum(
        len(re.findall(r"^    def test_", p.read_text(encoding="utf-8"), re.M))
        for p in FIRMWARE.glob("tests/test_*.py")
    )


@pytest.mark.slow
def test_firmware_unit_tests_pass_inside_micropython() -> None:
    """Every firmware unit test runs in MicroPython's own interpreter and passes; the runner's exit code says so."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (scripts/bootstrap installs it)")
    if not (WASM_PACKAGE / "micropython.mjs").is_file():
        pytest.skip(f"{WASM_PACKAGE.relative_to(ROOT)} is missing: run scripts/bootstrap")
    run = subprocess.run(
        [node, "run.mjs"], cwd=FIRMWARE / "wasm", capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0].startswith("micropython 1.")
    assert f"micropython: {firmware_test_count()} passed, 0 failed, 0 skipped" in run.stdout


@pytest.mark.slow
def test_firmware_micropython_runner_fails_on_a_failing_test(tmp_path: Path) -> None:
    """The runner exits non-zero when a test fails (the port's own command line would exit 0)."""
    node = shutil.which("node")
    if node is None or not (WASM_PACKAGE / "micropython.mjs").is_file():
        pytest.skip("Node.js or the MicroPython WebAssembly package is missing: run scripts/bootstrap")
    failing = tmp_path / "test_failing_on_purpose.py"
    failing.write_text(
        "import unittest\n\n\nclass TestFails(unittest.TestCase):\n"
        "    def test_fails(self) -> None:\n        self.assertEqual(1, 2)\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [node, "run.mjs", "--tests", str(tmp_path)],
        cwd=FIRMWARE / "wasm",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "micropython: 0 passed, 1 failed, 0 skipped" in run.stdout


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(FIRMWARE / "mypy.ini"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_firmware_type_checks_against_the_rp2040_stubs(tmp_path: Path) -> None:
    """mypy --strict finds nothing in the firmware against the Pico W stubs, and does find a misuse of their API."""
    if not (STUBS / "machine.pyi").is_file():
        pytest.skip("MicroPython's RP2040 stubs are not in firmware/.stubs: run scripts/bootstrap")
    clean = _mypy()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Success: no issues found" in clean.stdout
    bad = tmp_path / "misuse.py"
    bad.write_text("import machine\nimport time\n\ntime.sleep_ms(1)\nmachine.UART(0, rxbuf='512')\n", encoding="utf-8")
    found = _mypy(str(bad))
    assert found.returncode == 1
    assert 'misuse.py:5: error: No overload variant of "UART" matches argument types' in found.stdout
    assert "sleep_ms" not in found.stdout  # MicroPython's time, not CPython's, is the one checked against
