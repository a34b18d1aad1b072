"""Fuzz target: the decode-and-verify entry point of signed commands (gateway.commands.verify.Verifier.check).

Whatever bytes arrive on a command topic, the pipeline must answer with a verdict, never raise, and never accept
a command that no allowed key signed. Seeds are valid commands, so the fuzzer starts from the interesting shapes.

    python fuzz/command_verify.py -runs=20000          # the short run CI makes (tests/test_commands_fuzz.py)
    python fuzz/command_verify.py -max_total_time=3600 fuzz/corpus   # a long run, keeping what it finds
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.safety.commands.envelope import sign
    from gateway.safety.commands.store import CommandStore
    from gateway.safety.commands.verify import KeyEntry, Verifier

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed, so seeds and findings replay
_STORE = CommandStore(Path(tempfile.mkdtemp(prefix="fuzz-commands-")) / "commands.db")
_VERIFIER = Verifier(
    "s1",
    "g1",
    {"platform-1": KeyEntry("platform-1", "platform", _KEY.public_key(), frozenset({"operator"}))},
    {"bollard.raise": {"lane-east"}, "bollard.lower": {"lane-east"}, "bollard.stop": {"lane-east"},
     "site.lockdown": {"g1"}},
    _STORE,
)  # fmt: skip
_GENUINE: set[bytes] = set()


def seeds() -> list[bytes]:
    """Valid commands of every action, signed by the allowed key."""
    out = []
    for seq, (action, target, params) in enumerate(
        [("bollard.raise", "lane-east", {}), ("bollard.stop", "lane-east", {}), ("site.lockdown", "g1", {"on": True})],
        start=1,
    ):
        out.append(sign(_KEY, kid="platform-1", issuer="platform", audience="s1/g1", target=target, action=action,
                        seq=seq, operator="fuzz", params=params, now=NOW))  # fmt: skip
    return out


def test_one(data: bytes) -> None:
    if data[:1] == b"\x01":
        # Signed garbage: the bytes after the marker are signed as a body by the allowed key, so the fuzzer also
        # reaches the stages behind the signature (schema of the body, replay, freshness). It may be accepted
        # only if it is a well-formed body, which `check` decides; what matters here is that nothing raises.
        from gateway.safety.commands.envelope import seal  # noqa: PLC0415

        _VERIFIER.check("lane-east", seal(_KEY, "platform-1", data[1:]), NOW + timedelta(seconds=1), True)
        return
    verdict = _VERIFIER.check("lane-east", data, NOW + timedelta(seconds=1), True)
    if verdict.accepted:
        # Only bytes whose signed body is a genuine command can pass: the signature covers the body bytes.
        from gateway.safety.commands.envelope import decode  # noqa: PLC0415

        body_bytes = decode(data).body_bytes
        if body_bytes not in _GENUINE:
            raise AssertionError(f"accepted a command nobody signed: {data!r}")


def main() -> None:
    from gateway.safety.commands.envelope import decode  # noqa: PLC0415

    corpus = seeds()
    _GENUINE.update(decode(s).body_bytes for s in corpus)
    seed_dir = Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    for i, s in enumerate(corpus):
        (seed_dir / f"seed-{i}").write_bytes(s)
        (seed_dir / f"signed-{i}").write_bytes(b"\x01" + decode(s).body_bytes)
    args = [a for a in sys.argv if not a.startswith("--")]
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(seed_dir))
    atheris.Setup(args, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
