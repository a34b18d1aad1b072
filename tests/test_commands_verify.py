"""The command verification pipeline (issue 7, points 1, 2 and 7): every forged, replayed, stale, malformed or
oversized command is refused with its reason code and records nothing; a valid one is accepted exactly once, also
across a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.safety.commands.envelope import b64decode, b64encode, decode, seal, sign
from gateway.safety.commands.store import CommandStore
from gateway.safety.commands.verify import REASONS, KeyEntry, Verdict, Verifier

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
OPERATOR_KEY = Ed25519PrivateKey.generate()
GUARD_KEY = Ed25519PrivateKey.generate()
REVOKED_KEY = Ed25519PrivateKey.generate()
WEST_KEY = Ed25519PrivateKey.generate()  # a guard station that may act on lane-west only
TARGETS = {
    "bollard.raise": {"lane-east"},
    "bollard.lower": {"lane-east"},
    "bollard.stop": {"lane-east"},
    "site.lockdown": {"g1"},
    "alarm.ack": {"facp-1.fire"},
}


def keys() -> dict[str, KeyEntry]:
    return {
        "platform-1": KeyEntry("platform-1", "platform", OPERATOR_KEY.public_key(), frozenset({"operator"})),
        "gatehouse-1": KeyEntry("gatehouse-1", "gatehouse", GUARD_KEY.public_key(), frozenset({"guard"})),
        "old-1": KeyEntry("old-1", "platform", REVOKED_KEY.public_key(), frozenset({"operator"}), revoked=True),
        "west-1": KeyEntry(
            "west-1", "west", WEST_KEY.public_key(), frozenset({"guard"}), targets=frozenset({"lane-west"})
        ),
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CommandStore]:
    s = CommandStore(tmp_path / "commands.db")
    yield s
    s.close()


def verifier(store: CommandStore) -> Verifier:
    return Verifier("s1", "g1", keys(), TARGETS, store)


def command(seq: int = 1, **kw: Any) -> bytes:
    args: dict[str, Any] = {
        "kid": "platform-1",
        "issuer": "platform",
        "audience": "s1/g1",
        "target": "lane-east",
        "action": "bollard.raise",
        "seq": seq,
        "operator": "zhang.wei",
        "now": NOW,
    }
    args.update(kw)
    key = args.pop("key", OPERATOR_KEY)
    return sign(key, **args)


def check(store: CommandStore, payload: bytes, topic: str = "lane-east", **kw: Any) -> Verdict:
    return verifier(store).check(topic, payload, kw.get("now", NOW + timedelta(seconds=1)), kw.get("synced", True))


def resign_body(payload: bytes, change: dict[str, Any], key: Ed25519PrivateKey = OPERATOR_KEY) -> bytes:
    body = json.loads(b64decode(json.loads(payload)["body"]))
    body.update(change)
    return seal(key, body["kid"], json.dumps(body).encode())


def test_commands_a_valid_command_is_accepted_once_even_across_a_restart(tmp_path: Path) -> None:
    store = CommandStore(tmp_path / "c.db")
    payload = command()
    first = check(store, payload)
    assert first.accepted
    assert first.body is not None
    assert first.body.action == "bollard.raise"
    store.set_result(first.body.cmd_id, {"status": "done", "position": "up"})
    again = check(store, payload)
    assert (again.accepted, again.duplicate, again.stored) == (False, True, {"status": "done", "position": "up"})
    store.close()
    reopened = CommandStore(tmp_path / "c.db")  # the gateway restarted
    after = check(reopened, payload)
    assert (after.accepted, after.duplicate) == (False, True)
    assert reopened.last_seq("platform") == 1
    reopened.close()


def forged(case: str) -> bytes:
    good = command()
    envelope = json.loads(good)
    if case == "wrong_key":
        return command(key=Ed25519PrivateKey.generate())
    if case == "unknown_kid":
        return resign_body(good, {"kid": "nobody-1"})
    if case == "revoked":
        return command(kid="old-1", key=REVOKED_KEY)
    if case == "changed_after_signing":
        body = json.loads(b64decode(envelope["body"]))
        body["action"] = "bollard.lower"
        envelope["body"] = b64encode(json.dumps(body).encode())
        return json.dumps(envelope).encode()
    if case == "signature_stripped":
        envelope["sig"] = ""
        return json.dumps(envelope).encode()
    if case == "signature_of_another_command":
        envelope["sig"] = json.loads(command(seq=2, action="bollard.lower"))["sig"]
        return json.dumps(envelope).encode()
    if case == "wrong_role":
        return command(kid="gatehouse-1", issuer="gatehouse", key=GUARD_KEY, action="site.lockdown",
                       target="g1", params={"on": True})  # fmt: skip
    if case == "issuer_of_another_key":
        return command(issuer="gatehouse")
    if case == "another_lane_than_the_keys":
        return command(kid="west-1", issuer="west", key=WEST_KEY)
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_key", "bad_signature"),
        ("unknown_kid", "unknown_key"),
        ("revoked", "revoked_key"),
        ("changed_after_signing", "bad_signature"),
        ("signature_stripped", "malformed"),
        ("signature_of_another_command", "bad_signature"),
        ("wrong_role", "forbidden"),
        ("issuer_of_another_key", "unknown_key"),
        ("another_lane_than_the_keys", "forbidden"),
    ],
)
def test_commands_forged_are_refused_and_recorded_nowhere(store: CommandStore, case: str, reason: str) -> None:
    payload = forged(case)
    topic = "g1" if case == "wrong_role" else "lane-east"
    verdict = check(store, payload, topic)
    assert (verdict.accepted, verdict.reason) == (False, reason), verdict.message
    assert store.last_seq("platform") == 0
    assert store.last_seq("gatehouse") == 0


def test_commands_replays_are_refused(store: CommandStore) -> None:
    first = command(seq=5)
    assert check(store, first).accepted
    cases = {
        "same cmd_id, new seq": (resign_body(first, {"seq": 6}), "replayed"),
        "old seq, new cmd_id": (command(seq=5, cmd_id="another-command-1"), "stale_seq"),
        "lower seq": (command(seq=4), "stale_seq"),
        "another gateway": (command(seq=7, audience="s1/g2"), "wrong_audience"),
        "another site": (command(seq=7, audience="s2/g1"), "wrong_audience"),
    }
    for name, (payload, reason) in cases.items():
        verdict = check(store, payload)
        assert (verdict.accepted, verdict.reason) == (False, reason), name
    assert store.last_seq("platform") == 5
    assert check(store, command(seq=8)).accepted, "a genuine later command still goes through"


@pytest.mark.parametrize(
    ("when", "synced", "ttl_s", "reason"),
    [
        (NOW + timedelta(seconds=13), True, 10, "expired"),
        (NOW + timedelta(seconds=11), True, 10, ""),  # within the 2 s skew
        (NOW - timedelta(seconds=3), True, 10, "not_yet_valid"),
        (NOW + timedelta(seconds=1), True, 11, "ttl_too_long"),
        (NOW + timedelta(seconds=1), False, 10, "clock_unsynced"),
    ],
)
def test_commands_freshness(store: CommandStore, when: datetime, synced: bool, ttl_s: float, reason: str) -> None:
    verdict = check(store, command(ttl_s=ttl_s), now=when, synced=synced)
    assert (verdict.accepted, verdict.reason) == (reason == "", reason)
    assert store.last_seq("platform") == (1 if reason == "" else 0)


@pytest.mark.parametrize(
    ("payload", "topic", "reason"),
    [
        (b"x" * 4097, "lane-east", "too_large"),
        (b"not json", "lane-east", "malformed"),
        (b"[]", "lane-east", "malformed"),
        (json.dumps({"v": 1, "kid": "platform-1", "body": "!!", "sig": "AA"}).encode(), "lane-east", "malformed"),
        (resign_body(command(), {"extra": 1}), "lane-east", "malformed"),
        (resign_body(command(), {"seq": "1"}), "lane-east", "malformed"),
        (resign_body(command(), {"action": "bollard.efo"}), "lane-east", "malformed"),
        (resign_body(command(), {"params": {"fast": True}}), "lane-east", "malformed"),
        (resign_body(command(), {"iat": "yesterday"}), "lane-east", "malformed"),
        (command(action="site.lockdown", target="g1", params={"on": "yes"}), "g1", "malformed"),
        (command(), "lane-west", "target_mismatch"),
        (command(target="lane-west"), "lane-west", "unknown_target"),
        (command(action="site.lockdown", target="lane-east", params={"on": True}), "lane-east", "unknown_target"),
    ],
)
def test_commands_malformed_and_oversized(store: CommandStore, payload: bytes, topic: str, reason: str) -> None:
    verdict = check(store, payload, topic)
    assert (verdict.accepted, verdict.reason) == (False, reason), verdict.message
    assert reason in REASONS


def body_with(payload: bytes, old: str, new: str, key: Ed25519PrivateKey = OPERATOR_KEY) -> bytes:
    """The body's JSON text with `old` replaced by `new` once, signed again: a validly signed odd body."""
    text = b64decode(json.loads(payload)["body"]).decode()
    assert old in text
    return seal(key, "platform-1", text.replace(old, new, 1).encode())


