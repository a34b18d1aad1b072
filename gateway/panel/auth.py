"""Who is at the panel: PINs hashed with scrypt, sign-in attempts counted and locked out, sessions that end, and a
CSRF token per session.

A guard's PIN is short, so the hash is what keeps it from whoever copies the configuration: scrypt with a random
salt, compared in constant time. The lock-out is what keeps it from whoever stands at the tablet: a guard has
`max_attempts` tries; each wrong PIN is answered as wrong, the last one too, and the guard id is locked from the next
attempt on for `lockout_s`. `address_attempts` (four times as many by default) lock the address they came from in the
same way. The gate house's tablet is one address for every guard: one guard who forgot a PIN must not lock the others
out of it, while someone trying id after id still is. Time is the monotonic clock.

Each lock-out is reported (`Lockout`, for the platform's security event); wrong PINs are only counted
(`SignInCounts`, for health), so that guessing costs the outbox nothing until it locks something.

The hash runs in a worker thread (hashlib releases the GIL for it), one sign-in at a time: on the event loop it would
hold up a fire alarm by its whole cost (about 30 ms on a server core, some 100 ms on a Raspberry Pi 4), and one at a
time keeps a burst of attempts from being checked side by side before the first failure has locked anyone out.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.config import PanelConfig, PanelGuardConfig

# 16 MiB and about 100 ms on a Raspberry Pi 4, paid once per sign-in in a worker thread; the lock-out bounds how
# often anyone can make the gateway pay it.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PIN = 4
MAX_PIN = 64
LockKind = Literal["guard_id", "address"]
MAX_REPORTED_ID = 64  # a guard id as typed at the tablet, cut to this length for the log and the platform


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64), for `[[panel.guards]] pin_hash`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(
        [
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def check_pin(pin: str, stored: str) -> bool:
    """Whether `pin` is the one `stored` was made from (constant-time comparison of the digests)."""
    try:
        kind, n, r, p, salt_b64, digest_b64 = stored.split("$")
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(pin.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(digest))
    except ValueError:
        return False
    return hmac.compare_digest(got, digest)


# Checked instead when the guard id is unknown, so that a wrong id costs what a wrong PIN costs.
_DECOY = hash_pin("decoy", b"campus-edge-decoy")


@dataclass(slots=True)
class Session:
    """A signed-in guard at one browser."""

    token: str
    csrf: str
    guard: PanelGuardConfig
    expires: float
    lang: str = "zh-CN"


@dataclass(frozen=True, slots=True)
class Lockout:
    """A guard id (`kind` "guard_id") or an address locked out by the wrong PIN of `guard_id` from `address`, after
    `wrong_pins` of them in a row; `known_guard` says whether the id is a configured guard's."""

    kind: LockKind
    guard_id: str
    known_guard: bool
    address: str
    wrong_pins: int
    lockout_s: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """A sign-in refused. `locked_s` > 0: the id or the address was locked and the PIN was not looked at (answered
    "locked"); 0: a wrong guard id or PIN (answered "wrong", also when it is the one that locked, in `lockouts`)."""

    locked_s: float = 0.0
    lockouts: tuple[Lockout, ...] = ()


@dataclass(slots=True)
class SignInCounts:
    """Since the start: sign-ins refused (for any reason), wrong PINs among them (those counted towards a lock-out),
    and lock-outs of an id or an address."""

    refused: int = 0
    wrong_pins: int = 0
    lockouts: int = 0


@dataclass(slots=True)
class _Tries:
    failures: int = 0
    locked_until: float = 0.0


@dataclass
class Gatekeeper:
    """Sign-in, lock-out and sessions of one panel."""

    cfg: PanelConfig
    mono: Callable[[], float]
    sessions: dict[str, Session] = field(default_factory=dict)
    counts: SignInCounts = field(default_factory=SignInCounts)
    _tries: dict[str, _Tries] = field(default_factory=dict)
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)

    def locked(self, *keys: str) -> float:
        """Seconds until the last of `keys` (a guard id, an address) is unlocked; 0 when none is locked."""
        now = self.mono()
        return max((max(0.0, t.locked_until - now) for k in keys if (t := self._tries.get(k))), default=0.0)

    async def sign_in(self, guard_id: str, pin: str, address: str) -> Session | Refusal:
        """A session for a guard whose PIN is right, else why not. An id or address already locked is refused at
        once, without waiting for the sign-ins being checked; one locked by an attempt checked while this one waited
        is refused too. A PIN of the wrong length is refused unchecked and not counted against anyone."""
        if not guard_id or not MIN_PIN <= len(pin) <= MAX_PIN:
            return self._refuse(Refusal())
        keys = (f"id:{guard_id}", f"addr:{address}")
        if (wait := self.locked(*keys)) > 0:
            return self._refuse(Refusal(wait))
        async with self._one_at_a_time:
            if (wait := self.locked(*keys)) > 0:
                return self._refuse(Refusal(wait))
            guard = next((g for g in self.cfg.guards if g.id == guard_id), None)
            right = await asyncio.to_thread(check_pin, pin, guard.pin_hash if guard else _DECOY)
            if not right or guard is None:
                return self._refuse(Refusal(lockouts=self._wrong(guard_id, guard is not None, address)))
        for key in keys:
            self._tries.pop(key, None)
        self._expire()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), guard, self.mono() + self.cfg.session_s)
        self.sessions[session.token] = session
        return session

    def _refuse(self, refusal: Refusal) -> Refusal:
        self.counts.refused += 1
        return refusal

    def _wrong(self, guard_id: str, known: bool, address: str) -> tuple[Lockout, ...]:
        """Count a wrong PIN against the id and the address; lock each that has had its last try."""
        self.counts.wrong_pins += 1
        lockouts = []
        limits: tuple[tuple[LockKind, str, int], ...] = (
            ("guard_id", f"id:{guard_id}", self.cfg.max_attempts),
            ("address", f"addr:{address}", self.cfg.address_limit),
        )
        for kind, key, most in limits:
            tries = self._tries.setdefault(key, _Tries())
            tries.failures += 1
            if tries.failures >= most:
                reported = guard_id[:MAX_REPORTED_ID]
                lockouts.append(Lockout(kind, reported, known, address, tries.failures, self.cfg.lockout_s))
                tries.failures = 0
                tries.locked_until = self.mono() + self.cfg.lockout_s
        self.counts.lockouts += len(lockouts)
        return tuple(lockouts)

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token; an expired one is forgotten."""
        self._expire()
        return self.sessions.get(token) if token else None

    def sign_out(self, token: str) -> None:
        self.sessions.pop(token, None)

    def _expire(self) -> None:
        now = self.mono()
        for token in [t for t, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[token]


def csrf_ok(session: Session, sent: str | None) -> bool:
    """The token the page was given, sent back in a header a foreign site's form cannot set."""
    return sent is not None and hmac.compare_digest(session.csrf.encode(), sent.encode())
