"""The rig itself: its description file, the bench lock, what a bench checks before it runs, and the bench backend
on pseudo-terminals standing in for its adapters. No bench needed: these run in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import test_scenarios  # the module, not its functions: those would be collected here a second time
from hil.lock import BenchBusy, BenchLock
from hil.rig import BenchBackend, Rig, VirtualBackend
from hil.rigfile import DEFAULT_LOCK, RigFileError, load_rig, parse_rig
from simulators.pty import PtyPair

RIGS = Path(__file__).parent / "rigs"


def test_rig_files_shipped_are_valid() -> None:
    """The virtual rig and the bench example load; the bench locks the default lock file, the virtual rig none."""
    virtual = load_rig(RIGS / "virtual.toml")
    bench = load_rig(RIGS / "bench-example.toml")
    assert (virtual.rig.backend, virtual.lock_file) == ("virtual", None)
    assert (bench.rig.backend, bench.lock_file) == ("bench", DEFAULT_LOCK)
    assert [d.id for d in bench.devices if not d.real] == ["facp-1", "smoke-101", "smoke-102", "bollard-east"]


BENCH_LINE = '[rig]\nname = "b"\nbackend = "bench"\n[[lines]]\nid = "rs485-1"\ntype = "rtu"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BENCH_LINE + '[[devices]]\nid = "facp-1"\nline = "rs485-1"\nunit = 1\nprofile = "fire_panel"\n',
            "r.toml: lines.rs485-1.gateway_port: expected the serial device the gateway opens\n"
            "r.toml: lines.rs485-1.device_port: expected the serial device the simulators answer on "
            "(simulated: facp-1)",
        ),
        (
            '[rig]\nname = "v"\nbackend = "virtual"\n[[lines]]\nid = "l"\ntype = "rtu"\ngateway_port = "/dev/ttyUSB0"\n'
            '[[devices]]\nid = "d"\nline = "l"\nunit = 1\nprofile = "fire_panel"\nreal = true\n',
            "r.toml: devices.d.real: a virtual rig has simulated devices only\n"
            "r.toml: lines.l.gateway_port: a virtual rig makes its own ends (pseudo-terminals, loopback)",
        ),
        (
            '[rig]\nname = "v"\nbackend = "virtual"\n'
            '[[loopbacks]]\nid = "a"\nkind = "door"\ninput = 17\noutput = 27\n'
            '[[loopbacks]]\nid = "b"\nkind = "door"\ninput = "GPIO27"\noutput = 22\n'
            '[[lanes]]\nid = "lane-1"\ncontroller = "nothing"\n',
            "r.toml: loopbacks.b.input: pin 27 is already loopbacks.a.output\n"
            "r.toml: lanes.lane-1.controller: no device 'nothing'",
        ),
        ('[rig]\nname = "v"\nbackend = "vm"\n', "r.toml: rig.backend: Input should be 'virtual' or 'bench'"),
        ("[rig\n", "r.toml: not TOML: Expected ']' at the end of a table declaration (at line 1, column 5)"),
    ],
    ids=["bench-ports", "virtual-real", "pins-and-lanes", "backend", "toml"],
)
def test_rig_file_errors_name_the_key(text: str, expected: str) -> None:
    """A rig file that cannot be used says which key and what was expected."""
    with pytest.raises(RigFileError) as err:
        parse_rig(text, "r.toml")
    assert str(err.value) == expected


def test_rig_bench_names_a_missing_adapter(tmp_path: Path) -> None:
    """A bench whose adapter is not plugged in stops the run with the path (not a skip that would pass)."""
    present = tmp_path / "ttyUSB0"
    present.touch()
    desc = parse_rig(BENCH_LINE + f'gateway_port = "{present}"\ndevice_port = "{tmp_path}/ttyUSB1"\n', "r.toml")
    assert BenchBackend().problems(desc) == [
        f"lines.rs485-1.device_port: {tmp_path}/ttyUSB1 does not exist (adapter unplugged or renamed?)"
    ]


def test_rig_lock_fails_fast_naming_the_holder(tmp_path: Path) -> None:
    """A second run on a held bench fails at once and says which process, user and rig hold it; once the first
    is done, the bench is free again."""
    path = tmp_path / "hil.lock"
    with BenchLock(path, "bench-1"):
        with pytest.raises(BenchBusy) as busy:
            BenchLock(path, "bench-1").__enter__()
        assert str(busy.value).startswith(f"{path}: the bench is in use by pid {os.getpid()} (")
        assert ", rig bench-1: " in busy.value.holder
    with BenchLock(path, "bench-1"):
        assert path.read_text().startswith(f"pid {os.getpid()} ")
    assert path.read_text() == ""


def test_rig_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    """A run killed with the lock held leaves no stale lock: the kernel drops it with the process."""
    path = tmp_path / "hil.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(Path(__file__).parent), str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"holding\n"
        with pytest.raises(BenchBusy, match=f"in use by pid {holder.pid} "):
            BenchLock(path, "bench-1").__enter__()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert f"pid {holder.pid} " in path.read_text()  # what it wrote stays; the lock does not
    with BenchLock(path, "bench-1"):
        pass


HOLD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from hil.lock import BenchLock
BenchLock(Path(sys.argv[2]), "bench-1").__enter__()
print("holding", flush=True)
time.sleep(60)
"""


