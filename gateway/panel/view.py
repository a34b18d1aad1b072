"""What the guard sees: the page's words, and the main screen pushed live over server-sent events (`/api/events`):
each lane's state and every inhibit of a raise by name, the open alarms with time and place, the site's mode, the
link to the platform and the age of the oldest message not yet sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.base.i18n import LANGUAGES, N_, normalise, tr
from gateway.config import Config
from gateway.panel.auth import Gatekeeper, Session
from gateway.panel.control import lane_status
from gateway.panel.http import require
from gateway.safety.alarms import CLASS_WORDS, AlarmBook, AlarmClass
from gateway.safety.bollards.service import BollardService
from gateway.safety.bollards.supervisor import STATE_WORDS
from gateway.safety.site_mode import SiteMode

PUSH_S = 1.0  # the page is sent afresh this often (ages move), and at once after an action

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


def texts(lang: str) -> dict[str, str]:
    """The page's words in `lang` (placeholders left for the script to fill)."""
    return {key: tr(msgid, lang) for key, msgid in TEXTS.items()}


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the guard sees of the link to the platform: up or not, and how long the oldest unsent message waits
    (None when none waits). The service reads it from its health; the panel needs no more of it."""

    up: bool
    oldest_unsent_s: float | None


class GuardView:
    """The main screen of one panel, sent afresh every `PUSH_S` and at once when `changed` is set (an event
    recorded, an action done). `allowed(role)` names the actions whose buttons a role is shown."""

    def __init__(
        self,
        site: Config,
        bollards: BollardService,
        modes: SiteMode,
        alarms: AlarmBook,
        link_state: Callable[[], LinkState],
        gate: Gatekeeper,
        changed: asyncio.Event,
        allowed: Callable[[str], list[str]],
    ) -> None:
        self.bollards = bollards
        self.modes = modes
        self.alarms = alarms
        self.link_state = link_state
        self.gate = gate
        self.changed = changed
        self.allowed = allowed
        self._places = {d.id: d.name for d in site.devices} | {i.id: i.name for i in site.gpio.inputs}
        self._lane_names = {lane.id: lane.name for lane in site.lanes}
        self._zone = ZoneInfo(site.reports.timezone)

    async def texts(self, request: web.Request) -> web.Response:
        lang = normalise(request.query.get("lang", "zh-CN"))
        return web.json_response({"lang": lang, "languages": list(LANGUAGES), "texts": texts(lang)})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The live stream of one signed-in page, until its session ends (then an `expired` event)."""
        session = require(self.gate, request)
        lang = normalise(request.query.get("lang", session.lang))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            while self.gate.session(session.token) is session:
                self.changed.clear()
                data = json.dumps(self.snapshot(session, lang), ensure_ascii=False)
                await response.write(f"data: {data}\n\n".encode())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PUSH_S):
                        await self.changed.wait()
            await response.write(b"event: expired\ndata: {}\n\n")
        except ConnectionResetError:
            pass  # the page was closed or reloaded: its stream ends with it
        return response

    def snapshot(self, session: Session, lang: str) -> dict[str, Any]:
        """Everything the main screen shows, in `lang`."""
        modes = self.modes
        lanes, alarms = self._lanes(lang), self._alarms(lang)
        link = self.link_state()
        mode = (
            "fire"
            if modes.fire
            else "lockdown"
            if modes.lockdown
            else "closed_campus"
            if modes.closed_campus
            else "normal"
        )
        return {
            "mode": mode,
            "lockdown": modes.lockdown is not None,
            "link_up": link.up,
            "oldest_unsent_s": None if link.oldest_unsent_s is None else round(link.oldest_unsent_s),
            "lanes": lanes,
            "alarms": alarms,
            "allowed": self.allowed(session.guard.role),
        }

    def _lanes(self, lang: str) -> list[dict[str, Any]]:
        svc = self.bollards
        lanes = []
        for lane in svc.supervisors:
            st = lane_status(svc, lane, lang)
            state = st["state"] or "unknown"
            st["name"] = self._lane_names.get(lane) or lane
            st["state_key"] = state
            st["state_text"] = tr(STATE_WORDS.get(state, state), lang)
            lanes.append(st)
        return lanes

    def _alarms(self, lang: str) -> list[dict[str, Any]]:
        """The open alarms, the most urgent first and the newest first within a priority."""
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
        return alarms
