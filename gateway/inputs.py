"""Contacts on GPIO pins turned into readings and events: doors, and a panel's trouble and fire relays."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from drivers.gpio import DebouncedInput
from drivers.profile import Quality
from gateway.clock import Clock
from gateway.config import GUARD_KINDS, GpioInputConfig
from gateway.recorder import Recorder
from gateway.records import Event, Reading, Stamp

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
        self.clock = clock
        self.inputs: dict[str, DebouncedInput] = {}
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
                self._report(cfg, active, mono, initial=False)

            inp = DebouncedInput(cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory)
            self.inputs[cfg.id] = inp
            self._report(cfg, inp.active, self.clock.mono(), initial=True)

    def _guard_input(self, cfg: GpioInputConfig) -> None:
        """A push button or key: only the press counts (a button held down at start is not a press)."""

        def changed(active: bool, _mono: float, cfg: GpioInputConfig = cfg) -> None:
            if active and self.on_guard is not None and cfg.lane is not None:
                log.info("guard input %s pressed (%s, lane %s)", cfg.id, cfg.kind, cfg.lane)
                self.on_guard(cfg.kind, cfg.lane)

        inp = DebouncedInput(cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory)
        self.inputs[cfg.id] = inp

    def _level_input(self, cfg: GpioInputConfig) -> None:
        """The lockdown key switch (its position counts, also at start) and request-to-exit buttons (a press)."""

        def changed(active: bool, mono: float, cfg: GpioInputConfig = cfg) -> None:
            log.info("input %s (%s) %s", cfg.id, cfg.kind, "active" if active else "released")
            if cfg.kind == "lockdown_key" and self.on_lockdown is not None:
                self.on_lockdown(active)
            elif cfg.kind == "rex" and active and self.on_rex is not None and cfg.door is not None:
                self.on_rex(cfg.door, mono)

        inp = DebouncedInput(cfg.id, cfg.pin, cfg.contact, cfg.debounce_ms / 1000, changed, self._pin_factory)
        self.inputs[cfg.id] = inp
        if cfg.kind == "lockdown_key" and inp.active and self.on_lockdown is not None:
            self.on_lockdown(True)

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
        for inp in self.inputs.values():
            inp.close()