def test_rig_scenario_skips_naming_what_the_rig_lacks() -> None:
    """A bench whose panel is real cannot put it into fire: the scenario skips and says so."""
    desc = parse_rig(
        BENCH_LINE + 'gateway_port = "/dev/ttyUSB0"\n'
        '[[devices]]\nid = "facp-1"\nline = "rs485-1"\nunit = 1\nprofile = "fire_panel"\nreal = true\n',
        "r.toml",
    )
    with pytest.raises(pytest.skip.Exception) as skipped:
        Rig(desc).simulated("fire_panel")
    assert skipped.value.msg == "rig b: no simulated fire_panel: a real one cannot be driven from here"
    with pytest.raises(pytest.skip.Exception) as skipped:
        Rig(desc).loopback("door")
    assert skipped.value.msg == "rig b: no GPIO loop-back wired as a door input"


async def test_rig_bench_backend_runs_a_scenario_unchanged(tmp_path: Path) -> None:
    """The bench backend, with a pseudo-terminal pair standing in for the two USB adapters: the fire scenario's
    body runs as it is, the simulators answering on the device end the rig file names."""
    async with PtyPair(tmp_path / "ttyUSB0", tmp_path / "ttyUSB1"):
        desc = parse_rig(
            BENCH_LINE + f'gateway_port = "{tmp_path}/ttyUSB0"\ndevice_port = "{tmp_path}/ttyUSB1"\nbaud = 19200\n'
            f'[[devices]]\nid = "facp-1"\nline = "rs485-1"\nunit = 1\nprofile = "fire_panel"\n',
            "r.toml",
        )
        rig = Rig(desc)
        assert rig.backend.problems(desc) == []
        with BenchLock(tmp_path / "hil.lock", desc.rig.name):
            await test_scenarios.test_hil_fire_reaches_the_platform(rig, tmp_path / "run")
    config = (tmp_path / "run" / "gateway.toml").read_text()
    assert f'port = "{tmp_path}/ttyUSB0"' in config
    assert 'pin_factory = "default"' in config


def test_rig_virtual_without_socat_is_no_rig(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine that cannot build the virtual rig's serial lines says why (the scenarios then skip with it)."""
    desc = load_rig(RIGS / "virtual.toml")
    assert VirtualBackend().unavailable(desc) is None
    monkeypatch.setenv("PATH", "")
    assert VirtualBackend().unavailable(desc) == "socat is not installed (scripts/bootstrap installs it)"
