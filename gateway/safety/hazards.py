"""Hazard checks (隐患排查): the gateway's self-inspection report of its site, daily, weekly and monthly (issue 6).

What the period held, from the events the gateway recorded: devices offline or flapping, alarms by class, risk
warnings still open (dirty detectors, low batteries, shielded points, unstable inputs), doors held open (count,
longest), bollard cycles, faults and reversals, outbox health and declared gaps. Published durably on
`{prefix}/report/{period}` (JSON per the contract), with a readable rendering in zh-CN and English for the school's
safety officer. Each period's history is kept in state_dir/report-history.json, written every `SAVE_EVERY_S` when it
changed, at each report and at shutdown, so a restart keeps the day's counts (a power cut loses at most the last
half minute of them) and the report lists the gateway's starts. Without that file a report covers the time since
the start, and says so (`history_from`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.base.clock import Clock, rfc3339_ms
from gateway.base.i18n import N_, tr
from gateway.base.statefile import load_json, save_json
from gateway.safety.alarms import AlarmBook
from gateway.store.outbox import PRIORITY_EVENT, Entry, Outbox
from gateway.store.records import Event
from gateway.store.stateboard import StateBoard

log = logging.getLogger(__name__)

PERIODS = ("daily", "weekly", "monthly")
FLAPPING_AFTER = 3  # offline this many times in a period: flapping
SAVE_EVERY_S = 30.0


@dataclass(slots=True)
class History:
    """What one period held."""

    since_ms: int
    offline: Counter[str] = field(default_factory=Counter)
    alarms: Counter[str] = field(default_factory=Counter)
    door_opens: Counter[str] = field(default_factory=Counter)
    held_open: Counter[str] = field(default_factory=Counter)
    longest_open_s: dict[str, float] = field(default_factory=dict)
    bollard_cycles: Counter[str] = field(default_factory=Counter)
    bollard_faults: Counter[str] = field(default_factory=Counter)
    reversals: Counter[str] = field(default_factory=Counter)
    gap_messages: int = 0
    starts: list[int] = field(default_factory=list)  # wall ms of each gateway start within the period

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs, counting the pairs.
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), dict) else v for f in fields(self)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> History:
        """Rebuild from `asdict`'s JSON; a wrong type raises (the caller starts afresh)."""
        h = cls(int(raw["since_ms"]))
        for f in fields(cls):
            value = raw.get(f.name)
            if f.name == "since_ms" or value is None:
                continue
            current = getattr(h, f.name)
            if isinstance(current, Counter):
                setattr(h, f.name, Counter({str(k): int(v) for k, v in dict(value).items()}))
            elif isinstance(current, dict):
                setattr(h, f.name, {str(k): float(v) for k, v in dict(value).items()})
            elif isinstance(current, list):
                setattr(h, f.name, [int(v) for v in value])
            else:
                setattr(h, f.name, int(value))
        return h


