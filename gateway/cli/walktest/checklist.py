"""The walk test (逐点测试): every configured point seen in each state it must show, and the commissioning report.

An installer walks the site and triggers each point: opens and closes each door, puts test smoke into each
detector, tests a zone of the fire panel and resets it, presses each button, raises and lowers each lane. The
checklist is built from the site configuration and fed by the running gateway's own readings, events and contacts,
so a point passes only when the path the gateway really uses saw it: the same drivers, pins and debouncing.

The report (JSON per the contract, and HTML in zh-CN and English) is the acceptance evidence (验收): each point
with the states seen and when, the device's profile, map and firmware versions, and what is missing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.profile import Quality, load_profile
from gateway.base.clock import rfc3339_ms
from gateway.base.i18n import N_, tr
from gateway.config import Config
from gateway.safety.bollards.supervisor import WARNING_LIGHTS
from gateway.store.records import Event, Reading

SCHEMA = "campus-edge/commissioning/1"

# The states each kind of point must be seen in (message ids: they are shown translated).
ONLINE, OPEN, CLOSED = N_("online"), N_("open"), N_("closed")
ALARM, NORMAL, FIRE, RESET = N_("alarm"), N_("normal"), N_("fire"), N_("reset")
ACTIVE, PRESSED, RELEASED = N_("active"), N_("pressed"), N_("released")
TAMPER = N_("tamper (loop shorted or cut)")
RAISED, LOWERED, WARNING, LIMIT_UP, LIMIT_DOWN = (
    N_("raised"), N_("lowered"), N_("warning lights and buzzer"), N_("upper limit"), N_("lower limit"),
)  # fmt: skip
KIND_NAMES = {
    "door": N_("door contact"),
    "trouble_relay": N_("fire panel trouble relay"),
    "fire_relay": N_("fire panel fire relay"),
    "bollard_raise": N_("raise button"),
    "bollard_lower": N_("lower button"),
    "bollard_stop": N_("stop button"),
    "efo_key": N_("emergency fast operation key"),
    "lockdown_key": N_("lockdown key switch"),
    "rex": N_("request-to-exit button"),
    "smoke_detector": N_("smoke detector"),
    "fire_panel": N_("fire alarm control panel"),
    "bollard_controller": N_("bollard controller"),
    "lane": N_("rising bollard lane"),
    "supervised_door": N_("door contact with end-of-line supervision"),
    "device": N_("Modbus device"),
}
_REQUIRED = {
    "door": (OPEN, CLOSED),
    "trouble_relay": (ACTIVE, NORMAL),
    "fire_relay": (FIRE, NORMAL),
    "smoke_detector": (ONLINE, ALARM, NORMAL),
    "fire_panel": (ONLINE, FIRE, RESET),
    "lane": (RAISED, LOWERED, WARNING, LIMIT_UP, LIMIT_DOWN),
    "supervised_door": (OPEN, CLOSED, TAMPER),
}
_SUPERVISED_POINT = re.compile(r"door(\d+)_state")  # a field node's door loops (drivers/profiles/door_node.toml)
_SUPERVISED_LOOP = re.compile(r"door(\d+)_")  # any point of a loop: open, tamper, state, changes, level
_READING_POINT = {"door": "open", "trouble_relay": "trouble", "fire_relay": "fire"}
_VERSION_POINTS = ("map_version", "model_code", "fw_version")
_LANE_ARRIVALS = {
    ("state", "up"): RAISED,
    ("state", "down"): LOWERED,
    ("limit_up", True): LIMIT_UP,
    ("limit_down", True): LIMIT_DOWN,
}


@dataclass(slots=True)
class Check:
    """One point of the checklist."""

    id: str
    kind: str
    name: str
    required: tuple[str, ...]
    seen: dict[str, int] = field(default_factory=dict)  # state -> wall ms first seen
    profile: str | None = None
    versions: dict[str, int | float | str | None] = field(default_factory=dict)
    armed: set[str] = field(default_factory=set)  # states now awaited because their premise was seen

    @property
    def passed(self) -> bool:
        return all(s in self.seen for s in self.required)

    @property
    def missing(self) -> list[str]:
        return [s for s in self.required if s not in self.seen]


def _warning_on(lights: object) -> bool:
    """The controller's flasher and buzzer both on (its lights register, devices.md 3.7)."""
    return isinstance(lights, int) and lights & WARNING_LIGHTS == WARNING_LIGHTS


