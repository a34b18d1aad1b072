"""A lane whose controller is wired by dry contacts: the gateway gives the pre-warning (R13), pulses the command
relays, and works out the lane's state from the limit switches and what it last commanded.

To the supervisor it looks like a Modbus controller: the same status point names, the same requests. It runs as
a step function on the monotonic clock (`step(now)` every `poll_s`), so a pulse or a pre-warning lasts at least its
time and at most one step more, and tests drive it on an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from drivers.dry_contact import INPUTS, DryContactController
from drivers.profile import PointValue, Quality

log = logging.getLogger(__name__)

PRESENCE = ("loop_a_occupied", "loop_b_occupied", "photocell_blocked", "pressure_edge_active")
_STOPPERS = ("estop_pressed", "local_mode", "manual_release_engaged")
_MOTION_RELAY = {"cmd_raise": "raise", "cmd_lower": "lower", "cmd_stop": "stop", "cmd_efo": "efo"}
_MOVING_STATE = {"raise": "rising", "lower": "lowering", "efo": "efo_rising", "stop": "stopped_mid"}


@dataclass(frozen=True, slots=True)
class DryContactTiming:
    """Per lane, from the configuration."""

    pre_warn_s: float = 1.0  # lights and buzzer before the raise relay closes (devices.md 3.5: at least 1 s)
    pulse_s: float = 0.5  # how long a command relay stays closed
    poll_s: float = 0.05


class DryContactLane:
    """The status source and the actuator of one dry-contact lane.

    `on_status(values, now)` is the supervisor's; the lane calls it after every step with what it read.
    """

    def __init__(
        self,
        lane: str,
        controller: DryContactController,
        timing: DryContactTiming,
        mono: Callable[[], float],
    ) -> None:
        self.lane = lane
        self.controller = controller
        self.timing = timing
        self.mono = mono
        self.on_status: Callable[[dict[str, PointValue], float], None] | None = None
        self._motion: str | None = None  # the last command pulsed; None: nothing since start, or arrived
        self._raise_at: float | None = None  # a pre-warning is running; the raise relay closes then
        self._pulse_until: dict[str, float] = {}
        self._at_limit: str | None = None  # "up"/"down": where it last rested, to see it leave by itself
        self._left = False  # the commanded motion has left its starting limit
        self._drift = False  # it left the upper limit by itself: a fault until the next command
        self._pending: tuple[str, float] | None = None  # a relay waiting for the dead time after another
        self._warning_since = 0.0
        self.withheld = 0  # raises not pulsed because presence appeared at the end of the pre-warning

    # -- the actuator ----------------------------------------------------------------------------------------------

    def send(self, request: str) -> None:
        """A request from the supervisor. A raise starts the pre-warning; anything else cancels a pending raise."""
        now = self.mono()
        if request == "cmd_raise":
            if self._raise_at is None:
                self._raise_at = now + self.timing.pre_warn_s
                self._warning_since = now
                self.controller.set_relay("warning", True)
            return
        self._raise_at = None
        relay = _MOTION_RELAY[request]
        if relay not in self.controller.relays:
            log.error("lane %s: %s: the controller has no %s terminal wired", self.lane, request, relay)
            return
        self._pulse(relay, now)

    def _pulse(self, relay: str, now: float) -> None:
        """Close a command relay for `pulse_s`. Another one still closed is opened first, and this one closes a
        step later: mechanical relays need that dead time so that two terminals are never closed together."""
        others = [r for r in ("raise", "lower", "stop", "efo") if r != relay and r in self._pulse_until]
        for other in others:
            del self._pulse_until[other]
            self.controller.set_relay(other, False)
        if others:
            self._pending = (relay, now + self.timing.poll_s)
        else:
            self._pending = None
            self.controller.set_relay(relay, True)
            self._pulse_until[relay] = now + self.timing.pulse_s
        self._motion = relay
        self._left = False
        self._drift = False
        self._at_limit = None
        self.controller.set_relay("warning", relay in ("raise", "lower", "efo"))

    # -- the status ------------------------------------------------------------------------------------------------

    def step(self, now: float) -> dict[str, PointValue]:
        """Release finished pulses, end a pre-warning, read the contacts, and hand the status to the supervisor."""
        for relay, until in list(self._pulse_until.items()):
            if now >= until:
                del self._pulse_until[relay]
                self.controller.set_relay(relay, False)
        if self._pending is not None and now >= self._pending[1]:
            relay = self._pending[0]
            self._pending = None
            self.controller.set_relay(relay, True)
            self._pulse_until[relay] = now + self.timing.pulse_s
        levels = self.controller.read()
        if self._raise_at is not None and now >= self._raise_at:
            self._raise_at = None
            # A last look before the move: what came after the last status read. And the warning must have been
            # on the whole pre-warning (it is not, after a restart of this task).
            blocked = [name for name in (*PRESENCE, *_STOPPERS) if levels.get(name)]
            if levels.get("limit_up") and levels.get("limit_down"):
                blocked.append("both_limits")
            warned = self.controller.relay_is_on("warning") and now - self._warning_since >= self.timing.pre_warn_s
            if blocked or not warned:
                self.withheld += 1
                self.controller.set_relay("warning", False)
                why = ", ".join(blocked) or "the warning was not on for the whole pre-warning"
                log.warning("lane %s: raise withheld at the end of the pre-warning: %s", self.lane, why)
            else:
                self._pulse("raise", now)
        values = self._status(levels)
        if self.on_status is not None:
            self.on_status(values, now)
        return values

    def _status(self, levels: dict[str, bool]) -> dict[str, PointValue]:
        up = levels["limit_up"]
        down = levels["limit_down"]
        fault = "none"
        if up and down:
            state, fault = "fault", "both_limits"
        elif up or down:
            state = "up" if up else "down"
            arrived = (up and self._motion in ("raise", "efo")) or (down and self._motion == "lower")
            if self._motion is None or self._motion == "stop" or arrived or self._left:
                # At rest here: where it was sent, at the other end (the controller reversed it), or never moved.
                self._motion = None
                self._at_limit = state
            # else: commanded away from this limit and not gone yet (the relay just closed): still where it was.
            if self._drift:
                state, fault = "fault", "drift_down"  # latched until a command: a leaking valve is not healed
        elif self._motion is not None:
            self._left = True
            state = _MOVING_STATE[self._motion]
        elif self._drift or self._at_limit == "up":
            # Left the upper limit with no command from us: a leaking valve, a hand pump (devices.md 3.7, fault 4).
            self._drift = True
            state, fault = "fault", "drift_down"
        elif self._at_limit == "down":
            # Left the lower limit with no command from us: the controller's own button or an automatic re-rise.
            # Taken as a rise, so the supervisor watches it like one (presence sends it down).
            state = "rising"
        else:
            state = "unknown"  # nothing commanded since start and between the limits: not known (R18)
        warning = self._raise_at is not None or (self._motion in ("raise", "lower", "efo") and state != "fault")
        if self.controller.relay_is_on("warning") != warning:
            self.controller.set_relay("warning", warning)
        values = {name: PointValue(bool(levels.get(name, False)), Quality.GOOD) for name in INPUTS}
        values["state"] = PointValue(state, Quality.GOOD)
        values["fault_code"] = PointValue(fault, Quality.GOOD)
        return values

    async def run(self) -> None:
        """Step every `poll_s` until cancelled; every relay is released on the way out."""
        try:
            while True:
                self.step(self.mono())
                await asyncio.sleep(self.timing.poll_s)
        finally:
            # Everything released, and nothing remembered that could act later: a raise waiting for its pre-warning
            # is dropped, and the lane is unknown until a limit switch is read again (R18).
            for relay in self.controller.relays:
                self.controller.set_relay(relay, False)
            self._raise_at = None
            self._pending = None
            self._pulse_until.clear()
            self._motion = None
            self._at_limit = None
