"""The panel's request bodies as typed models: strict (a number is never a guard id), frozen, and no key the page
does not send. A body is read first as strict JSON (a key given twice is refused there), then validated here.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

LaneAction = Literal["raise", "lower", "stop", "release"]
LockdownAction = Literal["lockdown_on", "lockdown_off"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    lang: str | None = None  # the page's language ("zh-CN", "en"); None: not given


class SignIn(_Body):
    """`POST /api/login`: the guard id and PIN as typed at the tablet (checked by the gatekeeper, not here)."""

    guard: str
    pin: str


class LaneCommand(_Body):
    """`POST /api/action` for one lane's bollards."""

    action: LaneAction
    lane: str


class AlarmAck(_Body):
    """`POST /api/action` acknowledging one open alarm."""

    action: Literal["ack"]
    alarm_id: str


class Lockdown(_Body):
    """`POST /api/action` declaring or ending the site's lockdown."""

    action: LockdownAction


ActionBody: TypeAlias = LaneCommand | AlarmAck | Lockdown
SIGN_IN = TypeAdapter(SignIn)
ACTION = TypeAdapter[ActionBody](Annotated[ActionBody, Field(discriminator="action")])  # chosen by its "action"
ACTION_NAMES = frozenset((*get_args(LaneAction), "ack", *get_args(LockdownAction)))


def what_is_wrong(exc: ValidationError, what: str = "request") -> str:
    """The first thing wrong with a body, for the log: where (`request.lane`) and what pydantic says of it. The
    action a body's fields were checked for is no place of the body, and is left out of the path."""
    error = exc.errors(include_url=False)[0]
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        reason = "Field required" if error["type"] == "union_tag_not_found" else error["msg"]
        return f"{what}.action: {reason}"
    loc = list(error["loc"])
    if len(loc) > 1 and loc[0] in ACTION_NAMES:
        loc = loc[1:]
    return ".".join([what, *map(str, loc)]) + f": {error['msg']}"
