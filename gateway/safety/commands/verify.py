"""The verification pipeline: every step refuses with a reason code and no effect (issue 7, point 2).

size -> strict schema -> audience, target and topic agree -> key known and not revoked -> role may do the action
-> signature -> not a replay (command id, then the issuer's sequence number) -> fresh on a synchronised clock ->
recorded durably -> handed to dispatch. Only the last step changes anything, and only for a command that passed
every other. Whatever it is asked, dispatch can only reach the bollard supervisor's `request` (interlocks and
authority still apply) and the lockdown; EFO and the interlocks are not among the actions (R16).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.base.i18n import N_
from gateway.safety.commands.envelope import MAX_ACTUATION_TTL_S, CommandBody, EnvelopeError, decode
from gateway.safety.commands.store import CommandStore

DEFAULT_ROLES: dict[str, frozenset[str]] = {
    "guard": frozenset({"bollard.raise", "bollard.lower", "bollard.stop", "alarm.ack"}),
    "operator": frozenset({"bollard.raise", "bollard.lower", "bollard.stop", "site.lockdown", "alarm.ack"}),
    "admin": frozenset({"bollard.raise", "bollard.lower", "bollard.stop", "site.lockdown", "alarm.ack"}),
}

REASONS = {
    # code: the text for the reply, the audit and the guard (translated through the catalogue: gateway/i18n.py)
    "too_large": N_("the command is larger than 4 KiB"),
    "malformed": N_("the command is not well formed"),
    "wrong_audience": N_("the command is for another gateway"),
    "target_mismatch": N_("the command's target is not its topic's"),
    "unknown_target": N_("no such target on this gateway"),
    "unknown_key": N_("the signing key is not known"),
    "revoked_key": N_("the signing key is revoked"),
    "forbidden": N_("the key's role may not do this"),
    "bad_signature": N_("the signature does not verify"),
    "replayed": N_("the command id was used before"),
    "stale_seq": N_("the sequence number is not higher than the last one"),
    "clock_unsynced": N_("the gateway's clock is not synchronised: no remote actuation"),
    "ttl_too_long": N_("the command is valid for longer than allowed"),
    "expired": N_("the command has expired"),
    "not_yet_valid": N_("the command is dated in the future"),
}


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A public key the gateway accepts commands from, and what its holder may do."""

    kid: str
    issuer: str
    public_key: Ed25519PublicKey
    roles: frozenset[str]
    revoked: bool = False
    targets: frozenset[str] | None = None  # None: every target of the gateway


@dataclass(frozen=True, slots=True)
class Verdict:
    """The pipeline's answer. `accepted`: recorded, dispatch it. `duplicate`: the same command again: send back
    `stored` and do nothing. Otherwise refused with `reason` (a code of REASONS) and `message`."""

    accepted: bool
    reason: str = ""
    message: str = ""
    body: CommandBody | None = None
    duplicate: bool = False
    stored: dict[str, Any] = field(default_factory=dict)


class Verifier:
    """Checks commands for one gateway."""

    def __init__(
        self,
        site: str,
        gateway: str,
        keys: Mapping[str, KeyEntry],
        targets: Mapping[str, Collection[str]],
        store: CommandStore,
        roles: Mapping[str, frozenset[str]] = DEFAULT_ROLES,
        skew_s: float = 2.0,
        max_ttl_s: float = MAX_ACTUATION_TTL_S,
    ) -> None:
        """`targets`: action -> the targets it may name (lane ids for bollard actions, the gateway id for
        site-wide ones)."""
        self.audience = f"{site}/{gateway}"
        self.keys = keys
        self.targets = targets
        self.store = store
        self.roles = roles
        self.skew = timedelta(seconds=skew_s)
        self.max_ttl = timedelta(seconds=max_ttl_s)

    def check(self, topic_target: str, payload: bytes, now: datetime, synced: bool) -> Verdict:
        """Run the pipeline on a payload received on `.../cmd/{topic_target}` at wall time `now`."""
        try:
            decoded = decode(payload)
        except EnvelopeError as exc:
            return _refuse(exc.reason, str(exc))
        body, body_bytes = decoded.body, decoded.body_bytes
        if body.aud != self.audience:
            return _refuse("wrong_audience", f"aud {body.aud!r} is not {self.audience!r}", body)
        if body.target != topic_target:
            return _refuse("target_mismatch", f"target {body.target!r} came on the topic of {topic_target!r}", body)
        if body.target not in self.targets.get(body.action, ()):
            return _refuse("unknown_target", f"{body.action} has no target {body.target!r} here", body)
        key = self.keys.get(body.kid)
        if key is None or key.issuer != body.issuer:
            return _refuse("unknown_key", f"no key {body.kid!r} of issuer {body.issuer!r}", body)
        if key.revoked:
            return _refuse("revoked_key", f"key {body.kid!r} is revoked", body)
        if not any(body.action in self.roles.get(role, frozenset()) for role in key.roles):
            return _refuse("forbidden", f"roles {sorted(key.roles)} may not {body.action}", body)
        if key.targets is not None and body.target not in key.targets:
            return _refuse("forbidden", f"key {body.kid!r} may not act on {body.target!r}", body)
        try:
            key.public_key.verify(decoded.signature, body_bytes)
        except InvalidSignature:
            return _refuse("bad_signature", f"signature does not verify with key {body.kid!r}", body)
        digest = hashlib.sha256(body_bytes).hexdigest()
        before = self.store.seen(body.cmd_id)
        if before is not None:
            if before.digest == digest:
                return Verdict(False, "duplicate", "the same command again", body, duplicate=True, stored=before.result)
            return _refuse("replayed", f"cmd_id {body.cmd_id} was used by another command", body)
        last = self.store.last_seq(body.issuer)
        if body.seq <= last:
            return _refuse("stale_seq", f"seq {body.seq} of {body.issuer} is not above {last}", body)
        if not synced:
            return _refuse("clock_unsynced", "freshness cannot be judged on an unsynchronised clock", body)
        issued, expires = body.issued(), body.expires()
        if expires - issued > self.max_ttl or expires < issued:
            return _refuse("ttl_too_long", f"valid from {body.iat} to {body.exp}: at most {self.max_ttl}", body)
        if now > expires + self.skew:
            return _refuse("expired", f"expired at {body.exp}", body)
        if issued > now + self.skew:
            return _refuse("not_yet_valid", f"issued at {body.iat}, in the future", body)
        keep_until = expires + self.skew + timedelta(hours=1)
        self.store.accept(body.cmd_id, body.issuer, body.seq, digest, int(keep_until.timestamp() * 1000))
        return Verdict(True, "", "", body)


def _refuse(reason: str, message: str, body: CommandBody | None = None) -> Verdict:
    return Verdict(False, reason, message, body)
