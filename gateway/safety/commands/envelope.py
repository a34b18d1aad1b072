"""The signed command envelope: what the platform or a guard station sends, and the library function that makes one.

On the wire (MQTT payload, UTF-8 JSON, at most 4 KiB):

    {"v": 1, "kid": "platform-2026", "body": "<base64url of the body bytes>", "sig": "<base64url Ed25519 signature>"}

The signature covers the body's exact bytes, so the gateway checks what was signed, not a re-encoding of it. The
body is a JSON object (see `CommandBody`); unknown fields are refused, so a signed field cannot be smuggled past
an older gateway that would ignore it, and so is a key given twice at any level, so the signed bytes have one
meaning only.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from gateway.base import strict_json
from gateway.base.strict_json import StrictJSONError

VERSION = 1
MAX_BYTES = 4096
MAX_ACTUATION_TTL_S = 10.0

Action = Literal["bollard.raise", "bollard.lower", "bollard.stop", "site.lockdown", "alarm.ack"]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class EnvelopeError(ValueError):
    """A payload that is not a well-formed signed command; `reason` is the refusal code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Envelope(_Strict):
    """The outer JSON object."""

    v: Literal[1]
    kid: Name
    body: str = Field(max_length=MAX_BYTES * 2)
    sig: str = Field(max_length=128)


class LockdownParams(_Strict):
    """`site.lockdown`: on or off."""

    on: StrictBool


class CommandBody(_Strict):
    """What was signed. Times are RFC 3339 UTC; `seq` rises with every command of an issuer."""

    v: Literal[1]
    cmd_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    issuer: Name
    kid: Name
    aud: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_-]{0,63}$")]  # site/gateway
    target: Name  # a lane id, the gateway id for site-wide actions, or an alarm id (device.point) for alarm.ack
    action: Action
    params: dict[str, Any] = Field(default_factory=dict)
    seq: StrictInt = Field(ge=1, le=2**53)
    iat: str
    exp: str
    operator: Annotated[str, Field(min_length=1, max_length=64)]
    reason: Annotated[str, Field(max_length=200)] = ""

    @field_validator("iat", "exp")
    @classmethod
    def _time(cls, value: str) -> str:
        parse_time(value)
        return value

    def issued(self) -> datetime:
        """`iat` as an aware datetime."""
        return parse_time(self.iat)

    def expires(self) -> datetime:
        """`exp` as an aware datetime."""
        return parse_time(self.exp)

    def lockdown(self) -> bool:
        """The `on` of a `site.lockdown` (EnvelopeError if its params are not exactly that)."""
        try:
            return LockdownParams.model_validate(self.params).on
        except ValidationError as exc:
            raise EnvelopeError("malformed", f'params: expected {{"on": true|false}}: {_first(exc)}') from exc


def parse_time(value: str) -> datetime:
    """An RFC 3339 time with a zone (Z or an offset)."""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from exc
    if at.tzinfo is None:
        raise ValueError(f"time without a zone: {value!r}")
    return at


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


def b64encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """base64url, padding optional; ValueError if it is not."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Decoded:
    """A payload taken apart: the exact bytes that were signed, the signature, and the body they hold."""

    body_bytes: bytes
    signature: bytes
    body: CommandBody


def decode(payload: bytes) -> Decoded:
    """Parse a payload into the signed body bytes, the signature and the body; nothing is verified yet.

    Raises:
        EnvelopeError: `too_large` or `malformed`, with what was expected.
    """
    if len(payload) > MAX_BYTES:
        raise EnvelopeError("too_large", f"{len(payload)} bytes; at most {MAX_BYTES}")
    try:
        envelope = Envelope.model_validate(_parse(payload, "envelope"))
    except ValidationError as exc:
        raise EnvelopeError("malformed", f"envelope: {_first(exc)}") from exc
    try:
        body_bytes = b64decode(envelope.body)
        signature = b64decode(envelope.sig)
    except ValueError as exc:
        raise EnvelopeError("malformed", f"envelope: {exc}") from exc
    if len(signature) != 64:
        raise EnvelopeError("malformed", f"envelope: sig: expected 64 bytes, got {len(signature)}")
    try:
        body = CommandBody.model_validate(_parse(body_bytes, "body"))
    except ValidationError as exc:
        raise EnvelopeError("malformed", f"body: {_first(exc)}") from exc
    if body.kid != envelope.kid:
        raise EnvelopeError("malformed", f"body: kid {body.kid!r} is not the envelope's {envelope.kid!r}")
    if body.action == "site.lockdown":
        body.lockdown()
    elif body.params:
        raise EnvelopeError("malformed", f"body: params: {body.action} takes none, got {sorted(body.params)}")
    return Decoded(body_bytes, signature, body)


def _parse(data: bytes, what: str) -> Any:
    """JSON read strictly: pydantic's parser keeps the last of a repeated key, so the signed bytes could be read
    two ways (strict_json)."""
    try:
        return strict_json.loads(data, what)
    except StrictJSONError as exc:
        raise EnvelopeError("malformed", str(exc)) from exc
    except ValueError as exc:
        raise EnvelopeError("malformed", f"{what}: not JSON: {exc}") from exc


def sign(
    private_key: Ed25519PrivateKey,
    *,
    kid: str,
    issuer: str,
    audience: str,
    target: str,
    action: str,
    seq: int,
    operator: str,
    params: dict[str, Any] | None = None,
    reason: str = "",
    ttl_s: float = MAX_ACTUATION_TTL_S,
    now: datetime | None = None,
    cmd_id: str | None = None,
) -> bytes:
    """A signed command payload, ready to publish on `campus/v1/{site}/{gateway}/cmd/{target}`.

    `audience` is "site/gateway"; `seq` must be higher than any this issuer used before (the gateway refuses a
    lower one); the command expires `ttl_s` after `now`.
    """
    issued = (now or datetime.now(UTC)).astimezone(UTC)
    body = {
        "v": VERSION,
        "cmd_id": cmd_id or uuid.uuid4().hex,
        "issuer": issuer,
        "kid": kid,
        "aud": audience,
        "target": target,
        "action": action,
        "params": params or {},
        "seq": seq,
        "iat": _rfc3339(issued),
        "exp": _rfc3339(issued + timedelta(seconds=ttl_s)),
        "operator": operator,
        "reason": reason,
    }
    return seal(private_key, kid, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def seal(private_key: Ed25519PrivateKey, kid: str, body_bytes: bytes) -> bytes:
    """Sign body bytes as they are and wrap them in the envelope."""
    envelope = {"v": VERSION, "kid": kid, "body": b64encode(body_bytes), "sig": b64encode(private_key.sign(body_bytes))}
    return json.dumps(envelope, separators=(",", ":")).encode()


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
