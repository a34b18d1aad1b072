"""The site's modes: the lockdown (封闭管理, an intruder), the closed campus of the school-hours schedule, and the
confirmed fire. Site mode owns them, keeps them across restarts (state_dir/modes.json, state_dir/fire-sources.json)
and records their changes as events. The lanes follow them through listeners, the doors and the guard's controls
read them. It knows nothing of the lanes: modes.json also holds the lanes' intents, which the bollards hand it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from drivers.profile import Quality
from gateway.base.clock import Clock
from gateway.base.i18n import N_, both, tr
from gateway.base.statefile import load_json, save_json
from gateway.field.polling import PolledDevice
from gateway.safety.authority import Authority
from gateway.safety.fire import panel_reset_seen
from gateway.safety.schedule import Schedule
from gateway.store.recorder import Recorder
from gateway.store.records import Event, EventState, Stamp

log = logging.getLogger(__name__)

Intents = dict[str, list[tuple[str, Authority]]]
"""lane -> [(mode, authority)]: the modes that still want each lane up, kept in modes.json for the lanes."""
SchoolDay = Literal["begins", "ends"] | None
"""What a change of the schedule's verdict does to the school day: it begins or ends on a change of the last
*known* verdict, and neither while the clock is not synchronised."""


class Decided(Protocol):
    """What a follower of the lockdown decided (a lane's decision), in words for the guard."""

    def text(self, lang: str) -> str: ...


LockdownListener = Callable[[bool, Authority], Sequence[Decided]]
ClosedCampusListener = Callable[[bool | None, SchoolDay], None]
FireListener = Callable[[bool], None]


class SiteMode:
    """The lockdown, the closed campus and the confirmed fire of one site."""

    def __init__(
        self,
        recorder: Recorder,
        clock: Clock,
        panels: tuple[str, ...] = (),
        schedule: Schedule | None = None,
        gateway_id: str = "gateway",
        modes_file: Path | None = None,
        sources_file: Path | None = None,
    ) -> None:
        """`panels`: the fire panels (whose fire ends with a reset, not with the fire bit alone). `schedule`: the
        closed-campus hours. `modes_file` keeps the lockdown and the schedule's last known verdict across restarts,
        `sources_file` the fire sources still in fire."""
        self.recorder = recorder
        self.clock = clock
        self.schedule = schedule
        self.gateway_id = gateway_id
        self.modes_file = modes_file
        self.sources_file = sources_file
        self.lockdown: Authority | None = None  # who declared the lockdown in force; None: none
        self.closed_campus: bool | None = None  # None: not known (no schedule, or the clock is not synchronised)
        self._last_known: bool | None = None  # the schedule's last known verdict, kept across restarts
        self.fire = False
        self.on_lockdown: list[LockdownListener] = []  # each accepted declaration or end, with its authority
        self.on_closed_campus: list[ClosedCampusListener] = []  # each change of the verdict
        self.on_fire: list[FireListener] = []  # the confirmed fire begins or ends
        self._fires: dict[str, bool] = {}  # fire sources: panel or relay -> active; detectors counted apart
        self._detector_fires: set[str] = set()
        self._awaiting_reset: dict[str, int] = {}  # panels whose fire bit dropped -> polls since, not yet reset
        self._inconsistent: set[str] = set()  # panels reported as cleared without a reset
        self._panels = frozenset(panels)
        self._intents: Callable[[], Intents] = dict  # the lanes' intents, asked for at each save of modes.json
        self._restored_intents: Intents | None = {}
        recorder.on_events.append(self._fire_linkage)
        self._restore_sources()
        self._restore_modes()

    def keep_intents(self, intents: Callable[[], Intents]) -> Intents | None:
        """The lanes' intents live in modes.json beside the modes, in the format the file has always had: `intents`
        gives them at each save. Returns those the file held; None for a file without them, or an unreadable one
        (then the restored lockdown wants every lane it covers)."""
        self._intents = intents
        return self._restored_intents

    # -- lockdown ----------------------------------------------------------------------------------------------

    def set_lockdown(self, on: bool, source: Authority) -> tuple[bool, list[Decided]]:
        """Lockdown (封闭管理, an intruder), declared (`on`) or ended by `source`. Ending it takes at least the
        authority that declared it; declaring it again at a higher one makes it that authority's. The followers
        (the lanes) act on each accepted request. Returns (done, what the followers decided)."""
        if not on and self.lockdown is not None and source > self.lockdown:
            return False, []
        if on and self.lockdown is not None and self.lockdown <= source:
            return True, []  # already in force, declared at least as high
        was = self.lockdown
        self.lockdown = source if on else None
        decided: list[Decided] = []
        for listener in self.on_lockdown:
            decided.extend(listener(on, source))
        self._save_modes()
        if (was is None) == on:
            log.warning("lockdown %s by %s", "declared" if on else "ended", source.name.lower())
            detail: dict[str, str | int | float | bool | None] = {
                "source": source.name.lower(),
            }
            detail["text_en"], detail["text_zh"] = both(
                N_("lockdown declared: gates closed") if on else N_("lockdown ended")
            )
            self._site_event("lockdown", on, "warning" if on else "info", detail)
        return True, decided

    def _restore_modes(self) -> None:
        """The lockdown, the last known state of the schedule, and which lanes each mode still wants up, as they
        were before a restart (state_dir/modes.json): a lane the guard lowered during a lockdown stays lowered."""
        if self.modes_file is None:
            return
        try:
            source, last, intents = _parse_modes(load_json(self.modes_file))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # Unreadable: a lockdown may have been in force. Declared again, by the guard, to be safe: the gate
            # stays closed until a guard ends it.
            log.error("%s: unreadable (%s): lockdown assumed in force", self.modes_file, exc)
            source, last, intents = Authority.GUARD, None, None
        self.lockdown = source
        self._last_known = last
        self._restored_intents = intents
        if source is not None:
            log.warning("lockdown restored from %s", self.modes_file)

    def save_modes(self) -> None:
        """Write modes.json now: the lanes' intents changed."""
        self._save_modes()

    def _save_modes(self) -> None:
        if self.modes_file is None:
            return
        data = {
            "lockdown": self.lockdown.name.lower() if self.lockdown else None,
            "closed_campus_last": self._last_known,
            "intents": {
                lane: [[mode, source.name.lower()] for mode, source in wanted]
                for lane, wanted in self._intents().items()
            },
        }
        save_json(self.modes_file, data, "the modes")

    # -- the closed-campus schedule ----------------------------------------------------------------------------

    def apply_schedule(self, closed: bool | None) -> None:
        """The closed-campus schedule says the campus is now closed (True), open (False) or unknown (None: the
        clock is not synchronised; nothing moves, the school day's wishes wait, and doors armed by the schedule
        are not). The day begins and ends on changes of the last *known* state, kept across restarts: a gateway
        that was off, or unsynchronised, at the end of the day still lowers the lanes when it knows the time."""
        if closed == self.closed_campus:
            return
        was = self.closed_campus
        self.closed_campus = closed
        day: SchoolDay = None
        if closed is True and self._last_known is not True:
            day = "begins"
        elif closed is False and self._last_known is True:
            day = "ends"
        for listener in self.on_closed_campus:
            listener(closed, day)
        if closed is not None:
            self._last_known = closed
        self._save_modes()
        log.warning("closed-campus schedule: %s", {True: "closed", False: "open", None: "unknown"}[closed])
        if closed is not None or was is not None:
            words = {
                True: N_("school hours: campus closed"),
                False: N_("campus open"),
                None: N_("clock not synchronised: schedule suspended"),
            }
            en, zh = tr(words[closed], "en"), tr(words[closed], "zh-CN")
            detail: dict[str, str | int | float | bool | None] = {"text_en": en, "text_zh": zh}
            self._site_event("closed_campus", closed, "info", detail)

    async def follow_schedule(self) -> None:
        """Judge the schedule every second (on a synchronised clock only) until cancelled."""
        if self.schedule is None:
            return
        while True:
            closed = self.schedule.closed(datetime.now(UTC)) if self.clock.synced() else None
            self.apply_schedule(closed)
            await asyncio.sleep(1.0)

    def _site_event(
        self, point: str, value: bool | None, severity: str, detail: dict[str, str | int | float | bool | None]
    ) -> None:
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        state = "changed" if value is None else ("raised" if value else "cleared")
        quality = Quality.GOOD if value is not None else Quality.BAD
        event = Event("bollard", severity, state, self.gateway_id, point, value, quality, stamp, detail)  # type: ignore[arg-type]
        self.recorder.record([], [event])

    # -- the confirmed fire ------------------------------------------------------------------------------------

    def _fire_linkage(self, events: list[Event]) -> None:
        """A confirmed fire: a panel or its fire relay in fire, or two detectors (devices.md 4).

        A panel's fire ends only when its fire bit has dropped *and* it reports a reset (R2, R17): a panel whose
        fire bit drops without one is inconsistent, and the fire linkage stays on. A fire relay opening is the
        panel's reset (the relay follows its latched fire output).
        """
        changed = False
        for ev in events:
            if ev.cls != "fire" or ev.state not in ("raised", "cleared"):
                continue
            active = ev.state == "raised"
            if ev.point == "fire_alarm":  # a smoke detector's own alarm: one alone is not a confirmed fire
                before = set(self._detector_fires)
                (self._detector_fires.add if active else self._detector_fires.discard)(ev.device)
                changed |= before != self._detector_fires
            elif ev.point == "fire" and not active and ev.device in self._panels:
                pass  # a panel's fire ends in _panel_polled, with its reset
            elif self._fires.get(ev.device) != active:
                self._fires[ev.device] = active
                changed = True
        if changed:
            self._save_sources()
            self._update_fire()

    def _update_fire(self) -> None:
        confirmed = any(self._fires.values()) or len(self._detector_fires) >= 2
        # Once confirmed, the fire lasts while any source still reports it: one of two detectors clearing
        # does not end it.
        fire = confirmed or (self.fire and (any(self._fires.values()) or bool(self._detector_fires)))
        if fire != self.fire:
            self.fire = fire
            log.warning("fire linkage: fire %s", "confirmed" if fire else "over")
            for listener in self.on_fire:
                listener(fire)

    def on_poll(self, entry: PolledDevice) -> None:
        """A bus poller read a device: a fire panel's reset bit may end a fire whose fire bit has already dropped."""
        if entry.device.profile.model == "fire_panel":
            self._panel_polled(entry)

    def _panel_polled(self, entry: PolledDevice) -> None:
        """A panel in fire ends its fire here, on a poll that shows the fire bit clear *and* a reset: the reset bit,
        or no first-alarm point any more (a level the reset leaves, for panels whose reset bit is a short pulse).
        A fire bit clear without either, two polls running, is reported as inconsistent, and the fire stands."""
        name = entry.device.name
        values = entry.last_values
        if not self._fires.get(name) or values is None:
            return
        fire = values.get("fire")
        if fire is None or fire.quality is not Quality.GOOD or fire.value is not False:
            self._awaiting_reset.pop(name, None)  # in fire (again), or not readable: the fire stands, consistently
            return
        if panel_reset_seen(values):
            log.warning("fire linkage: panel %s reset", name)
            self._awaiting_reset.pop(name, None)
            if name in self._inconsistent:
                self._inconsistent.discard(name)
                self._inconsistency(name, False)
            self._fires[name] = False
            self._save_sources()
            self._update_fire()
            return
        self._awaiting_reset[name] = self._awaiting_reset.get(name, 0) + 1
        if self._awaiting_reset[name] == 2 and name not in self._inconsistent:
            self._inconsistent.add(name)
            self._save_sources()
            self._inconsistency(name, True)

    def _inconsistency(self, panel: str, raised: bool) -> None:
        """The panel's fire bit dropped without a reset: the fire stands until it is reset. Raised once per fire and
        cleared at the reset, as a warning the platform can act on (such a panel is misconfigured or faulty)."""
        if raised:
            log.warning("fire linkage: panel %s cleared its fire bit without a reset: fire kept", panel)
            en, zh = both(
                N_("the panel cleared its fire without a reset; fire linkage stays on until the panel is reset")
            )
        else:
            en, zh = both(N_("the panel was reset; fire linkage ended"))
        detail: dict[str, str | int | float | bool | None] = {"text_en": en, "text_zh": zh}
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        state: EventState = "raised" if raised else "cleared"
        event = Event("fire", "warning", state, panel, "inconsistent", raised, Quality.GOOD, stamp, detail)
        self.recorder.record([], [event])

    def _save_sources(self) -> None:
        """The fire sources in fire, so that a restart does not end a fire the panel never reset (R2, R17)."""
        if self.sources_file is None:
            return
        sources = {
            "in_fire": sorted(name for name, active in self._fires.items() if active),
            "inconsistent": sorted(self._inconsistent),
        }
        save_json(self.sources_file, sources, "the fire sources")

    def _restore_sources(self) -> None:
        if self.sources_file is None:
            return
        try:
            data = load_json(self.sources_file)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable (%s): the fire sources start clear", self.sources_file, exc)
            return
        if not isinstance(data, dict):
            return
        for name in data.get("in_fire", []):
            if isinstance(name, str) and name in self._panels:
                # A relay's fire is its contact's level, read again at start; a panel's waits for its reset.
                self._fires[name] = True
        # Said to the platform already: cleared at the reset, not raised again.
        self._inconsistent = {n for n in data.get("inconsistent", []) if isinstance(n, str) and self._fires.get(n)}
        if any(self._fires.values()):
            log.warning("fire linkage: panels still in fire (not reset) before the restart: %s", sorted(self._fires))
            self.fire = True  # the lanes take it up when they are built


def _parse_modes(data: Any) -> tuple[Authority | None, bool | None, Intents | None]:
    """modes.json: (the lockdown's authority, the schedule's last known verdict, lane -> [(mode, authority)])."""
    source = Authority[str(data["lockdown"]).upper()] if data.get("lockdown") else None
    last = data.get("closed_campus_last")
    if not (last is None or isinstance(last, bool)):
        raise ValueError(f"closed_campus_last: expected true, false or null, got {last!r}")
    raw = data.get("intents")
    if raw is None:
        return source, last, None
    intents = {str(lane): [(str(m), Authority[str(a).upper()]) for m, a in wanted] for lane, wanted in raw.items()}
    return source, last, intents
