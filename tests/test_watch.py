"""The integrator's watch tool and the platform acknowledgement it sends."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.base.contract import Topics
from gateway.cli.watch import Ledger, Watcher
from gateway.uplink.contract_check import SCHEMAS, ContractViolation, validator
from gateway.uplink.link import parse_ack


def test_watch_ledger_contiguous_mark_and_outstanding() -> None:
    """The mark stops at the first hole; numbers below the highest that are missing are outstanding."""
    led = Ledger()
    for s in (1, 2, 3, 5, 6):
        assert led.note(s, telemetry=True)
    assert led.mark == 3
    assert led.outstanding() == [4]
    assert led.note(4, telemetry=True)
    assert led.mark == 6
    assert led.outstanding() == []


def test_watch_ledger_declared_gap_is_accounted_for() -> None:
    """A declared gap fills the mark over numbers that will never come."""
    led = Ledger()
    led.note(1, telemetry=True)
    led.note(40, telemetry=False)
    assert led.outstanding() == list(range(2, 40))
    led.declare(2, 39)
    assert led.outstanding() == []
    assert led.mark == 40


def test_watch_ledger_duplicates_and_reordering() -> None:
    """A seq seen twice is a duplicate; telemetry going backwards is counted as reordered."""
    led = Ledger()
    led.note(5, telemetry=True)
    assert not led.note(5, telemetry=True)
    led.note(3, telemetry=True)
    assert (led.duplicates, led.reordered) == (1, 1)


def test_watch_reports_invalid_message_with_topic_and_field() -> None:
    """A message that breaks the contract is reported, naming topic and field, and not counted as received."""
    out = io.StringIO()
    w = Watcher("s1", out=out)
    bad = {
        "schema": "campus-edge/event/1", "site": "s1", "gateway": "g1", "seq": "seven", "class": "fire",
        "severity": "alarm", "state": "raised", "device": "facp-1", "point": "fire", "value": True,
        "quality": "good", "ts": "2026-11-28T10:00:00.000Z", "clock_synced": True,
    }  # fmt: skip
    w.handle("campus/v1/s1/g1/event/fire", json.dumps(bad).encode())
    w.handle("campus/v1/s1/g1/telemetry", b"not json")
    twice = json.dumps(bad | {"seq": 7}).replace('"seq": 7', '"seq": 8, "seq": 7')  # valid, but for the 8
    w.handle("campus/v1/s1/g1/event/fire", twice.encode())
    assert w.invalid == 3
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("invalid   campus/v1/s1/g1/event/fire: seq: 'seven' is not of type 'integer'")
    assert lines[1].startswith("invalid   campus/v1/s1/g1/telemetry: not JSON: Expecting value")
    assert lines[2] == 'invalid   campus/v1/s1/g1/event/fire: duplicate key "seq" in payload'
    assert w.ledgers["g1"].received == set()
    assert w.ledgers["g1"].invalid == 3
    assert w.summary()["g1"]["invalid"] == 3


def test_uplink_parse_ack_accepts_only_valid_acknowledgements() -> None:
    """Only a well-formed acknowledgement for this gateway, not beyond what was committed, counts."""
    t = Topics("s1", "g1")

    def ack(**kw: object) -> bytes:
        body = {"schema": "campus-edge/ack/1", "site": "s1", "gateway": "g1", "seq": 10} | kw
        return json.dumps(body).encode()

    assert parse_ack(t, ack(), 20) == 10
    assert parse_ack(t, ack(seq=21), 20) is None  # beyond the last committed seq
    assert parse_ack(t, ack(gateway="g2"), 20) is None
    assert parse_ack(t, ack(seq=True), 20) is None
    assert parse_ack(t, ack(seq="10"), 20) is None
    assert parse_ack(t, b"\xff\xfe", 20) is None


def test_watch_refuses_a_schema_with_a_key_given_twice(tmp_path: Path) -> None:
    """A contract schema edited to name a key twice is refused with its file, not read the last key's way."""
    schema = (SCHEMAS / "ack.schema.json").read_text(encoding="utf-8")
    (tmp_path / "ack.schema.json").write_text(schema.replace('"type":', '"type": "string", "type":', 1))
    with pytest.raises(ContractViolation) as caught:
        validator("ack", tmp_path)
    assert str(caught.value) == f'{tmp_path / "ack.schema.json"}: not a contract schema: duplicate key "type" in schema'


def test_watch_without_its_extra_says_how_to_install_it(tmp_path: Path) -> None:
    """jsonschema is the watch extra, not the runtime's: without it, watch names the extra in English and zh-CN."""
    probe = (
        "import sys\n"
        "sys.modules['jsonschema'] = None  # not installed, as in a runtime install\n"
        "from gateway.cli.main import main\n"
        "sys.exit(main(['watch', '--broker', 'mqtt://127.0.0.1:1', '--site', 'demo']))"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr == (
        "campus-edge: campus-edge watch (it checks every message against the contract's JSON Schemas) needs "
        "jsonschema, which is not installed here: pip install 'campus-edge[watch]'\n"
        "campus-edge watch (按契约的 JSON Schema 校验每条消息) 需要 jsonschema, 本机尚未安装: "
        "pip install 'campus-edge[watch]'\n"
    )
