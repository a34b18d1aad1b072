"""The gate-house panel (issue 10): one HTTPS page for the guards, served by the gateway on its own event loop.

What it shows comes live over server-sent events (`/api/events`): each lane's state and every inhibit of a raise by
name, the open alarms with time and place, the site's mode, the link to the platform and the age of the oldest
message not yet sent. What it does goes through the same layers as the gate house's buttons and the control socket:
`BollardService.request` and `set_lockdown` with the guard's authority (the supervisor and its interlocks decide,
and a refusal comes back with its reason), `AlarmBook.ack` with the guard's id. EFO is not offered: it is the local
key switch's alone (R16). Every action is audited as a `command` event naming the guard, and every lock-out of a
guard id or an address by wrong PINs is a `command` event marked `security` (wrong PINs themselves are counted in
health, not sent one by one).

The page, its style and its script are files of this package (gateway/panel/static): nothing comes from elsewhere,
and the Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from drivers.profile import Quality
from gateway.base import strict_json
from gateway.base.clock import Clock
from gateway.base.i18n import LANGUAGES, N_, normalise, tr
from gateway.base.strict_json import StrictJSONError
from gateway.config import Config, PanelConfig
from gateway.panel.auth import MAX_REPORTED_ID, Gatekeeper, Lockout, Refusal, Session, csrf_ok
from gateway.panel.control import lane_status
from gateway.safety.alarms import CLASS_WORDS, AlarmBook, AlarmClass
from gateway.safety.bollards.service import BollardService
from gateway.safety.bollards.supervisor import STATE_WORDS, Authority, Command
from gateway.safety.commands.verify import DEFAULT_ROLES
from gateway.store.recorder import Recorder
from gateway.store.records import Detail, Event, Stamp

log = logging.getLogger(__name__)

COOKIE = "campus_edge_panel"
PUSH_S = 1.0  # the page is sent afresh this often (ages move), and at once after an action
STATIC = {"panel.js": "text/javascript", "panel.css": "text/css", "index.html": "text/html"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}
# The panel's actions, the command action whose role permission each needs (the roles of [commands]), and the
# supervisor's command. Releasing a fire hold lets the lane rise again: it takes the right to raise.
ACTIONS: dict[str, tuple[str, Command | None]] = {
    "raise": ("bollard.raise", Command.RAISE),
    "lower": ("bollard.lower", Command.LOWER),
    "stop": ("bollard.stop", Command.STOP),
    "release": ("bollard.raise", Command.RELEASE_FIRE_HOLD),
    "ack": ("alarm.ack", None),
    "lockdown_on": ("site.lockdown", None),
    "lockdown_off": ("site.lockdown", None),
}

# Every text of the page, translated through the catalogue (words from shared/domain/glossary.md).
TEXTS = {
    "title": N_("Gate house"),
    "sign_in": N_("Sign in"),
    "sign_out": N_("Sign out"),
    "guard_id": N_("Guard ID"),
    "pin": N_("PIN"),
    "lanes": N_("Bollards"),
    "alarms": N_("Active alarms"),
    "no_alarms": N_("No active alarms"),
    "raise": N_("Raise"),
    "lower": N_("Lower"),
    "stop": N_("Stop"),
    "release": N_("Release fire hold-down"),
    "ack": N_("Acknowledge"),
    "lockdown_on": N_("Start lockdown"),
    "lockdown_off": N_("End lockdown"),
    "confirm": N_("Confirm"),
    "cancel": N_("Cancel"),
    "confirm_q": N_("Are you sure?"),
    "nothing_inhibits": N_("Nothing stops a raise"),
    "inhibits": N_("Cannot rise because"),
    "fire_hold": N_("Fire hold-down (fire lane kept down)"),
    "stale": N_("No fresh data for {age} s: state not reliable"),
    "no_data": N_("No data from the controller"),
    "mode": N_("Site mode"),
    "link": N_("Platform link"),
    "link_up": N_("connected"),
    "link_down": N_("disconnected (working locally)"),
    "unsent": N_("oldest unsent message: {age} s"),
    "all_sent": N_("nothing waiting to be sent"),
    "acked_by": N_("acknowledged by {by}"),
    "cleared": N_("restored"),
    "active": N_("in alarm"),
    "not_acked": N_("not acknowledged"),
    "last": N_("Last decision"),
    "connection_lost": N_("Connection to the gateway lost: the screen is not up to date"),
    "signed_in_as": N_("Signed in: {name}"),
    "expired": N_("Session ended: sign in again"),
    "fire_lane": N_("fire lane"),
    "mode_normal": N_("normal"),
    "mode_closed_campus": N_("closed campus (school hours)"),
    "mode_lockdown": N_("lockdown"),
    "mode_fire": N_("fire"),
    "at": N_("at {place}"),
}
_SAY = {
    "wrong_pin": N_("wrong guard ID or PIN"),
    "locked": N_("too many wrong PINs: locked for {seconds} s"),
    "forbidden": N_("your role ({role}) may not do this"),
    "bad_request": N_("the request was not understood"),
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


def texts(lang: str) -> dict[str, str]:
    """The page's words in `lang` (placeholders left for the script to fill)."""
    return {key: tr(msgid, lang) for key, msgid in TEXTS.items()}


