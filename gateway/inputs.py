"""Contacts on GPIO pins turned into readings and events: doors, and a panel's trouble and fire relays."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from drivers.gpio import DebouncedInput
from drivers.profile import Quality
from gateway.clock import Clock
from gateway.config import GUARD_KINDS, GpioInputConfig
from gateway.i18n import N_, both
from gateway.recorder import Recorder
from gateway.records import Detail, Event, EventState, Reading, Stamp

log = logging.getLogger(__name__)

_KINDS = {
    # kind: (profile name on the state board, point, event class, severity)
    "door": ("door_contact", "open", "door", "info"),
    "trouble_relay": ("trouble_relay", "trouble", "trouble", "warning"),
    "fire_relay": ("fire_relay", "fire", "fire", "alarm"),
}


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
        self._changes: dict[str, deque[float]] = {}  # recent change times per input (R10)
        self._unstable: dict[str, int] = {}  # unstable inputs -> changes counted since
        self._quiet: dict[str, asyncio.TimerHandle] = {}
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

            inp = DebouncedInput(cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory)
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
        seen = self._changes.setdefault(cfg.id, deque())
        seen.append(mono)
        while seen and mono - seen[0] > cfg.chatter_window_s:
            seen.popleft()
        unstable = cfg.id in self._unstable
        if not unstable and len(seen) > cfg.chatter_count:
            self._unstable[cfg.id] = len(seen)
            self._unstable_event(cfg, True, len(seen))
            unstable = True
        elif unstable:
            self._unstable[cfg.id] += 1
        if not unstable:
            return False
        timer = self._quiet.pop(cfg.id, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._quiet[cfg.id] = loop.call_later(cfg.chatter_window_s, self._settled, cfg)
        return cfg.kind != "fire_relay"

    def _settled(self, cfg: GpioInputConfig) -> None:
        """Quiet for a whole window: stable again. The warning clears with the count, and the level it settled on
        is reported as a change."""
        self._quiet.pop(cfg.id, None)
        changes = self._unstable.pop(cfg.id, 0)
        self._changes.pop(cfg.id, None)
        self._unstable_event(cfg, False, changes)
        inp = self.inputs.get(cfg.id)
        if inp is not None and cfg.kind != "fire_relay":
            self._report(cfg, inp.active, self.clock.mono(), initial=False)

    def _unstable_event(self, cfg: GpioInputConfig, raised: bool, changes: int) -> None:
        text_en, text_zh = both(N_("input unstable: changing too often") if raised else N_("input stable again"))
        detail: Detail = {
            "changes": changes,
            "window_s": cfg.chatter_window_s,
            "text_en": text_en,
            "text_zh": text_zh,
        }
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        state: EventState = "raised" if raised else "cleared"
        event = Event("maintenance", "warning", state, cfg.id, "unstable", raised, Quality.GOOD, stamp, detail)
        log.warning("input %s %s (%d changes)", cfg.id, "unstable" if raised else "stable again", changes)
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
        for timer in self._quiet.values():
            timer.cancel()
        for inp in self.inputs.values():
            inp.close()
