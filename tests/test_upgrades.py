"""Upgrades keep data: a newer gateway reads the stores an older one wrote (tests/data/state-0.1.0, as 0.1.0 left
them), and an older one refuses a newer store, names it, and leaves it as it is."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.base.errors import NewerStoreError
from gateway.base.statefile import load_json, save_json
from gateway.config import Config, load_config
from gateway.safety.authority import Authority
from gateway.service.app import Gateway
from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY, Entry, Outbox

ROOT = Path(__file__).resolve().parent.parent
STATE_0_1_0 = ROOT / "tests" / "data" / "state-0.1.0"
STATE_FILES = ("alarms.json", "event-state.json", "fire-hold.json", "fire-sources.json", "modes.json",
               "report-history.json", "detector-tests.json", "reports.json")  # fmt: skip


def refusal(path: Path, version: int) -> tuple[str, str]:
    """The refusal, in English and in Chinese."""
    return (
        f"{path}: written by a newer campus-edge (version {version}); this gateway reads up to version 1. Install "
        "the newer gateway again; the file is left as it is",
        f"{path}: 由较新版本的 campus-edge 写入 (版本 {version}); 本网关最高只能读取版本 1。请重新安装较新版本的"
        "网关; 该文件保持原样, 未作改动",
    )


def state_dir(tmp_path: Path) -> Path:
    """A copy of 0.1.0's state directory."""
    state = tmp_path / "state"
    shutil.copytree(STATE_0_1_0, state, ignore=shutil.ignore_patterns("README.md"))
    return state


def demo_site(state: Path) -> Config:
    """The demo site (whose demo run wrote the state files), kept in `state`."""
    cfg = load_config(ROOT / "examples" / "demo-site.toml")
    return cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"state_dir": state})})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def newer_outbox(state: Path) -> Path:
    """0.1.0's outbox as a newer gateway would leave it: its schema one version on."""
    path = state / "outbox.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', 2); PRAGMA user_version = 2;"
    )
    db.close()
    return path


def test_upgrade_outbox_of_0_1_0_is_kept_as_it_was(tmp_path: Path) -> None:
    """0.1.0's outbox (user_version 1) is opened in place, with nothing to migrate: every waiting row, the seq."""
    state = state_dir(tmp_path)
    box = Outbox(state / "outbox.db")
    assert box.recovery.moved_aside is None
    assert [r.seq for r in box.fetch(PRIORITY_TELEMETRY, 0, 10)] == [3, 4, 5]
    [alarm] = box.fetch(PRIORITY_ALARM, 0, 10)
    assert (alarm.seq, alarm.topic) == (6, "campus/v1/demo-school/gw-east-gate/event/fire")
    assert alarm.body == '{"device":"facp-1","point":"fire","state":"raised"}'
    assert [r.seq for r in box.fetch(PRIORITY_EVENT, 0, 10)] == [7]
    assert box.put([Entry(PRIORITY_EVENT, "t", "{}")]) == [8]
    assert box._db.execute("PRAGMA user_version").fetchone()[0] == 1
    box.close()
    assert not list(state.glob("outbox.db.corrupt*"))


def test_upgrade_newer_outbox_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A newer gateway's outbox is not moved aside as corrupt: refused, naming it and both versions, byte for byte
    as it was."""
    state = state_dir(tmp_path)
    path = newer_outbox(state)
    before = snapshot(state)
    with pytest.raises(NewerStoreError) as refused:
        Outbox(path)
    assert (refused.value.render("en"), refused.value.render("zh-CN")) == refusal(path, 2)
    assert str(refused.value) == "\n".join(refusal(path, 2))
    assert snapshot(state) == before


async def test_upgrade_state_files_of_0_1_0_are_restored(tmp_path: Path) -> None:
    """A gateway started on 0.1.0's state files (no version in them: version 1) restores what they say."""
    gw = Gateway(demo_site(state_dir(tmp_path)), pin_factory=MockFactory())
    try:
        assert list(gw.alarms.alarms) == ["door-main.forced_open", "smoke-103.low_battery", "smoke-102.prealarm",
                                          "smoke-102.fire_alarm", "facp-1.fire"]  # fmt: skip
        assert gw.memory.of("facp-1") == {"fire": True}
        assert (gw.bollards.lockdown, gw.bollards.fire) == (Authority.GUARD, True)
        assert gw.bollards.supervisors["lane-east"].fire_hold
        assert [i.mode for i in gw.bollards.supervisors["lane-east"].intents.values()] == ["lockdown"]
        assert gw.inspector.tested == {"smoke-102": {"first_seen": 1796416937108, "last_test": 1796416940000}}
        assert gw.inspector.started_ms == 1796416937108
        assert gw.report_clock.last == {"daily": "2026-12-04", "weekly": "2026-11-30", "monthly": "2026-12-01"}
        assert gw.outbox.recovery.moved_aside is None
    finally:
        gw.recorder.flush()
        gw.bollards.close()
        gw.outbox.close()


def test_upgrade_state_file_carries_its_version(tmp_path: Path) -> None:
    """From now on a state file says which version wrote it, and reads back as the data it wraps."""
    path = tmp_path / "fire-hold.json"
    assert save_json(path, ["lane-east"], "the fire holds")
    assert path.read_text() == '{"format":"campus-edge/state","version":1,"data":["lane-east"]}'
    assert load_json(path) == ["lane-east"]


@pytest.mark.parametrize("name", STATE_FILES)
async def test_upgrade_newer_state_file_is_refused_and_left_untouched(tmp_path: Path, name: str) -> None:
    """A state file a newer gateway wrote stops this one at start, naming the file and both versions; the file is
    not discarded, nor written over."""
    state = state_dir(tmp_path)
    path = state / name
    data = path.read_text(encoding="utf-8")
    path.write_text(f'{{"format":"campus-edge/state","version":2,"data":{data},"written_by":"0.2.0"}}')
    before = path.read_bytes()
    with pytest.raises(NewerStoreError) as refused:
        Gateway(demo_site(state), pin_factory=MockFactory())
    assert (refused.value.render("en"), refused.value.render("zh-CN")) == refusal(path, 2)
    assert path.read_bytes() == before


def test_upgrade_damaged_state_file_wrapper_reads_as_damaged(tmp_path: Path) -> None:
    """A wrapper without a usable version is a damaged file (its reader starts afresh, as for any), not a newer
    one."""
    path = tmp_path / "modes.json"
    for text in ('{"format":"campus-edge/state","version":"2","data":{}}', '{"format":"campus-edge/state"}'):
        path.write_text(text)
        with pytest.raises(ValueError, match=r"^modes\.json: expected a version and data in the campus-edge/state "):
            load_json(path)


@pytest.mark.slow
async def test_upgrade_run_refuses_a_newer_outbox_in_both_languages(tmp_path: Path) -> None:
    """`campus-edge run` on a newer gateway's outbox exits 2 before it connects, the refusal in English and
    Chinese on stderr, the store untouched."""
    state = state_dir(tmp_path)
    path = newer_outbox(state)
    before = snapshot(state)
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[site]\nid = "test-school"\n[gateway]\nid = "gw-1"\nstate_dir = "{state}"\n'
        '[mqtt]\nurls = ["mqtt://127.0.0.1:1"]\nallow_plaintext = true\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    en, zh = refusal(path, 2)
    assert (proc.returncode, out, err.decode()) == (2, b"", f"campus-edge: {en}\n{zh}\n")
    assert snapshot(state) == before