LOCKDOWN = command(action="site.lockdown", target="g1", params={"on": True})


@pytest.mark.parametrize(
    ("payload", "topic", "message"),
    [
        (body_with(command(), '"action":', '"action":"bollard.lower","action":'), "lane-east",
         'duplicate key "action" in body'),
        (body_with(command(), '"target":', '"target":"lane-west","target":'), "lane-east",
         'duplicate key "target" in body'),
        (body_with(LOCKDOWN, '"on":', '"on":false,"on":'), "g1", 'duplicate key "on" in body.params'),
        (command().replace(b'"kid":', b'"kid":"old-1","kid":', 1), "lane-east", 'duplicate key "kid" in envelope'),
        (command().replace(b'"sig":', b'"sig":"AA","sig":', 1), "lane-east", 'duplicate key "sig" in envelope'),
        (body_with(command(), '"operator":"zhang.wei"', '"operator":"\\ud800"'), "lane-east",
         "body.operator: a string with a lone surrogate (not Unicode)"),
        (b"[" * 3000, "lane-east", "envelope: nested too deeply"),
        (b"not json", "lane-east", "envelope: not JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)  # fmt: skip
def test_commands_a_key_given_twice_is_malformed_at_any_level(
    store: CommandStore, payload: bytes, topic: str, message: str
) -> None:
    """A signed body whose JSON names a key twice (or that is not Unicode) is refused: it can be read two ways."""
    verdict = check(store, payload, topic)
    assert (verdict.accepted, verdict.reason, verdict.message) == (False, "malformed", message)
    assert store.last_seq("platform") == 0


def test_commands_no_action_reaches_efo_or_an_interlock() -> None:
    """R16: the schema's actions are the whole of what a command can ask."""
    from typing import get_args  # noqa: PLC0415

    from gateway.base.contract import ACTIONS  # noqa: PLC0415
    from gateway.safety.commands.envelope import Action  # noqa: PLC0415

    assert set(ACTIONS) == set(TARGETS) == set(get_args(Action))
    assert not [a for a in ACTIONS if "efo" in a or "interlock" in a or "inhibit" in a]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_commands_property_unsigned_bytes_move_nothing(store: CommandStore, data: bytes) -> None:
    """Any byte string not signed by an allowed key is refused."""
    verdict = check(store, data)
    assert not verdict.accepted
    assert store.last_seq("platform") == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_commands_property_a_changed_byte_is_refused_unless_it_changes_nothing_signed(
    tmp_path_factory: pytest.TempPathFactory, position: int, byte: int
) -> None:
    """One byte of a valid command changed: refused, unless what was signed and the signature are unchanged
    (base64 has bits that decode to nothing, and JSON whitespace is not signed)."""
    store = CommandStore(tmp_path_factory.mktemp("p") / "c.db")
    original = command()
    payload = bytearray(original)
    payload[position % len(payload)] = byte
    verdict = check(store, bytes(payload))
    if verdict.accepted:
        same = decode(bytes(payload))
        genuine = decode(original)
        assert (same.body_bytes, same.signature) == (genuine.body_bytes, genuine.signature)
    store.close()


@settings(max_examples=50, deadline=None)
@given(times=st.integers(min_value=1, max_value=6), order=st.permutations(range(3)))
def test_commands_property_delivered_k_times_acts_once(
    tmp_path_factory: pytest.TempPathFactory, times: int, order: list[int]
) -> None:
    """Three valid commands, each delivered `times` times, interleaved: each is accepted exactly once."""
    store = CommandStore(tmp_path_factory.mktemp("k") / "c.db")
    payloads = [command(seq=i + 1) for i in range(3)]
    accepted = [0, 0, 0]
    for i in order:
        for _ in range(times):
            accepted[i] += check(store, payloads[i]).accepted
    # Out of order, a lower seq after a higher one is refused as stale: each command acts at most once, and
    # exactly once if no later-numbered command came before it.
    last = 0
    for i in order:
        assert accepted[i] == (1 if i + 1 > last else 0)
        last = max(last, i + 1)
    store.close()


def test_commands_a_flood_is_dropped_unread_beyond_the_rate(tmp_path: Path) -> None:
    """Beyond max_per_s (burst 40 at once, then 20 a second) commands are not even verified: counted, and audited
    once a second as one event, so a flood cannot take the CPU the alarms need (bench b3 measures that)."""
    from gateway.base.clock import Clock  # noqa: PLC0415
    from gateway.base.contract import Topics  # noqa: PLC0415
    from gateway.config import CommandKeyConfig, CommandsConfig  # noqa: PLC0415
    from gateway.safety.bollards.service import BollardService  # noqa: PLC0415
    from gateway.safety.commands.service import CommandService  # noqa: PLC0415
    from gateway.safety.site_mode import SiteMode  # noqa: PLC0415
    from gateway.store.outbox import Outbox  # noqa: PLC0415
    from gateway.store.recorder import Recorder  # noqa: PLC0415
    from gateway.store.stateboard import StateBoard  # noqa: PLC0415

    class StoppedClock(Clock):
        """Time moves only when the test says."""

        now = 100.0

        @staticmethod
        def mono() -> float:
            return StoppedClock.now

    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    public = tmp_path / "k.pub"
    public.write_bytes(
        OPERATOR_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    cfg = CommandsConfig(keys=(CommandKeyConfig(id="platform-1", issuer="platform", public_key_file=public,
                                                roles=("operator",)),))  # fmt: skip
    topics = Topics("s1", "g1")
    outbox = Outbox(tmp_path / "o.db")
    recorder = Recorder(outbox, topics, StateBoard(topics))
    clock = StoppedClock(assume_synced=True)
    bollards = BollardService((), {}, recorder, clock, SiteMode(recorder, clock, gateway_id="g1"))
    service = CommandService(cfg, "s1", "g1", bollards, clock, tmp_path / "c.db", topics.reply)
    looked_at = [service.handle("g1", b"garbage", None, None) for _ in range(100)]
    assert sum(v is not None for v in looked_at) == 40
    assert service.dropped == 60
    StoppedClock.now += 1.0
    looked_at = [service.handle("g1", b"garbage", None, None) for _ in range(100)]
    assert sum(v is not None for v in looked_at) == 20
    StoppedClock.now += 1.0
    service.handle("g1", b"garbage", None, None)
    recorder.flush()
    from gateway.store.outbox import PRIORITY_EVENT  # noqa: PLC0415

    events = [json.loads(row.body) for row in outbox.fetch(PRIORITY_EVENT, 0, 1000)]
    floods = [e for e in events if e["point"] == "flood"]
    assert [f["value"] for f in floods] == [1, 59, 80], "the first at once, then one a second, with the count"
    assert all(f["detail"]["security"] for f in floods)
    service.close()
    outbox.close()
