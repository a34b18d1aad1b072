"""The rig the scenarios run on: `--rig FILE`, else $CAMPUS_EDGE_RIG, else the virtual rig (rigs/virtual.toml).

A bench rig is locked for the whole session (hil.lock); a run that finds it busy stops at once and says who has
it. A bench whose adapters or pins are missing stops the run too: a bench run that skipped everything would pass.
A machine that cannot build the virtual rig (no socat, no mosquitto) skips the scenarios with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.lock import BenchBusy, BenchLock
from hil.rig import Rig
from hil.rigfile import RigFileError, load_rig

VIRTUAL = Path(__file__).parent / "rigs" / "virtual.toml"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rig",
        default=None,
        metavar="FILE",
        help="the rig description (TOML) the hardware-in-the-loop scenarios run on; default: $CAMPUS_EDGE_RIG, "
        "else the virtual rig (hil-tests/rigs/virtual.toml)",
    )


def rig_path(config: pytest.Config) -> Path:
    """The rig file this run uses."""
    named = config.getoption("--rig") or os.environ.get("CAMPUS_EDGE_RIG")
    return Path(named) if named else VIRTUAL


def pytest_report_header(config: pytest.Config) -> str:
    return f"rig: {rig_path(config)}"


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config) -> Iterator[Rig]:
    """The rig, locked for the session when it is a bench."""
    try:
        desc = load_rig(rig_path(pytestconfig))
    except RigFileError as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    rig = Rig(desc)
    why = rig.backend.unavailable(desc)
    if why is not None:
        pytest.skip(f"no rig: {desc.rig.name}: {why}")
    problems = rig.backend.problems(desc)
    if problems:
        pytest.exit(f"rig {desc.rig.name} ({desc.source}):\n" + "\n".join(problems), returncode=1)
    if desc.lock_file is None:
        yield rig
        return
    try:
        with BenchLock(desc.lock_file, desc.rig.name):
            yield rig
    except BenchBusy as exc:
        pytest.exit(str(exc), returncode=1)
