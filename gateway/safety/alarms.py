"""Alarms with a lifecycle the platform can close (issue 6): raised -> acknowledged -> cleared, then closed.

Every alarm-worthy event the gateway records (a fire, a fault, a forced door, a detector gone offline, ...) opens
or updates one alarm, under a stable id per source and condition (`device.point`). An alarm stays in the book
until its condition has cleared *and* someone acknowledged it (ISA-18.2's "unacknowledged, returned to normal"
stays visible). A panel's fire does not clear with its fire bit alone: it needs the panel's reset (R2). Unacknowledged
alarms are announced again every `renotify_s`. The book is kept in state_dir/alarms.json, so a restart neither
forgets an alarm nor opens it twice, and the list of open alarms is published retained on `{prefix}/alarms`.

Each change is an event of class `alarm`: `device` and `point` those of the source, `value` what happened
(`raised`, `acknowledged`, `cleared`, `closed`, `renotified`), `detail.alarm_id`, `class`, `priority`, ...
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from drivers.profile import PointValue, Quality
from gateway.base.clock import Clock, rfc3339_ms
from gateway.base.contract import Topics
from gateway.base.i18n import N_, tr
from gateway.base.statefile import load_json, save_json
from gateway.safety.fire import panel_reset_seen
from gateway.store.recorder import Recorder
from gateway.store.records import Detail, Event, EventState, Severity, Stamp

log = logging.getLogger(__name__)

SCHEMA_ALARMS = "campus-edge/alarms/1"
MAX_EVIDENCE_READINGS = 12
TAKE_AFTER_S = 0.01


class AlarmClass(StrEnum):
    """What kind of alarm; each has a priority (1 is the most urgent)."""

    FIRE = "fire"
    PREALARM = "prealarm"
    SECURITY = "security"  # a door forced or held open
    SUPERVISORY = "supervisory"
    FAULT = "fault"
    TAMPER = "tamper"
    MAINTENANCE = "maintenance"  # low battery, dirty chamber, end of life, shielded point, offline, settings


PRIORITY = {
    AlarmClass.FIRE: 1,
    AlarmClass.PREALARM: 2,
    AlarmClass.SECURITY: 2,
    AlarmClass.SUPERVISORY: 3,
    AlarmClass.FAULT: 3,
    AlarmClass.TAMPER: 3,
    AlarmClass.MAINTENANCE: 4,
}
_BY_EVENT = {
    "fire": AlarmClass.FIRE,
    "prealarm": AlarmClass.PREALARM,
    "supervisory": AlarmClass.SUPERVISORY,
    "fault": AlarmClass.FAULT,
    "trouble": AlarmClass.FAULT,
    "tamper": AlarmClass.TAMPER,
    "maintenance": AlarmClass.MAINTENANCE,
    "shielded": AlarmClass.MAINTENANCE,
    "offline": AlarmClass.MAINTENANCE,
}
CLASS_WORDS = {  # translated through the catalogue (gateway/i18n.py)
    AlarmClass.FIRE: N_("fire"),
    AlarmClass.PREALARM: N_("pre-alarm"),
    AlarmClass.SECURITY: N_("security"),
    AlarmClass.SUPERVISORY: N_("supervisory"),
    AlarmClass.FAULT: N_("fault"),
    AlarmClass.TAMPER: N_("tamper"),
    AlarmClass.MAINTENANCE: N_("maintenance"),
}
LIFECYCLE_TEXTS = {  # whole sentences: the translator sees each in full
    "raised": N_("{cls} alarm {alarm_id}: raised"),
    "acknowledged": N_("{cls} alarm {alarm_id}: acknowledged"),
    "cleared": N_("{cls} alarm {alarm_id}: cleared"),
    "closed": N_("{cls} alarm {alarm_id}: closed"),
    "renotified": N_("{cls} alarm {alarm_id}: still not acknowledged"),
}


@dataclass(slots=True)
class Alarm:
    """One alarm in the book."""

    id: str
    cls: str
    priority: int
    device: str
    point: str
    raised_ms: int
    active: bool = True
    acked: bool = False
    acked_by: str | None = None
    acked_ms: int | None = None
    cleared_ms: int | None = None
    count: int = 1  # times the condition came back while the alarm was open
    awaiting_reset: bool = False  # a panel's fire whose fire bit dropped: cleared only by the panel's reset
    notified_ms: int = 0
    announced_ms: int = 0  # the last raised or cleared event
    quiet_changes: int = 0  # changes of a chattering warning not announced yet


def classify(ev: Event) -> tuple[AlarmClass, bool] | None:
    """The alarm class of an event and whether its condition is now active; None for events that are no alarm."""
    if ev.cls == "fire" and ev.point == "inconsistent":
        return (AlarmClass.FAULT, ev.state == "raised") if ev.state in ("raised", "cleared") else None
    if ev.cls == "door":
        if ev.point in ("forced_open", "held_open") and ev.state in ("raised", "cleared"):
            return AlarmClass.SECURITY, ev.state == "raised"
        return None
    if ev.cls == "online" and ev.point == "online":
        return AlarmClass.MAINTENANCE, False  # clears the device's offline alarm (see `alarm_id`)
    if ev.cls == "bollard":
        if ev.point in ("state", "fault_code") and ev.state == "changed":
            return AlarmClass.FAULT, ev.severity == "alarm"
        if ev.point == "settings" and ev.state in ("raised", "cleared"):
            return AlarmClass.MAINTENANCE, ev.state == "raised"
        return None
    cls = _BY_EVENT.get(ev.cls)
    if cls is None or ev.state not in ("raised", "cleared"):
        return None
    return cls, ev.state == "raised"


def alarm_id(ev: Event) -> str:
    """Stable per source and condition: `device.point` (a device's offline and online events, both of point
    `online`, make `device.offline`)."""
    point = "offline" if ev.cls in ("online", "offline") else ev.point
    if ev.cls == "bollard" and ev.point in ("state", "fault_code"):
        point = "controller_fault"  # the state and its fault code are one condition of the controller
    return f"{ev.device}.{point}"


class AlarmBook:
    """The open alarms of one gateway."""

    def __init__(
        self,
        recorder: Recorder,
        topics: Topics,
        clock: Clock,
        path: Path | None,
        panels: frozenset[str] = frozenset(),
        renotify_s: float = 300.0,
        chatter_s: float = 60.0,
    ) -> None:
        self.recorder = recorder
        self.topics = topics
        self.clock = clock
        self.path = path
        self.panels = panels
        self.renotify_s = renotify_s
        self.chatter_s = chatter_s
        self.alarms: dict[str, Alarm] = {}
        self._pending: dict[asyncio.TimerHandle, list[Event]] = {}  # events taken a moment after the recorder
        self._load()
        recorder.on_events.append(self.on_events)
        self._publish_list()

    # -- a collection of alarm ids (the signed command pipeline checks `alarm.ack` targets against it) ----------

    def __contains__(self, item: object) -> bool:
        return item in self.alarms

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.alarms))

    def __len__(self) -> int:
        return len(self.alarms)

    # -- inputs ----------------------------------------------------------------------------------------------

    def on_events(self, events: list[Event]) -> None:
        """Events as the recorder took them, taken a moment later: the book commits lifecycle events and writes its
        file (two fsyncs), which must not stand between a fire and its publication (the uplink sends it from a task
        of its own, a turn or two after the commit)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._take(events)  # no loop (tools, tests): at once
            return

        def take() -> None:
            del self._pending[handle]
            self._take(events)

        handle = loop.call_later(TAKE_AFTER_S, take)
        self._pending[handle] = events

    def close(self) -> None:
        """At shutdown, before the store closes: take at once what was waiting for its moment."""
        pending, self._pending = self._pending, {}
        for handle, events in pending.items():
            handle.cancel()
            self._take(events)

    def _take(self, events: list[Event]) -> None:
        changed = False
        for ev in events:
            if ev.cls == "alarm":
                continue
            kind = classify(ev)
            if kind is None:
                continue
            cls, active = kind
            changed |= self._condition(alarm_id(ev), cls, ev, active)
        if changed:
            self._save()
            self._publish_list()

    def on_panel_poll(self, device: str, values: dict[str, PointValue]) -> None:
        """A fire panel was read: a fire waiting for its reset clears once the panel shows one."""
        alarm = self.alarms.get(f"{device}.fire")
        if alarm is None or not alarm.awaiting_reset or not panel_reset_seen(values):
            return
        alarm.awaiting_reset = False
        self._cleared(alarm, self.clock.wall_ms(), "the panel was reset")
        self._save()
        self._publish_list()

    def _condition(self, aid: str, cls: AlarmClass, ev: Event, active: bool) -> bool:
        alarm = self.alarms.get(aid)
        now = ev.at.wall_ms
        if active:
            if alarm is None:
                point = "offline" if ev.cls in ("online", "offline") else ev.point
                alarm = Alarm(aid, cls.value, PRIORITY[cls], ev.device, point, now, notified_ms=now)
                self.alarms[aid] = alarm
                self._emit(alarm, "raised", "raised", self._evidence(alarm, ev))
                return True
            if alarm.active and not alarm.awaiting_reset:
                return False  # the same condition said again (a restart re-raises what is active): not a new alarm
            # Back while still open (unacknowledged, or waiting for a reset): the same alarm, counted.
            alarm.active = True
            alarm.awaiting_reset = False
            alarm.cleared_ms = None
            alarm.count += 1
            if self._chattering(alarm, now):
                return True
            self._emit(alarm, "raised", "raised", self._evidence(alarm, ev))
            return True
        if alarm is None or not alarm.active:
            return False
        if alarm.cls == AlarmClass.FIRE and ev.device in self.panels and ev.point == "fire":
            # R2: a panel's fire clears only with the panel's reset, seen on a later poll.
            if not alarm.awaiting_reset:
                alarm.awaiting_reset = True
                return True
            return False
        if self._chattering(alarm, now):
            alarm.active = False
            alarm.cleared_ms = now
            return True
        self._cleared(alarm, now, "", self._evidence(alarm, ev))
        return True

    def _chattering(self, alarm: Alarm, now: int) -> bool:
        """A risk warning whose condition comes and goes within `chatter_s` of its last announcement: counted, not
        announced; `flush_chatter` says where it ended up once it has been quiet. Fire, security and faults are
        always announced."""
        if alarm.cls != AlarmClass.MAINTENANCE or now - alarm.announced_ms >= self.chatter_s * 1000:
            return False
        alarm.quiet_changes += 1
        return True

    def flush_chatter(self) -> int:
        """Announce where each chattering warning ended up, once `chatter_s` has passed since its last announcement:
        one event with the count of changes not announced."""
        now = self.clock.wall_ms()
        due = [a for a in self.alarms.values() if a.quiet_changes and now - a.announced_ms >= self.chatter_s * 1000]
        for alarm in due:
            extra: Detail = {"unannounced_changes": alarm.quiet_changes}
            alarm.quiet_changes = 0
            if alarm.active:
                self._emit(alarm, "raised", "raised", extra)
            else:
                self._cleared(alarm, alarm.cleared_ms or now, "", extra)
        if due:
            self._save()
            self._publish_list()
        return len(due)

    def _evidence(self, alarm: Alarm, ev: Event) -> Detail | None:
        """For a risk warning (maintenance class): what the platform needs to register, assess and close it with
        proof. What the event said (counts, times) and the device's readings at that moment."""
        if alarm.cls != AlarmClass.MAINTENANCE:
            return None
        found: Detail = {
            f"evidence_{k}": v
            for k, v in ev.detail.items()
            if not k.startswith("text_") and isinstance(v, int | float | str | bool)
        }
        found["evidence_first_ms"] = alarm.raised_ms
        state = self.recorder.board.devices.get(alarm.device)
        if state is not None:
            for name, (value, quality, _ms) in sorted(state.points.items())[:MAX_EVIDENCE_READINGS]:
                found[f"reading_{name}"] = value if quality is Quality.GOOD else None
        return found

    def _cleared(self, alarm: Alarm, now: int, why: str, evidence: Detail | None = None) -> None:
        alarm.active = False
        alarm.cleared_ms = now
        self._emit(alarm, "cleared", "cleared", {**({"why": why} if why else {}), **(evidence or {})})
        if alarm.acked:
            self._close(alarm)

    def _close(self, alarm: Alarm) -> None:
        del self.alarms[alarm.id]
        self._emit(alarm, "changed", "closed")

    # -- acknowledgement ---------------------------------------------------------------------------------------

    def ack(self, aid: str, by: str, source: str) -> tuple[bool, str]:
        """Acknowledge an alarm (the guard on site, or the platform through a signed command). Returns (done, the
        alarm's lifecycle state after it: acknowledged, closed, or why not)."""
        alarm = self.alarms.get(aid)
        if alarm is None:
            return False, "no such open alarm"
        if alarm.acked:
            return True, "acknowledged"
        alarm.acked = True
        alarm.acked_by = f"{source}:{by}"
        alarm.acked_ms = self.clock.wall_ms()
        self._emit(alarm, "changed", "acknowledged", {"source": source, "by": by})
        state = "acknowledged"
        if not alarm.active:
            self._close(alarm)
            state = "closed"
        self._save()
        self._publish_list()
        return True, state

    # -- re-notification ---------------------------------------------------------------------------------------

    def renotify(self) -> int:
        """Announce again every open, unacknowledged alarm last announced `renotify_s` ago or more."""
        now = self.clock.wall_ms()
        due = [a for a in self.alarms.values() if not a.acked and now - a.notified_ms >= self.renotify_s * 1000]
        for alarm in due:
            self._emit(alarm, "changed", "renotified")
        if due:
            self._save()
        return len(due)

    async def run(self) -> None:
        """Re-notify, and settle chattering warnings, until cancelled."""
        while True:
            await asyncio.sleep(min(5.0, self.renotify_s / 10, self.chatter_s / 4))
            self.flush_chatter()
            self.renotify()

    # -- output ------------------------------------------------------------------------------------------------

    def _emit(self, alarm: Alarm, state: EventState, what: str, extra: Detail | None = None) -> None:
        alarm.notified_ms = self.clock.wall_ms()
        if what in ("raised", "cleared"):
            alarm.announced_ms = alarm.notified_ms
        cls_word = CLASS_WORDS[AlarmClass(alarm.cls)]
        text_en, text_zh = (
            tr(LIFECYCLE_TEXTS[what], lang, cls=tr(cls_word, lang), alarm_id=alarm.id) for lang in ("en", "zh-CN")
        )
        severity: Severity = "alarm" if alarm.priority == 1 and what in ("raised", "renotified") else "warning"
        if what in ("closed", "cleared", "acknowledged"):
            severity = "info"
        detail: Detail = {
            "alarm_id": alarm.id,
            "class": alarm.cls,
            "priority": alarm.priority,
            "raised_at": rfc3339_ms(alarm.raised_ms),
            "acked": alarm.acked,
            "acked_by": alarm.acked_by,
            "count": alarm.count,
            "text_en": text_en,
            "text_zh": text_zh,
            **(extra or {}),
        }
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        event = Event("alarm", severity, state, alarm.device, alarm.point, what, Quality.GOOD, stamp, detail)
        self.recorder.record([], [event])

    def _publish_list(self) -> None:
        alarms = [
            {
                "alarm_id": a.id,
                "class": a.cls,
                "priority": a.priority,
                "device": a.device,
                "point": a.point,
                "active": a.active,
                "acked": a.acked,
                "acked_by": a.acked_by,
                "count": a.count,
                "awaiting_reset": a.awaiting_reset,
                "raised_at": rfc3339_ms(a.raised_ms),
            }
            for a in sorted(self.alarms.values(), key=lambda a: (a.priority, a.raised_ms))
        ]
        body: dict[str, object] = {"alarms": alarms, "ts": rfc3339_ms(self.clock.wall_ms())}
        if self.recorder.walk_test:
            body["test"] = True  # the walk test's own book, not the site's open alarms
        payload = self.topics.head(SCHEMA_ALARMS) + json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:]
        self.recorder.board.set_retained(self.topics.alarms, payload.encode())

    # -- the book on disk --------------------------------------------------------------------------------------

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            data = load_json(self.path)
            self.alarms = {a["id"]: Alarm(**a) for a in data}
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # The conditions still active are raised again by their devices at start; what is lost is the
            # acknowledgement state of alarms already cleared.
            log.error("%s: unreadable (%s): the alarm book starts empty", self.path, exc)
            self.alarms = {}

    def _save(self) -> None:
        if self.path is None:
            return
        save_json(self.path, [asdict(a) for a in self.alarms.values()], "the alarm book")