def _say(key: str, lang: str, **fields: object) -> str:
    return tr(_SAY[key], lang, **fields)


def _both(key: str, **fields: object) -> tuple[str, str]:
    """For the audit event, which carries both languages."""
    return tr(_SAY[key], "en", **fields), tr(_SAY[key], "zh-CN", **fields)


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the guard sees of the link to the platform: up or not, and how long the oldest unsent message waits
    (None when none waits). The service reads it from its health; the panel needs no more of it."""

    up: bool
    oldest_unsent_s: float | None


class PanelServer:
    """The panel's HTTPS server; `run()` until cancelled."""

    def __init__(
        self,
        cfg: PanelConfig,
        site: Config,
        bollards: BollardService,
        alarms: AlarmBook,
        link_state: Callable[[], LinkState],
        recorder: Recorder,
        clock: Clock,
    ) -> None:
        self.cfg = cfg
        self.site = site
        self.bollards = bollards
        self.alarms = alarms
        self.link_state = link_state
        self.recorder = recorder
        self.clock = clock
        self.gate = Gatekeeper(cfg, clock.mono)
        roles = dict(DEFAULT_ROLES)
        if site.commands is not None:
            roles.update({role: frozenset(actions) for role, actions in site.commands.roles.items()})
        self.roles = roles
        self.port = cfg.port  # 0: any free port; the bound one once `bound` is set
        self.bound = asyncio.Event()
        self._changed = asyncio.Event()
        self._places = {d.id: d.name for d in site.devices} | {i.id: i.name for i in site.gpio.inputs}
        self._lane_names = {lane.id: lane.name for lane in site.lanes}
        self._zone = ZoneInfo(site.reports.timezone)
        recorder.on_events.append(lambda _events: self._changed.set())

    # -- serving -----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_headers], client_max_size=4096)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/texts", self._texts)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_get("/api/session", self._session)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/action", self._action)
        return app

    def tls(self) -> ssl.SSLContext:
        """The gateway's own certificate and key (tls/, as `campus-edge init` made them)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cfg.cert_file, self.cfg.key_file)
        return ctx

    async def run(self) -> None:
        """Listen and serve until cancelled."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            family = socket.AF_INET6 if ":" in self.cfg.address else socket.AF_INET
            sock = socket.create_server((self.cfg.address, self.port), family=family, reuse_port=False)
            self.port = int(sock.getsockname()[1])
            await web.SockSite(runner, sock, ssl_context=self.tls()).start()
            log.info("guard panel on https://%s:%d/", self.cfg.address, self.port)
            self.bound.set()
            await asyncio.Event().wait()
        finally:
            self.bound.clear()
            await runner.cleanup()

    async def _index(self, _request: web.Request) -> web.Response:
        return _file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return _file(name)

    async def _texts(self, request: web.Request) -> web.Response:
        lang = normalise(request.query.get("lang", "zh-CN"))
        return web.json_response({"lang": lang, "languages": list(LANGUAGES), "texts": texts(lang)})

    # -- who ---------------------------------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        body = await _json(request)
        lang = normalise(str(body.get("lang", "zh-CN")))
        guard_id, pin = body.get("guard"), body.get("pin")
        address = request.remote or "?"
        if not isinstance(guard_id, str) or not isinstance(pin, str):
            guard_id, pin = "", ""  # refused as a wrong PIN, and counted as refused
        result = await self.gate.sign_in(guard_id, pin, address)
        if isinstance(result, Refusal):
            return self._refused(result, guard_id, address, lang)
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

    async def _logout(self, request: web.Request) -> web.Response:
        session = self._require(request, csrf=True)
        self.gate.sign_out(session.token)
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE)
        return response

    async def _session(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, **self._who(self._require(request))})

    def _who(self, session: Session) -> dict[str, Any]:
        g = session.guard
        return {"csrf": session.csrf, "guard": g.id, "name": g.name or g.id, "role": g.role}

    def _require(self, request: web.Request, csrf: bool = False) -> Session:
        session = self.gate.session(request.cookies.get(COOKIE))
        if session is None:
            raise web.HTTPUnauthorized(text='{"ok": false}', content_type="application/json")
        if csrf and not csrf_ok(session, request.headers.get("X-CSRF-Token")):
            raise web.HTTPForbidden(text='{"ok": false, "csrf": false}', content_type="application/json")
        return session

    # -- what is shown -----------------------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        session = self._require(request)
        lang = normalise(request.query.get("lang", session.lang))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            while self.gate.session(session.token) is session:
                self._changed.clear()
                data = json.dumps(self.snapshot(session, lang), ensure_ascii=False)
                await response.write(f"data: {data}\n\n".encode())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PUSH_S):
                        await self._changed.wait()
            await response.write(b"event: expired\ndata: {}\n\n")
        except ConnectionResetError:
            pass  # the page was closed or reloaded: its stream ends with it
        return response

    def snapshot(self, session: Session, lang: str) -> dict[str, Any]:
        """Everything the main screen shows, in `lang`."""
        svc = self.bollards
        lanes = []
        for lane in svc.supervisors:
            st = lane_status(svc, lane, lang)
            state = st["state"] or "unknown"
            st["name"] = self._lane_names.get(lane) or lane
            st["state_key"] = state
            st["state_text"] = tr(STATE_WORDS.get(state, state), lang)
            lanes.append(st)
        alarms = []
        for a in sorted(self.alarms.alarms.values(), key=lambda a: (a.priority, -a.raised_ms)):
            cls = AlarmClass(a.cls) if a.cls in AlarmClass.__members__.values() else None
            alarms.append(
                {
                    "id": a.id,
                    "cls": a.cls,
                    "cls_text": tr(CLASS_WORDS[cls], lang) if cls else a.cls,
                    "priority": a.priority,
                    "what": a.point,
                    "device": a.device,
                    "place": self._places.get(a.device) or a.device,
                    "time": datetime.fromtimestamp(a.raised_ms / 1000, self._zone).strftime("%H:%M:%S"),
                    "active": a.active,
                    "acked": a.acked,
                    "acked_by": (a.acked_by or "").split(":", 1)[-1] or None,
                }
            )
        link = self.link_state()
        mode = (
            "fire" if svc.fire else "lockdown" if svc.lockdown else "closed_campus" if svc.closed_campus else "normal"
        )
        return {
            "mode": mode,
            "lockdown": svc.lockdown is not None,
            "link_up": link.up,
            "oldest_unsent_s": None if link.oldest_unsent_s is None else round(link.oldest_unsent_s),
            "lanes": lanes,
            "alarms": alarms,
            "allowed": sorted(a for a, (need, _) in ACTIONS.items() if need in self.roles.get(session.guard.role, ())),
        }

    # -- what is done ------------------------------------------------------------------------------------------

    async def _action(self, request: web.Request) -> web.Response:
        session = self._require(request, csrf=True)
        body = await _json(request)
        lang = normalise(str(body.get("lang", session.lang)))
        action = body.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            return web.json_response({"ok": False, "text": _say("bad_request", lang)}, status=400)
        need, command = ACTIONS[action]
        guard = session.guard
        if need not in self.roles.get(guard.role, ()):
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
        ok, text, target, rule, words = self._do(action, command, body, guard.id, lang)
        self._audit(guard.id, guard.name, action, target, ok, rule, words)
        self._changed.set()
        return web.json_response({"ok": ok, "text": text})

    def _do(
        self, action: str, command: Command | None, body: dict[str, Any], guard: str, lang: str
    ) -> tuple[bool, str, str, str, tuple[str, str]]:
        """Carry out one action: (done, text in `lang`, audit target, rule, (English, Chinese))."""
        gw = self.site.gateway.id
        if command is not None:
            lane = body.get("lane")
            if not isinstance(lane, str) or lane not in self.bollards.supervisors:
                return (
                    False,
                    _say("unknown_lane", lang, lane=lane),
                    gw,
                    "unknown_lane",
                    _both("unknown_lane", lane=lane),
                )
            d = self.bollards.request(lane, command, Authority.GUARD)
            return d.accepted, d.text(lang), lane, d.rule.value, (d.text("en"), d.text("zh-CN"))
        if action == "ack":
            aid = body.get("alarm_id")
            alarm = self.alarms.alarms.get(aid) if isinstance(aid, str) else None
            if alarm is None:
                return False, _say("no_alarm", lang, aid=aid), gw, "no_alarm", _both("no_alarm", aid=aid)
            done, _state = self.alarms.ack(alarm.id, guard, "panel")
            return (
                done,
                _say("ack_done", lang, aid=alarm.id),
                alarm.device,
                "accepted",
                _both("ack_done", aid=alarm.id),
            )
        on = action == "lockdown_on"
        done, _decisions = self.bollards.set_lockdown(on, Authority.GUARD)
        key = ("lockdown_on" if on else "lockdown_off") if done else "lockdown_refused"
        return done, _say(key, lang), gw, "accepted" if done else "outranked", _both(key)

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


@web.middleware
async def _headers(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def _file(name: str) -> web.Response:
    body = (resources.files("gateway.panel") / "static" / name).read_bytes()
    return web.Response(body=body, headers={"Content-Type": f"{STATIC[name]}; charset=utf-8"})


async def _json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, read strictly: `{"action": "lockdown_off", "action": "lockdown_on"}` has no
    one meaning, and is refused (logged, since the panel's page never sends one) like a body that is not JSON."""
    try:
        body = await request.json(loads=_strict_request)
    except ValueError as exc:
        if isinstance(exc, StrictJSONError):
            log.warning("panel: %s %s from %s refused: %s", request.method, request.path, request.remote, exc)
        text = json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False)
        raise web.HTTPBadRequest(text=text, content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"ok": false}', content_type="application/json")
    return body


def _strict_request(text: str) -> Any:
    return strict_json.loads(text, "request")
