"""What the guard does at the panel: sign in and out, and the actions, through the same layers as the gate house's
buttons and the control socket: `BollardService.request` and `set_lockdown` with the guard's authority (the
supervisor and its interlocks decide, and a refusal comes back with its reason), `AlarmBook.ack` with the guard's id.
EFO is not offered: it is the local key switch's alone (R16). Every action is audited as a `command` event naming
the guard, and every lock-out of a guard id or an address by wrong PINs is a `command` event marked `security`
(wrong PINs themselves are counted in health, not sent one by one).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias

from aiohttp import web

from drivers.profile import Quality
from gateway.base.clock import Clock
from gateway.base.i18n import N_, normalise, tr
from gateway.config import Config, PanelConfig
from gateway.panel.auth import MAX_REPORTED_ID, Gatekeeper, Lockout, Refusal, Session
from gateway.panel.bodies import ACTION, SIGN_IN, ActionBody, AlarmAck, LaneAction, LaneCommand, Lockdown
from gateway.panel.http import COOKIE, read_json, require, validate
from gateway.safety.alarms import AlarmBook
from gateway.safety.authority import Authority
from gateway.safety.bollards.service import BollardService
from gateway.safety.bollards.supervisor import Command
from gateway.safety.commands.verify import DEFAULT_ROLES
from gateway.store.recorder import Recorder
from gateway.store.records import Detail, Event, Stamp

log = logging.getLogger(__name__)

# The panel's actions (those of bodies.ACTION) and the command action whose role permission each needs (the roles
# of [commands]). Releasing a fire hold lets the lane rise again: it takes the right to raise.
NEEDS = {
    "raise": "bollard.raise",
    "lower": "bollard.lower",
    "stop": "bollard.stop",
    "release": "bollard.raise",
    "ack": "alarm.ack",
    "lockdown_on": "site.lockdown",
    "lockdown_off": "site.lockdown",
}
# The supervisor's command for each lane action.
LANE_COMMANDS: dict[LaneAction, Command] = {
    "raise": Command.RAISE,
    "lower": Command.LOWER,
    "stop": Command.STOP,
    "release": Command.RELEASE_FIRE_HOLD,
}
_SAY = {
    "wrong_pin": N_("wrong guard ID or PIN"),
    "locked": N_("too many wrong PINs: locked for {seconds} s"),
    "forbidden": N_("your role ({role}) may not do this"),
    "unknown_lane": N_("no lane {lane!r}"),
    "no_alarm": N_("no open alarm {aid!r}"),
    "ack_done": N_("{aid}: acknowledged"),
    "lockdown_on": N_("lockdown declared: gates closed"),
    "lockdown_off": N_("lockdown ended; the lanes stay as they are"),
    "lockdown_refused": N_("the lockdown was declared by a higher authority and stays"),
    "guard_id_locked": N_(
        "guard ID {guard!r} locked out for {seconds} s after {count} wrong PINs (the last from {address})"
    ),
    "address_locked": N_(
        "address {address} locked out for {seconds} s after {count} wrong PINs (the last for guard ID {guard!r})"
    ),
}


Outcome: TypeAlias = tuple[bool, str, str, str, tuple[str, str]]  # done, text, audit target, rule, (English, Chinese)


def _say(key: str, lang: str, **fields: object) -> str:
    return tr(_SAY[key], lang, **fields)


def _both(key: str, **fields: object) -> tuple[str, str]:
    """For the audit event, which carries both languages."""
    return tr(_SAY[key], "en", **fields), tr(_SAY[key], "zh-CN", **fields)


class GuardActions:
    """Sign-in, sign-out and the actions of one panel; `changed` is set after each action, for the view."""

    def __init__(
        self,
        cfg: PanelConfig,
        site: Config,
        bollards: BollardService,
        alarms: AlarmBook,
        recorder: Recorder,
        clock: Clock,
        gate: Gatekeeper,
        changed: asyncio.Event,
    ) -> None:
        self.cfg = cfg
        self.site = site
        self.bollards = bollards
        self.alarms = alarms
        self.recorder = recorder
        self.clock = clock
        self.gate = gate
        self.changed = changed
        roles = dict(DEFAULT_ROLES)
        if site.commands is not None:
            roles.update({role: frozenset(actions) for role, actions in site.commands.roles.items()})
        self.roles = roles

    def allowed(self, role: str) -> list[str]:
        """The panel's actions that `role` may take, sorted."""
        return sorted(a for a, need in NEEDS.items() if need in self.roles.get(role, ()))

    # -- who ---------------------------------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        body = validate(request, await read_json(request), SIGN_IN, "zh-CN")
        if isinstance(body, web.Response):
            self.gate.counts.refused += 1  # a sign-in not understood is refused too, and health counts every refusal
            return body
        lang = normalise("zh-CN" if body.lang is None else body.lang)
        address = request.remote or "?"
        result = await self.gate.sign_in(body.guard, body.pin, address)
        if isinstance(result, Refusal):
            return self._refused(result, body.guard, address, lang)
        result.lang = lang
        log.warning("panel: %s (%s) signed in from %s", result.guard.id, result.guard.role, address)
        response = web.json_response({"ok": True, **self._who(result)})
        response.set_cookie(
            COOKIE, result.token, secure=True, httponly=True, samesite="Strict", max_age=int(self.cfg.session_s)
        )
        return response

    def _refused(self, refusal: Refusal, guard_id: str, address: str, lang: str) -> web.Response:
        """The answer to a refused sign-in; the lock-outs it made go to the platform."""
        for lockout in refusal.lockouts:
            self._report_lockout(lockout)
        locked = refusal.locked_s > 0
        log.warning("panel: sign-in as %r from %s refused: %s", guard_id[:MAX_REPORTED_ID], address,
                    "locked out" if locked else "wrong PIN")  # fmt: skip
        if locked:
            text = _say("locked", lang, seconds=int(refusal.locked_s) + 1)
            return web.json_response({"ok": False, "text": text}, status=429)
        return web.json_response({"ok": False, "text": _say("wrong_pin", lang)}, status=401)

    def _report_lockout(self, lockout: Lockout) -> None:
        """One security event per lock-out, through the outbox like every event: someone may be guessing PINs."""
        words = _both(
            f"{lockout.kind}_locked",
            guard=lockout.guard_id,
            address=lockout.address,
            count=lockout.wrong_pins,
            seconds=int(lockout.lockout_s),
        )
        detail: Detail = {
            "issuer": "panel",
            "security": True,
            "guard_id": lockout.guard_id,
            "known_guard": lockout.known_guard,
            "address": lockout.address,
            "wrong_pins": lockout.wrong_pins,
            "lockout_s": lockout.lockout_s,
            "text_en": words[0],
            "text_zh": words[1],
        }
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        event = Event(
            "command",
            "warning",
            "changed",
            self.site.gateway.id,
            "panel_lockout",
            lockout.kind,
            Quality.GOOD,
            stamp,
            detail,
        )
        log.warning("panel: %s", words[0])
        self.recorder.record([], [event])

    async def logout(self, request: web.Request) -> web.Response:
        session = require(self.gate, request, csrf=True)
        self.gate.sign_out(session.token)
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE)
        return response

    async def session(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, **self._who(require(self.gate, request))})

    def _who(self, session: Session) -> dict[str, Any]:
        g = session.guard
        return {"csrf": session.csrf, "guard": g.id, "name": g.name or g.id, "role": g.role}

    # -- what is done ------------------------------------------------------------------------------------------

    async def action(self, request: web.Request) -> web.Response:
        session = require(self.gate, request, csrf=True)
        body = validate(request, await read_json(request), ACTION, session.lang)
        if isinstance(body, web.Response):
            return body
        lang = normalise(session.lang if body.lang is None else body.lang)
        action, guard = body.action, session.guard
        if NEEDS[action] not in self.roles.get(guard.role, ()):
            text = _say("forbidden", lang, role=guard.role)
            self._audit(
                guard.id,
                guard.name,
                action,
                self.site.gateway.id,
                False,
                "forbidden",
                _both("forbidden", role=guard.role),
            )
            return web.json_response({"ok": False, "text": text}, status=403)
        ok, text, target, rule, words = self._do(body, guard.id, lang)
        self._audit(guard.id, guard.name, action, target, ok, rule, words)
        self.changed.set()
        return web.json_response({"ok": ok, "text": text})

    def _do(self, body: ActionBody, guard: str, lang: str) -> Outcome:
        """Carry out one action: (done, text in `lang`, audit target, rule, (English, Chinese))."""
        if isinstance(body, LaneCommand):
            return self._lane(body, lang)
        if isinstance(body, AlarmAck):
            return self._ack(body, guard, lang)
        return self._lockdown(body, lang)

    def _lane(self, body: LaneCommand, lang: str) -> Outcome:
        """A bollard command, decided by the lane's supervisor with the guard's authority."""
        lane = body.lane
        if lane not in self.bollards.supervisors:
            words = _both("unknown_lane", lane=lane)
            return False, _say("unknown_lane", lang, lane=lane), self.site.gateway.id, "unknown_lane", words
        d = self.bollards.request(lane, LANE_COMMANDS[body.action], Authority.GUARD)
        return d.accepted, d.text(lang), lane, d.rule.value, (d.text("en"), d.text("zh-CN"))

    def _ack(self, body: AlarmAck, guard: str, lang: str) -> Outcome:
        """An open alarm acknowledged in the guard's name."""
        aid = body.alarm_id
        alarm = self.alarms.alarms.get(aid)
        if alarm is None:
            return False, _say("no_alarm", lang, aid=aid), self.site.gateway.id, "no_alarm", _both("no_alarm", aid=aid)
        done, _state = self.alarms.ack(alarm.id, guard, "panel")
        return done, _say("ack_done", lang, aid=alarm.id), alarm.device, "accepted", _both("ack_done", aid=alarm.id)

    def _lockdown(self, body: Lockdown, lang: str) -> Outcome:
        """The site's lockdown declared or ended with the guard's authority (a higher one's stays)."""
        on = body.action == "lockdown_on"
        done, _decisions = self.bollards.set_lockdown(on, Authority.GUARD)
        key = ("lockdown_on" if on else "lockdown_off") if done else "lockdown_refused"
        return done, _say(key, lang), self.site.gateway.id, "accepted" if done else "outranked", _both(key)

    def _audit(
        self, guard: str, name: str, action: str, target: str, ok: bool, rule: str, words: tuple[str, str]
    ) -> None:
        """One `command` event per action, naming the guard: the panel's line of the audit trail."""
        detail: Detail = {
            "issuer": "panel",
            "operator": guard,
            "operator_name": name or guard,
            "reason": rule,
            "text_en": words[0],
            "text_zh": words[1],
        }
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        value = "done" if ok else "refused"
        event = Event(
            "command",
            "info" if ok else "warning",
            "changed",
            target,
            f"panel_{action}",
            value,
            Quality.GOOD,
            stamp,
            detail,
        )
        log.warning("panel: %s %s %s: %s", guard, action, target, words[0])
        self.recorder.record([], [event])