class Inspector:
    """Keeps each period's history from the recorder's events, and writes the reports."""

    def __init__(
        self,
        board: StateBoard,
        alarms: AlarmBook,
        outbox: Outbox,
        clock: Clock,
        tests_file: Path | None = None,
        untested_after_days: int = 30,
        history_file: Path | None = None,
        counting: bool = True,
        field_doors: dict[tuple[str, str], str] | None = None,
    ) -> None:
        """`field_doors`: (node, its loop's open point) -> the door configured on that loop, counted as a door."""
        self.board = board
        self.field_doors = field_doors or {}
        self.alarms = alarms
        self.outbox = outbox
        self.clock = clock
        self.tests_file = tests_file
        self.untested_after_days = untested_after_days
        # Detector -> wall ms of its last self-test, or of when it was first seen (never tested since): kept in a
        # file, since the period that matters is a month, not the life of a process.
        self.tested: dict[str, dict[str, int | None]] = {}
        if tests_file is not None:
            try:
                loaded = load_json(tests_file)
                self.tested = {str(k): dict(v) for k, v in loaded.items()}
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                log.error("%s: unreadable (%s): the detector test dates start afresh", tests_file, exc)
                self.tested = {}
        now = clock.wall_ms()
        self.started_ms = now
        self.history = {period: History(now) for period in PERIODS}
        self._opened: dict[str, int] = {}  # door -> wall ms it opened
        self.history_file = history_file
        self.counting = counting  # off during a walk test
        self._dirty = False
        self._load_history()
        for h in self.history.values():
            h.starts.append(now)

    def _load_history(self) -> None:
        if self.history_file is None or not self.history_file.exists():
            return
        try:
            raw = load_json(self.history_file)
            history = {p: History.from_json(raw["periods"][p]) for p in PERIODS}
            opened = {str(k): int(v) for k, v in raw.get("doors_open", {}).items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("%s: report history unreadable (%s); the reports start afresh", self.history_file, exc)
            return
        self.history, self._opened = history, opened
        self.started_ms = min(h.since_ms for h in history.values())

    def save_history(self) -> None:
        """Write the periods' history if it changed since the last write."""
        if not self._dirty or self.history_file is None:
            return
        self._dirty = False
        data = {"periods": {p: h.to_json() for p, h in self.history.items()}, "doors_open": self._opened}
        save_json(self.history_file, data, "the report history")

    def on_events(self, events: list[Event]) -> None:
        """Count what a report needs (a recorder listener). A walk test's alarms and doors are not the site's day;
        its detector tests are real tests."""
        for ev in events:
            door = self.field_doors.get((ev.device, ev.point)) if ev.cls == "door" else None
            if door is not None:  # a field node's loop: counted as the door it is
                ev = replace(ev, device=door, point="open")  # noqa: PLW2901
            if self.counting:
                for h in self.history.values():
                    self._dirty |= self._count(h, ev)
            if ev.cls == "test" and ev.state == "raised":
                self.tested[ev.device] = {"first_seen": self.tested.get(ev.device, {}).get("first_seen"),
                                          "last_test": ev.at.wall_ms}  # fmt: skip
                if self.tests_file is not None:
                    save_json(self.tests_file, self.tested, "the detector tests")
            if ev.cls == "door" and ev.point == "open" and self.counting:
                self._dirty = True
                if ev.value is True:
                    self._opened[ev.device] = ev.at.wall_ms
                elif ev.device in self._opened:
                    seconds = (ev.at.wall_ms - self._opened.pop(ev.device)) / 1000
                    for h in self.history.values():
                        h.longest_open_s[ev.device] = max(h.longest_open_s.get(ev.device, 0.0), seconds)

    @staticmethod
    def _count(h: History, ev: Event) -> bool:
        """Count `ev` in `h`; False for an event no report counts."""
        if ev.cls == "offline" and ev.state == "raised":
            h.offline[ev.device] += 1
        elif ev.cls == "alarm" and ev.value == "raised":
            h.alarms[str(ev.detail.get("class"))] += 1
        elif ev.cls == "door" and ev.point == "open" and ev.value is True:
            h.door_opens[ev.device] += 1
        elif ev.cls == "door" and ev.point == "held_open" and ev.state == "raised":
            h.held_open[ev.device] += 1
        elif ev.cls == "bollard" and ev.point == "state" and ev.value == "up":
            h.bollard_cycles[ev.device] += 1
        elif ev.cls == "bollard" and ev.point in ("state", "fault_code") and ev.severity == "alarm":
            h.bollard_faults[ev.device] += 1
        elif ev.cls == "bollard" and ev.point == "command" and ev.detail.get("rule") == "presence_during_rise":
            h.reversals[ev.device] += 1
        elif ev.cls == "gap":
            count = ev.detail.get("count")
            h.gap_messages += count if isinstance(count, int) else 0
        else:
            return False
        return True

    def report(self, period: str) -> dict[str, Any]:
        """The report of `period` up to now; its history starts again."""
        now = self.clock.wall_ms()
        h = self.history[period]
        self.history[period] = History(now)
        self._dirty = True
        for door, opened in self._opened.items():  # still open: counted up to now
            h.longest_open_s[door] = max(h.longest_open_s.get(door, 0.0), (now - opened) / 1000)
        offline_now = sorted(d for d, st in self.board.devices.items() if not st.online and st.points)
        warnings = [
            {"alarm_id": a.id, "active": a.active, "acked": a.acked, "count": a.count, "since": rfc3339_ms(a.raised_ms)}
            for a in sorted(self.alarms.alarms.values(), key=lambda a: a.raised_ms)
            if a.cls == "maintenance"
        ]
        open_alarms = [a.id for a in self.alarms.alarms.values() if a.cls != "maintenance"]
        untested = self._untested(now)
        body: dict[str, Any] = {
            "period": period,
            "from": rfc3339_ms(h.since_ms),
            "to": rfc3339_ms(now),
            "history_from": rfc3339_ms(max(h.since_ms, self.started_ms)),
            "gateway_starts": [rfc3339_ms(ms) for ms in h.starts],
            "devices": {
                "offline_now": offline_now,
                "went_offline": dict(sorted(h.offline.items())),
                "flapping": sorted(d for d, n in h.offline.items() if n >= FLAPPING_AFTER),
            },
            "detectors_untested": untested,
            "alarms_raised": dict(sorted(h.alarms.items())),
            "open_alarms": sorted(open_alarms),
            "open_warnings": warnings,
            "doors": {
                "opened": dict(sorted(h.door_opens.items())),
                "held_open": dict(sorted(h.held_open.items())),
                "longest_open_s": {d: round(s, 1) for d, s in sorted(h.longest_open_s.items())},
            },
            "bollards": {
                "cycles": dict(sorted(h.bollard_cycles.items())),
                "faults": dict(sorted(h.bollard_faults.items())),
                "reversals": dict(sorted(h.reversals.items())),
            },
            "outbox": {
                "waiting": self.outbox.depth(),
                "bytes": self.outbox.bytes,
                "usage_pct": round(self.outbox.usage() * 100, 1),
                "gap_messages": h.gap_messages,
            },
        }
        body["readable"] = {"en": render(body, "en"), "zh-CN": render(body, "zh")}
        return body

    def _untested(self, now: int) -> list[dict[str, Any]]:
        """Smoke detectors whose last self-test (or first sight, never tested since) is older than the limit."""
        changed = False
        for device, state in self.board.devices.items():
            if state.profile == "smoke_detector" and device not in self.tested:
                self.tested[device] = {"first_seen": now, "last_test": None}
                changed = True
        if changed and self.tests_file is not None:
            save_json(self.tests_file, self.tested, "the detector tests")
        limit = self.untested_after_days * 86_400_000
        out = []
        for device, seen in sorted(self.tested.items()):
            since = seen.get("last_test") or seen.get("first_seen") or now
            if now - since >= limit:
                last = seen.get("last_test")
                out.append({"device": device, "last_test": rfc3339_ms(last) if last else None,
                            "days": int((now - since) / 86_400_000)})  # fmt: skip
        return out

    def publish(self, period: str, topic: str) -> dict[str, Any]:
        """Write the report of `period` to the outbox (durable, delivered like an event) and return it."""
        body = self.report(period)
        self.outbox.put([Entry(PRIORITY_EVENT, topic, json.dumps(body, ensure_ascii=False, separators=(",", ":")))])
        self.save_history()
        log.info("%s hazard report written", period)
        return body


def render(r: dict[str, Any], lang: str) -> str:
    """The report as the school's safety officer reads it (the catalogue's zh-CN, or English)."""
    titles = {
        "daily": N_("Daily hazard check {start} to {end}"),
        "weekly": N_("Weekly hazard check {start} to {end}"),
        "monthly": N_("Monthly hazard check {start} to {end}"),
    }
    lines = [tr(titles[r["period"]], lang, start=r["from"], end=r["to"])]

    none = tr(N_("none"), lang)

    def item(label: str, value: object) -> None:
        empty = value in ({}, [], None, "")
        lines.append(f"- {tr(label, lang)}: {none if empty else value}")

    item(N_("devices offline now"), ", ".join(r["devices"]["offline_now"]))
    item(N_("devices flapping (offline 3 times or more)"), ", ".join(r["devices"]["flapping"]))
    item(
        N_("detectors not tested lately (days)"),
        ", ".join(f"{d['device']} {d['days']}" for d in r["detectors_untested"]),
    )
    item(N_("alarms raised, by class"), _pairs(r["alarms_raised"]))
    item(N_("alarms still open"), ", ".join(r["open_alarms"]))
    item(N_("risk warnings open"), ", ".join(w["alarm_id"] for w in r["open_warnings"]))
    item(N_("doors held open"), _pairs(r["doors"]["held_open"]))
    item(N_("longest a door was open (s)"), _pairs(r["doors"]["longest_open_s"]))
    item(N_("bollard cycles"), _pairs(r["bollards"]["cycles"]))
    item(N_("bollard faults"), _pairs(r["bollards"]["faults"]))
    item(N_("bollard reversals (presence during a rise)"), _pairs(r["bollards"]["reversals"]))
    ob = r["outbox"]
    lines.append("- " + tr(N_("local store: {waiting} waiting, {usage}% used, {lost} declared lost"), lang,
                           waiting=ob["waiting"], usage=ob["usage_pct"], lost=ob["gap_messages"]))  # fmt: skip
    if len(r.get("gateway_starts", ())) > 1:
        lines.append("- " + tr(N_("gateway restarted: {times}"), lang, times=", ".join(r["gateway_starts"][1:])))
    if r["history_from"] != r["from"]:
        lines.append(tr(N_("(history from {start}: the gateway's earlier records were lost)"), lang,
                        start=r["history_from"]))  # fmt: skip
    return "\n".join(lines)


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


class ReportClock:
    """When each report is due: daily at `at` (local), weekly on `weekday` at `at`, monthly on `day` at `at`.
    The dates reports were last written are kept in a file, so a restart neither repeats nor skips one."""

    def __init__(self, zone: str, at: time, weekday: int, day: int, path: Path | None) -> None:
        self.zone = ZoneInfo(zone)
        self.at = at
        self.weekday = weekday
        self.day = day
        self.path = path
        self.last: dict[str, str] = {}
        if path is not None:
            try:
                loaded = load_json(path)
                self.last = {k: str(v) for k, v in loaded.items() if k in PERIODS}
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError) as exc:
                log.error("%s: unreadable (%s): the report dates start afresh", path, exc)
                self.last = {}

    def begin(self, now: datetime) -> None:
        """A gateway with no report written yet starts counting now: its first reports come at their next time,
        not at its first start (a report of a few seconds' history helps nobody)."""
        today = now.astimezone(self.zone).date().isoformat()
        for period in PERIODS:
            self.last.setdefault(period, today)

    def due(self, now: datetime) -> list[str]:
        """The periods whose report is due at `now` (aware), and not yet written today."""
        local = now.astimezone(self.zone)
        if local.time() < self.at:
            return []
        today = local.date()
        wanted = ["daily"]
        if today.weekday() == self.weekday:
            wanted.append("weekly")
        if today.day == self.day:
            wanted.append("monthly")
        return [p for p in wanted if self.last.get(p) != today.isoformat()]

    def written(self, period: str, day: date) -> None:
        self.last[period] = day.isoformat()
        if self.path is not None:
            save_json(self.path, self.last, "the report dates")


async def run_reports(
    inspector: Inspector, when: ReportClock, topic: Callable[[str], str], clock: Clock, every_s: float = SAVE_EVERY_S
) -> None:
    """Write reports when they are due, on a synchronised clock only (a report dated by a wrong clock misleads);
    keep the history on disk meanwhile."""
    try:
        while True:
            if clock.synced():
                now = datetime.fromtimestamp(clock.wall_ms() / 1000, when.zone)
                when.begin(now)  # the first time only: later it finds every period there
                for period in when.due(now):
                    inspector.publish(period, topic(period))
                    when.written(period, now.date())
            inspector.save_history()
            await asyncio.sleep(every_s)
    finally:
        inspector.save_history()
