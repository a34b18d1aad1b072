"""The local control socket: how the gate house talks to the running gateway when the network is down.

A Unix socket (mode 0660, group from the config) takes one JSON object per line and answers one per line:

    {"cmd": "raise", "lane": "lane-east", "lang": "zh-CN"}
    -> {"ok": false, "rule": "interlock", "reasons": ["loop_occupied"], "text": "lane-east: 升起 已拒绝 (地感线圈有车)"}
    {"cmd": "status", "lang": "en"}
    -> {"ok": true, "lockdown": null, "closed_campus": true,
        "lanes": [{"lane": "lane-east", "state": "down", "fire_hold": false, "inhibits": [...], ...}]}
    {"cmd": "lockdown", "on": true, "lang": "en"}
    -> {"ok": true, "text": "lockdown declared: gates closed", "decisions": ["lane-west: raise done"]}

Whoever can open the socket is a guard (Authority.GUARD): the file permissions are the authorisation, as for any
local console. Every command is decided and audited like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.base import strict_json
from gateway.base.errors import GatewayError
from gateway.base.i18n import N_, _, tr
from gateway.base.statefile import make_state_dir
from gateway.safety.alarms import AlarmBook
from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import raise_inhibits, reason
from gateway.safety.bollards.service import BollardService
from gateway.safety.bollards.supervisor import Command
from gateway.safety.site_mode import SiteMode

log = logging.getLogger(__name__)

COMMANDS = {"raise": Command.RAISE, "lower": Command.LOWER, "stop": Command.STOP, "release": Command.RELEASE_FIRE_HOLD}
MAX_LINE = 4096

_TEXT = {
    "unknown_lane": N_("no lane {lane!r}; lanes: {lanes}"),
    "bad_request": N_("expected one JSON object per line with cmd and lane: {error}"),
    "unknown_cmd": N_("unknown command {cmd!r}; expected status, lockdown, {cmds}"),
    "lockdown_on": N_("lockdown declared: gates closed"),
    "lockdown_off": N_("lockdown ended; the lanes stay as they are"),
    "lockdown_bad": N_('expected "on": true or false'),
}


def _say(key: str, lang: str, **kw: object) -> str:
    return tr(_TEXT[key], lang, **kw)


class ControlSocket:
    """Serves the control protocol for the lanes of a BollardService and the modes of a SiteMode."""

    def __init__(
        self,
        service: BollardService,
        site: SiteMode,
        path: Path,
        group: str | None = None,
        alarms: AlarmBook | None = None,
    ) -> None:
        """`service`: the lanes; `site`: the site's modes (lockdown, closed campus), read and declared here."""
        self.service = service
        self.site = site
        self.path = path
        self.group = group
        self.alarms = alarms

    async def run(self) -> None:
        """Listen until cancelled; the socket file is removed at the end."""
        make_state_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a gateway that did not stop cleanly
        server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o660)
        if self.group:
            os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(json.dumps(self.answer(line), ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError) as exc:  # ValueError: a line over MAX_LINE
            log.warning("control socket: client dropped: %s", exc)
        finally:
            writer.close()

    def answer(self, line: bytes) -> dict[str, Any]:
        """One request, one answer; bad requests get an answer that says what was expected."""
        try:
            req = strict_json.loads(line, "request")  # {"cmd": "lower", "cmd": "raise"} is no request
        except ValueError as exc:
            return {"ok": False, "text": _say("bad_request", "en", error=exc)}
        if not isinstance(req, dict):
            return {"ok": False, "text": _say("bad_request", "en", error=f"got {type(req).__name__}")}
        lang = str(req.get("lang", "en"))
        cmd = req.get("cmd")
        if not isinstance(cmd, str) or not isinstance(req.get("lane", ""), str | None):
            return {"ok": False, "text": _say("bad_request", lang, error="cmd and lane must be strings")}
        if cmd == "status":
            return {
                "ok": True,
                "lockdown": self.site.lockdown.name.lower() if self.site.lockdown else None,
                "closed_campus": self.site.closed_campus,
                "lanes": [lane_status(self.service, lane, lang) for lane in self.service.supervisors],
            }
        if cmd in ("alarms", "ack") and self.alarms is not None:
            return self._alarms(cmd, req, lang)
        if cmd == "lockdown":
            on = req.get("on")
            if not isinstance(on, bool):
                return {"ok": False, "text": _say("lockdown_bad", lang)}
            done, decisions = self.site.set_lockdown(on, Authority.GUARD)
            return {
                "ok": done,
                "text": _say("lockdown_on" if on else "lockdown_off", lang),
                "decisions": [d.text(lang) for d in decisions],
            }
        if cmd not in COMMANDS:
            return {"ok": False, "text": _say("unknown_cmd", lang, cmd=cmd, cmds=", ".join(COMMANDS))}
        lane = req.get("lane")
        if lane not in self.service.supervisors:
            return {
                "ok": False,
                "text": _say("unknown_lane", lang, lane=lane, lanes=", ".join(self.service.supervisors)),
            }
        d = self.service.request(str(lane), COMMANDS[cmd], Authority.GUARD)
        return {"ok": d.accepted, "rule": d.rule.value, "reasons": [r.value for r in d.reasons], "text": d.text(lang)}

    def _alarms(self, cmd: str, req: dict[str, Any], lang: str) -> dict[str, Any]:
        """`alarms`: the open alarms; `ack` {"alarm_id", "by"}: the guard acknowledges one (audited)."""
        assert self.alarms is not None
        if cmd == "alarms":
            return {"ok": True, "alarms": [asdict(a) for a in self.alarms.alarms.values()]}
        aid, by = req.get("alarm_id"), req.get("by") or "guard"
        if not isinstance(aid, str) or not isinstance(by, str):
            return {"ok": False, "text": _say("bad_request", lang, error="alarm_id and by must be strings")}
        done, state = self.alarms.ack(aid, by, "guard")
        if not done:
            return {"ok": False, "text": tr(N_("no open alarm {aid!r}"), lang, aid=aid)}
        words = {"acknowledged": N_("acknowledged"), "closed": N_("acknowledged and closed")}
        return {"ok": True, "state": state, "text": f"{aid}: {tr(words.get(state, state), lang)}"}


def lane_status(service: BollardService, lane: str, lang: str) -> dict[str, Any]:
    """One lane as the gate house sees it (this socket and the panel): its state, every inhibit of a raise by
    name, the fire hold, whether the data is stale and how old, the modes that want it up, the last decision."""
    sup = service.supervisors[lane]
    view = sup.sensors.view(sup.fire_hold)
    now = service.clock.mono()
    inhibits = raise_inhibits(view, now, sup.settings.interlocks)
    age = None if view.read_mono is None else round(now - view.read_mono, 1)
    return {
        "lane": lane,
        "state": view.state,
        "fire_hold": sup.fire_hold,
        "fire": sup.fire_active,
        "fire_lane": sup.settings.fire_lane,
        "inhibits": [i.value for i in inhibits],
        "reasons": [reason(i, lang) for i in inhibits],
        "text": "; ".join(reason(i, lang) for i in inhibits),
        "stale": age is None or age > sup.settings.interlocks.max_staleness_s,
        "age_s": age,
        "modes": sorted(sup.intents),
        "last": sup.last_decision.text(lang) if sup.last_decision else None,
    }


# -- the client end, for `campus-edge bollard` and `campus-edge alarm` ----------------------------------------


def ask(path: Path, request: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """One request over the control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return _answer(path, data)


def _answer(path: Path, data: bytes) -> dict[str, Any]:
    """The gateway's answer, read strictly: one with a key twice ("ok") could say done and refused at once."""
    try:
        answer = strict_json.loads(data, "answer")
    except ValueError as exc:
        raise GatewayError(_("the gateway's answer on {path} is not valid: {error}", path=path, error=exc)) from exc
    if not isinstance(answer, dict):
        error = f"expected a JSON object, got {type(answer).__name__}"
        raise GatewayError(_("the gateway's answer on {path} is not valid: {error}", path=path, error=error))
    return answer