class Checklist:
    """The walk test's checklist of one site, fed by the gateway's listeners."""

    def __init__(self, cfg: Config, wall_ms: Callable[[], int]) -> None:
        self.cfg = cfg
        self.wall_ms = wall_ms
        self.checks: dict[str, Check] = {}
        self.on_progress: list[Callable[[Check, str], None]] = []
        self._lane_of: dict[str, str] = {}  # the device whose readings tell a lane's state -> the lane
        self._door_of: dict[tuple[str, str], str] = {}  # (field node, its loop's state point) -> the door point
        self._field_doors = {(d.id, door.loop): door for d in cfg.devices for door in d.doors}
        lanes = {lane.controller: lane for lane in cfg.lanes if lane.controller}
        for inp in cfg.gpio.inputs:
            required = _REQUIRED.get(inp.kind, (PRESSED, RELEASED))
            self._add(Check(inp.id, inp.kind, inp.name, required))
        for dev in cfg.devices:
            model = load_profile(dev.profile).model
            if dev.id in lanes:
                continue  # a lane's controller is checked as its lane
            kind = model if model in ("smoke_detector", "fire_panel") else "device"
            self._add(Check(dev.id, kind, dev.name, _REQUIRED.get(kind, (ONLINE,)), profile=dev.profile))
        for lane in cfg.lanes:
            profile = None
            if lane.controller:
                profile = next(d.profile for d in cfg.devices if d.id == lane.controller)
            self._add(Check(lane.id, "lane", lane.name, _REQUIRED["lane"], profile=profile))
            self._lane_of[lane.controller or lane.id] = lane.id
        self.started_ms = wall_ms()

    def _add(self, check: Check) -> None:
        self.checks[check.id] = check

    def _see(self, check: Check, state: str, at_ms: int | None = None) -> None:
        if state in check.seen or state not in check.required:
            return
        check.seen[state] = at_ms if at_ms is not None else self.wall_ms()
        for listener in self.on_progress:
            listener(check, state)

    # -- what the gateway saw ---------------------------------------------------------------------------------

    def on_readings(self, readings: list[Reading]) -> None:
        self._add_supervised(readings)
        for r in readings:
            door = self._door_of.get((r.device, r.point))
            if door is not None and r.quality is Quality.GOOD:
                self._supervised_reading(self.checks[door], r)
            lane = self._lane_of.get(r.device)
            check = self.checks.get(lane or r.device)
            if check is None or r.quality is not Quality.GOOD:
                continue
            if lane is not None:
                self._lane_reading(check, r)
            elif check.kind in _READING_POINT:
                if r.point != _READING_POINT[check.kind]:
                    continue
                active, back = check.required
                if r.value is True:
                    self._see(check, active, r.at.wall_ms)
                    check.armed.add(back)
                elif back in check.armed:
                    self._see(check, back, r.at.wall_ms)  # back to normal after it was triggered
            else:
                self._device_reading(check, r)

    def _add_supervised(self, readings: list[Reading]) -> None:
        """A field node's door loops become points of their own once the node says which are wired (a loop reads
        `unused` when nothing is connected): each must be seen open, closed, and shorted or cut (its tamper). A loop
        configured as a door (`[[devices.doors]]`) is named by its door's id and name."""
        for r in readings:
            node = self.checks.get(r.device)
            m = _SUPERVISED_POINT.fullmatch(r.point)
            if node is None or node.kind != "device" or m is None or r.value in (None, "unused"):
                continue
            configured = self._field_doors.get((r.device, int(m.group(1))))
            pid = configured.id if configured else f"{r.device}.door{m.group(1)}"
            if pid not in self.checks:
                name = configured.name if configured and configured.name else f"{node.name} {m.group(1)}".strip()
                self._add(Check(pid, "supervised_door", name, _REQUIRED["supervised_door"], profile=node.profile))
                self._door_of[(r.device, r.point)] = pid

    def _supervised_reading(self, check: Check, r: Reading) -> None:
        if r.value == "open":
            self._see(check, OPEN, r.at.wall_ms)
            check.armed.add(CLOSED)
        elif r.value == "normal" and CLOSED in check.armed:
            self._see(check, CLOSED, r.at.wall_ms)
        elif r.value in ("short", "cut"):
            self._see(check, TAMPER, r.at.wall_ms)

    def _device_reading(self, check: Check, r: Reading) -> None:
        self._see(check, ONLINE, r.at.wall_ms)
        if r.point in _VERSION_POINTS:
            check.versions[r.point] = r.value if isinstance(r.value, int | float | str) else None
        if check.kind == "smoke_detector" and r.point == "fire_alarm":
            if r.value is True:
                self._see(check, ALARM, r.at.wall_ms)
                check.armed.add(NORMAL)
            elif NORMAL in check.armed:
                self._see(check, NORMAL, r.at.wall_ms)  # the detector back to normal after its test
        elif check.kind == "fire_panel":
            if r.point == "fire" and r.value is True:
                self._see(check, FIRE, r.at.wall_ms)
                check.armed.add(RESET)
            elif RESET in check.armed and (
                (r.point == "reset" and r.value is True) or (r.point == "first_alarm_point" and r.value is None)
            ):
                self._see(check, RESET, r.at.wall_ms)

    def _lane_reading(self, check: Check, r: Reading) -> None:
        """A lane passes on motions seen, not on where it stood at start: a rise (with its warning and the upper
        limit) and a lowering (with the lower limit)."""
        if r.point in _VERSION_POINTS:
            check.versions[r.point] = r.value if isinstance(r.value, int | float | str) else None
        elif r.point == "state" and r.value == "rising":
            check.armed.update((WARNING, RAISED, LIMIT_UP))
            if r.device == check.id:
                self._see(check, WARNING, r.at.wall_ms)  # a dry-contact lane: the gateway itself warned first (R13)
        elif r.point == "state" and r.value == "lowering":
            check.armed.update((LOWERED, LIMIT_DOWN))
        elif r.point == "lights" and WARNING in check.armed and _warning_on(r.value):
            self._see(check, WARNING, r.at.wall_ms)
        else:
            state = _LANE_ARRIVALS.get((r.point, r.value))
            if state is not None and state in check.armed:
                self._see(check, state, r.at.wall_ms)

    def on_events(self, events: list[Event]) -> None:
        """A device's first sight comes as readings; an `online` event also counts (a device seen before)."""
        for ev in events:
            check = self.checks.get(ev.device)
            if check is not None and ev.cls == "online" and ev.value is True:
                self._see(check, ONLINE, ev.at.wall_ms)

    def on_button(self, input_id: str, active: bool) -> None:
        """Buttons and key switches: they make no readings, only actions."""
        check = self.checks.get(input_id)
        if check is None or check.kind in _READING_POINT:
            return
        if check.kind == "lockdown_key":
            self._see(check, PRESSED if active else RELEASED)
        elif active:
            self._see(check, PRESSED)
            check.armed.add(RELEASED)
        elif RELEASED in check.armed:
            self._see(check, RELEASED)

    def under_test(self, ev: Event) -> bool:
        """Whether `ev` comes from a point the walk test has not passed yet (the recorder marks it `test`): a real
        fire at a detector already tested, or at a point that is not on the checklist, is not marked."""
        check = self.checks.get(self._lane_of.get(ev.device, ev.device))
        m = _SUPERVISED_LOOP.match(ev.point)
        if m is not None and check is not None and check.kind == "device":
            door = self._field_doors.get((ev.device, int(m.group(1))))
            check = self.checks.get(door.id if door else f"{ev.device}.door{m.group(1)}")
        return check is not None and not check.passed

    # -- results ----------------------------------------------------------------------------------------------

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks.values() if c.passed)

    @property
    def done(self) -> bool:
        return self.passed == len(self.checks)

    def line(self, check: Check, lang: str) -> str:
        """One point as the installer reads it in the terminal."""
        mark = "[OK]" if check.passed else "[  ]"
        states = ", ".join(f"{tr(s, lang)} {'✓' if s in check.seen else '…'}" for s in check.required)
        name = f" ({check.name})" if check.name else ""
        return f"{mark} {check.id}{name} {tr(KIND_NAMES[check.kind], lang)}: {states}"

    def report(self, *, ended_ms: int, version: str, config_hash: str, by: str, aborted: bool) -> dict[str, Any]:
        """The commissioning report, JSON per the contract (without the envelope's schema, site, gateway, seq)."""
        points = [
            {
                "id": c.id,
                "kind": c.kind,
                "name": c.name,
                "profile": c.profile,
                "versions": dict(sorted(c.versions.items())),
                "required": list(c.required),
                "seen": {s: rfc3339_ms(ms) for s, ms in sorted(c.seen.items(), key=lambda kv: kv[1])},
                "missing": c.missing,
                "result": "pass" if c.passed else "fail",
            }
            for c in self.checks.values()
        ]
        failed = [p["id"] for p in points if p["result"] == "fail"]
        body: dict[str, Any] = {
            "started": rfc3339_ms(self.started_ms),
            "ended": rfc3339_ms(ended_ms),
            "by": by,
            "gateway_version": version,
            "config_hash": config_hash,
            "result": "pass" if not failed else "fail",
            "aborted": aborted,
            "summary": {"points": len(points), "passed": len(points) - len(failed), "failed": failed},
            "points": points,
        }
        return body


