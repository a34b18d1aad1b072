"""Contacts on GPIO pins turned into readings and events: doors, and a panel's trouble and fire relays."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.gpio import DebouncedInput
from drivers.profile import Quality
from gateway.base.clock import Clock
from gateway.base.i18n import N_, both
from gateway.config import GUARD_KINDS, GpioInputConfig
from gateway.store.recorder import Recorder
from gateway.store.records import Detail, Event, EventState, Reading, Stamp

log = logging.getLogger(__name__)

_KINDS = {
    # kind: (profile name on the state board, point, event class, severity)
    "door": ("door_contact", "open", "door", "info"),
    "trouble_relay": ("trouble_relay", "trouble", "trouble", "warning"),
    "fire_relay": ("fire_relay", "fire", "fire", "alarm"),
}


@dataclass(slots=True)
class _Spell:
    """An unstable input: what it did since it was found so, and when it last moved (raw edge or change)."""

    changes: int
    edges: int
    last_mono: float
    timer: asyncio.TimerHandle | None = None


class ContactInputs:
    """All configured GPIO inputs, reporting through the recorder."""

    def __init__(self, configs: tuple[GpioInputConfig, ...], recorder: Recorder, clock: Clock, pin_factory: Any):
        self.recorder = recorder
        # The gate house's buttons and EFO key: called with (kind, lane) when one is pressed (see app.py).
        self.on_guard: Callable[[str, str], None] | None = None
        self.on_lockdown: Callable[[bool], None] | None = None  # the lockdown key switch: its level
        self.on_door: Callable[[str, bool, float, bool], None] | None = None  # (door, open, mono, initial)
        self.on_rex: Callable[[str, float], None] | None = None  # (door, mono) request to exit / access grant
        self.on_button: list[Callable[[str, bool], None]] = []  # (input, active) of buttons and keys: the walk test
        self.clock = clock
        self.inputs: dict[str, DebouncedInput] = {}
        self._changes: dict[str, deque[float]] = {}  # recent change times per stable input (R10)
        self._edges: dict[str, deque[float]] = {}  # and its recent raw edges, before the debounce
        self._spells: dict[str, _Spell] = {}  # the unstable inputs
        self._configs = configs
        self._pin_factory = pin_factory

    def start(self) -> None:
        """Claim the pins and report each input's level as it is now."""
        for cfg in self._configs:
            if cfg.kind in GUARD_KINDS:
                self._guard_input(cfg)
                continue
            if cfg.kind in ("lockdown_key", "rex"):
                self._level_input(cfg)
                continue
            profile = _KINDS[cfg.kind][0]
            self.recorder.board.register(cfg.id, profile, self.clock.wall_ms())

            def changed(active: bool, mono: float, cfg: GpioInputConfig = cfg) -> None:
                if self._chatter(cfg, mono):
                    return
                self._report(cfg, active, mono, initial=False)

            def edge(mono: float, cfg: GpioInputConfig = cfg) -> None:
                self._edge(cfg, mono)

            inp = DebouncedInput(
                cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory, on_edge=edge
            )
            self.inputs[cfg.id] = inp
            self._report(cfg, inp.active, self.clock.mono(), initial=True)

    def _guard_input(self, cfg: GpioInputConfig) -> None:
        """A push button or key: only the press counts (a button held down at start is not a press)."""

        def changed(active: bool, _mono: float, cfg: GpioInputConfig = cfg) -> None:
            for listener in self.on_button:
                listener(cfg.id, active)
            if active and self.on_guard is not None and cfg.lane is not None:
                log.info("guard input %s pressed (%s, lane %s)", cfg.id, cfg.kind, cfg.lane)
                self.on_guard(cfg.kind, cfg.lane)

        inp = DebouncedInput(cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory)
        self.inputs[cfg.id] = inp

    def _level_input(self, cfg: GpioInputConfig) -> None:
        """The lockdown key switch (its position counts, also at start) and request-to-exit buttons (a press)."""

        def changed(active: bool, mono: float, cfg: GpioInputConfig = cfg) -> None:
            log.info("input %s (%s) %s", cfg.id, cfg.kind, "active" if active else "released")
            for listener in self.on_button:
                listener(cfg.id, active)
            if cfg.kind == "lockdown_key" and self.on_lockdown is not None:
                self.on_lockdown(active)
            elif cfg.kind == "rex" and active and self.on_rex is not None and cfg.door is not None:
                self.on_rex(cfg.door, mono)

        inp = DebouncedInput(cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory)
        self.inputs[cfg.id] = inp
        if cfg.kind == "lockdown_key" and inp.active and self.on_lockdown is not None:
            self.on_lockdown(True)

    def _chatter(self, cfg: GpioInputConfig, mono: float) -> bool:
        """R10: an input changing more than `chatter_count` times in `chatter_window_s` is unstable (a loose
        contact, a door banging in the wind): one maintenance warning with the count instead of a flood, and its
        changes are not reported until it has been quiet for a window. A fire relay's changes always are: a fire is
        never held back. True: this change is not to be reported."""
        spell = self._spells.get(cfg.id)
        if spell is not None:
            spell.changes += 1
            spell.last_mono = max(spell.last_mono, mono)
        elif len(_recent(self._changes, cfg, mono)) > cfg.chatter_count:
            self._unstable(cfg, mono, N_("input unstable: changing too often"))
        else:
            return False
        return cfg.kind != "fire_relay"

    def _edge(self, cfg: GpioInputConfig, mono: float) -> None:
        """A raw edge, before the debounce. More than `chatter_edges` in `chatter_window_s` is unstable too: a
        contact that chatters faster than its debounce can settle (a failing reed, interference on a long cable)
        changes nothing after the debounce and would otherwise read good for ever."""
        spell = self._spells.get(cfg.id)
        if spell is not None:
            spell.edges += 1
            spell.last_mono = max(spell.last_mono, mono)
        elif len(_recent(self._edges, cfg, mono)) > cfg.chatter_edges:
            self._unstable(cfg, mono, N_("input unstable: the contact chatters faster than its debounce"))

    def _unstable(self, cfg: GpioInputConfig, mono: float, why: str) -> None:
        """The start of a spell: one warning with what the window counted, and the point's quality `bad` (its
        value cannot be trusted) until it has been quiet for a whole window."""
        window = cfg.chatter_window_s
        changes = sum(1 for t in self._changes.pop(cfg.id, ()) if mono - t <= window)
        edges = sum(1 for t in self._edges.pop(cfg.id, ()) if mono - t <= window)
        spell = _Spell(changes, edges, mono)
        self._spells[cfg.id] = spell
        self._unstable_event(cfg, spell, why)
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        self.recorder.record([Reading(cfg.id, _KINDS[cfg.kind][1], None, Quality.BAD, stamp)], [], cfg.id, True)
        spell.timer = asyncio.get_running_loop().call_later(cfg.chatter_window_s, self._quiet, cfg)

    def _quiet(self, cfg: GpioInputConfig) -> None:
        """Settled once nothing moved for a whole window; else look again when that window would end. One timer
        per spell, moved on at most once a window: a 1 kHz chatter does not re-arm a timer on every edge."""
        spell = self._spells[cfg.id]
        wait = spell.last_mono + cfg.chatter_window_s - self.clock.mono()
        if wait > 0:
            spell.timer = asyncio.get_running_loop().call_later(wait, self._quiet, cfg)
            return
        self._settled(cfg)

    def _settled(self, cfg: GpioInputConfig) -> None:
        """Quiet for a whole window: stable again. The warning clears with the spell's counts, and the level it
        settled on is reported as a change (a fire relay's, whose changes were reported all along, as a reading)."""
        spell = self._spells.pop(cfg.id)
        self._unstable_event(cfg, spell, None)
        inp = self.inputs.get(cfg.id)
        if inp is None:
            return
        if cfg.kind != "fire_relay":
            self._report(cfg, inp.active, self.clock.mono(), initial=False)
            return
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        self.recorder.record([Reading(cfg.id, "fire", inp.active, Quality.GOOD, stamp)], [], cfg.id, True)

    def _unstable_event(self, cfg: GpioInputConfig, spell: _Spell, why: str | None) -> None:
        """`why` None: the spell ended."""
        text_en, text_zh = both(why if why is not None else N_("input stable again"))
        detail: Detail = {
            "changes": spell.changes,
            "edges": spell.edges,
            "window_s": cfg.chatter_window_s,
            "text_en": text_en,
            "text_zh": text_zh,
        }
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        raised = why is not None
        state: EventState = "raised" if raised else "cleared"
        event = Event("maintenance", "warning", state, cfg.id, "unstable", raised, Quality.GOOD, stamp, detail)
        log.warning("input %s %s (%d changes, %d edges)", cfg.id, "unstable" if raised else "stable again",
                    spell.changes, spell.edges)  # fmt: skip
        self.recorder.record([], [event])

    def _report(self, cfg: GpioInputConfig, active: bool, mono: float, initial: bool) -> None:
        _profile, point, cls, severity = _KINDS[cfg.kind]
        # The edge happened at `mono`; wall time is taken now and moved back by the same amount.
        now_mono = self.clock.mono()
        at = Stamp(self.clock.wall_ms() - int((now_mono - mono) * 1000), mono, self.clock.synced())
        reading = Reading(cfg.id, point, active, Quality.GOOD, at)
        events = []
        was_active = self.recorder.memory is not None and self.recorder.memory.of(cfg.id).get(point) is True
        # At start: an active contact is reported, and so is one that closed while the gateway was not running.
        if not initial or active or was_active:
            state = "raised" if active else "cleared"
            events.append(Event(cls, severity, state, cfg.id, point, active, Quality.GOOD, at))  # type: ignore[arg-type]
        self.recorder.record([reading], events, cfg.id, True)
        if cfg.kind == "door" and self.on_door is not None:
            self.on_door(cfg.id, active, mono, initial)

    def close(self) -> None:
        """Release the pins."""
        for spell in self._spells.values():
            if spell.timer is not None:
                spell.timer.cancel()
        for inp in self.inputs.values():
            inp.close()

    def __enter__(self) -> ContactInputs:
        """`start()`; a pin that cannot be claimed releases the ones claimed before it."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recent(table: dict[str, deque[float]], cfg: GpioInputConfig, mono: float) -> deque[float]:
    """Add `mono` to the input's times in `table` and keep those of the last `chatter_window_s`."""
    seen = table.setdefault(cfg.id, deque())
    seen.append(mono)
    while seen and mono - seen[0] > cfg.chatter_window_s:
        seen.popleft()
    return seen