def render_html(report: dict[str, Any], site: str, gateway: str, lang: str) -> str:
    """A self-contained page (no assets, prints on A4) of the report in `lang`."""

    def _h(msgid: str, **fields: object) -> str:  # a literal, translated and escaped (a keyword of scripts/i18n)
        return html.escape(tr(msgid, lang, **fields))

    def word(msgid: str) -> str:  # a word from a table of marked words
        return html.escape(tr(msgid, lang))

    ok = report["result"] == "pass"
    rows = []
    for p in report["points"]:
        seen = "<br>".join(f"{word(s)}: {html.escape(ts)}" for s, ts in p["seen"].items())
        missing = ", ".join(word(s) for s in p["missing"])
        versions = ", ".join(f"{html.escape(k)} {html.escape(str(v))}" for k, v in p["versions"].items())
        result = _h("PASSED") if p["result"] == "pass" else _h("FAILED")
        rows.append(
            f'<tr class="{p["result"]}"><td>{html.escape(p["id"])}<br><small>{html.escape(p["name"])}</small></td>'
            f"<td>{word(KIND_NAMES[p['kind']])}<br><small>{html.escape(p['profile'] or '')} {versions}</small></td>"
            f"<td>{seen}</td><td>{missing}</td><td><b>{result}</b></td></tr>"
        )
    summary = report["summary"]
    verdict = _h("PASSED") if ok else _h("FAILED")
    title = _h("Commissioning report (walk test)")
    when = _h("From {start} to {end}, by {by}", start=report["started"], end=report["ended"], by=report["by"])
    tally = _h("{passed} of {points} points passed", passed=summary["passed"], points=summary["points"])
    site_l, gateway_l, software_l, config_l = _h("Site"), _h("Gateway"), _h("Software"), _h("Configuration")
    result_l, point_l, kind_l = _h("Result"), _h("Point"), _h("Kind, profile and versions")
    seen_l, missing_l = _h("States seen"), _h("Missing")
    return f"""<!doctype html>
<html lang="{"zh-CN" if lang == "zh-CN" else "en"}"><head><meta charset="utf-8">
<title>{title} {html.escape(site)}/{html.escape(gateway)}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 2em; color: #111; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #888; padding: .4em; vertical-align: top; text-align: left; }}
tr.fail td {{ background: #fde8e8; }}
.verdict {{ font-size: 1.4em; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>{title}</h1>
<p>{site_l}: {html.escape(site)} &nbsp; {gateway_l}: {html.escape(gateway)} &nbsp;
{software_l}: {html.escape(report["gateway_version"])} &nbsp; {config_l}: {html.escape(report["config_hash"])}</p>
<p>{when}</p>
<p class="verdict">{result_l}: <b>{verdict}</b> &mdash; {tally}</p>
<table><thead><tr><th>{point_l}</th><th>{kind_l}</th><th>{seen_l}</th><th>{missing_l}</th><th>{result_l}</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
</body></html>
"""
