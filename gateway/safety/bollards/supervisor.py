"""One lane's supervisor: decides every command against the interlocks and the order of authority, and watches
the motion it started (R12-R17).

It is a state machine driven from outside: `on_status()` with each status read of the controller, `request()` with
each command, `set_fire()` from the fire linkage, all with the monotonic time they happened. What it wants done
to the controller goes to an `Actuator`; what it decided goes to the `decisions` listeners (the audit trail). It
keeps no queue: a command is carried out at once or refused, so nothing is ever replayed late (R18).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from drivers.profile import PointValue
from gateway.base.i18n import N_, tr
from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import Inhibit, InterlockSettings, LaneSensors, LaneView, raise_inhibits, reason

# A controller that has not left DOWN this long after a raise request refused it: longer than its pre-warning
# (1 s) and the longest a raise may wait for the bus before the actuator drops it (about 2 s).
START_GRACE_S = 3.5
WARNING_LIGHTS = 0b1100  # flasher and buzzer bits of the controller's lights register (devices.md 3.7)
FIRE_RESEND_S = 1.0
INTENT_RETRY_S = 10.0  # a mode's raise that did not happen is tried again at most this often


class Command(StrEnum):
    """What may be asked of a lane. EFO is not here: it never comes from the supervisor's askers (R16)."""

    RAISE = "raise"
    LOWER = "lower"
    STOP = "stop"
    RELEASE_FIRE_HOLD = "release_fire_hold"  # a guard, locally, after the panel is reset


class Rule(StrEnum):
    """The rule that decided; published with every decision."""

    ACCEPTED = "accepted"
    INTERLOCK = "interlock"
    FIRE_HOLD_DOWN = "fire_hold_down"
    OUTRANKED = "outranked"
    NOT_LOCAL = "not_local"
    EXPIRED = "expired"
    FIRE_NOT_RESET = "fire_not_reset"
    PRESENCE_DURING_RISE = "presence_during_rise"
    MOTION_TIMEOUT = "motion_timeout"
    STALE_DURING_RISE = "stale_during_rise"
    CONTROLLER_REFUSED = "controller_refused"
    NOT_FROM_STATE = "not_from_state"
    FIRE_LANE_NOT_DOWN = "fire_lane_not_down"
    MODE_HOLDS_UP = "mode_holds_up"
    NOT_DELIVERED = "not_delivered"
    WARNING_FAILED = "warning_failed"
    CONTROLLER_FAULT = "controller_fault"
    CONTROLLER_STOPPED = "controller_stopped"
    CONTROLLER_LOCAL = "controller_local"


# A rise the supervisor or the controller ended for a safety reason: no mode tries it again.
RISE_FAILED = frozenset(
    {
        Rule.PRESENCE_DURING_RISE, Rule.MOTION_TIMEOUT, Rule.STALE_DURING_RISE, Rule.CONTROLLER_REFUSED,
        Rule.NOT_DELIVERED, Rule.WARNING_FAILED, Rule.CONTROLLER_FAULT, Rule.CONTROLLER_STOPPED,
    }
)  # fmt: skip


class Actuator(Protocol):
    """Sends a request to the controller (Modbus coils, or GPIO relays on a dry-contact controller)."""

    def send(self, request: str) -> None:
        """`cmd_raise`, `cmd_lower`, `cmd_stop`, or `cmd_efo` (only ever from a local key, see emergency_rise)."""


@dataclass(frozen=True, slots=True)
class LaneSettings:
    """Per lane, from the site configuration."""

    fire_lane: bool = False
    rise_timeout_s: float = 10.0  # from the raise request to the upper limit, pre-warning included
    lower_timeout_s: float = 8.0
    command_ttl_s: float = 5.0
    start_grace_s: float = START_GRACE_S  # a dry-contact lane adds its own pre-warning to this
    interlocks: InterlockSettings = field(default_factory=InterlockSettings)


@dataclass(frozen=True, slots=True)
class Intent:
    """A standing wish that a lane be up, held by a mode (lockdown, the closed-campus schedule) for as long as the
    mode lasts. It is not a queued command: each try is decided afresh, against the interlocks of that moment."""

    mode: str
    source: Authority


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided, why, and for whom: one line of the audit trail."""

    lane: str
    command: str
    source: Authority | None  # None: the supervisor's own action
    accepted: bool
    rule: Rule
    reasons: tuple[Inhibit, ...] = ()
    at: float = 0.0

    def text(self, lang: str = "en") -> str:
        """The decision in words for the guard."""
        why = "; ".join(reason(i, lang) for i in self.reasons)
        if not why and self.rule in RULE_TEXTS:
            why = tr(RULE_TEXTS[self.rule], lang)
        verdict = tr(N_("done") if self.accepted else N_("refused"), lang)
        command = tr(COMMAND_WORDS[self.command], lang) if self.command in COMMAND_WORDS else self.command
        return tr("{lane}: {command} {verdict}", lang, lane=self.lane, command=command, verdict=verdict) + (
            f" ({why})" if why else ""
        )


# Why a decision went as it did, when no interlock says it (words from shared/domain/glossary.md).
RULE_TEXTS = {
    Rule.CONTROLLER_REFUSED: N_("the controller refused"),
    Rule.FIRE_HOLD_DOWN: N_("fire hold-down"),
    Rule.NOT_FROM_STATE: N_("cannot rise from this state (lower fully or stop first)"),
    Rule.FIRE_LANE_NOT_DOWN: N_("fire lane not down during a fire: lowering again"),
    Rule.NOT_DELIVERED: N_("the command did not reach the controller"),
    Rule.WARNING_FAILED: N_("warning lights or buzzer not working: lowered"),
    Rule.CONTROLLER_FAULT: N_("controller fault: rise stopped"),
    Rule.CONTROLLER_STOPPED: N_("the controller stopped the rise (emergency stop or local stop)"),
    Rule.CONTROLLER_LOCAL: N_("the controller is in local mode and takes no remote commands"),
    Rule.MODE_HOLDS_UP: N_("lockdown or school hours hold it up: a higher authority (the guard) must lower it"),
    Rule.EXPIRED: N_("the command expired"),
    Rule.OUTRANKED: N_("during a fire only the guard's commands are taken"),
    Rule.NOT_LOCAL: N_("only at the gate house"),
    Rule.FIRE_NOT_RESET: N_("the fire is not reset yet"),
    Rule.PRESENCE_DURING_RISE: N_("vehicle or person detected during the rise: lowered"),
    Rule.MOTION_TIMEOUT: N_("motion timed out: stopped"),
    Rule.STALE_DURING_RISE: N_("the controller could not be read during the rise: lowered"),
}
STATE_WORDS = {  # the controller's states (devices.md 3.7), as the guard reads them
    "unknown": N_("state unknown"),
    "down": N_("down"),
    "rising": N_("rising"),
    "up": N_("up"),
    "lowering": N_("lowering"),
    "stopped_mid": N_("stopped midway"),
    "fault": N_("fault"),
    "manual": N_("manual release"),
    "efo_rising": N_("emergency fast rise"),
}
COMMAND_WORDS = {
    "raise": N_("raise"),
    "lower": N_("lower"),
    "stop": N_("stop"),
    "release_fire_hold": N_("release fire hold"),
    "efo": N_("emergency fast operation"),
}


class LaneSupervisor:
    """The gateway's layer of the safety order for one lane."""

    def __init__(self, lane: str, settings: LaneSettings, actuator: Actuator) -> None:
        self.lane = lane
        self.settings = settings
        self.actuator = actuator
        self.sensors = LaneSensors()
        self.decisions: list[Callable[[Decision], None]] = []
        self.fire_active = False
        self.fire_hold = False  # fire lanes: set by a fire, cleared by reset *and* a guard's release
        self._raising_since: float | None = None  # a raise we asked for and have not seen finish
        self._lowering_since: float | None = None
        self.last_decision: Decision | None = None
        self._fire_lower_sent = -1e9
        self._fire_lane_warned = False
        self.intents: dict[str, Intent] = {}
        self.on_intents: list[Callable[[], None]] = []  # the modes wanting this lane up changed
        self.paused: set[str] = set()
        self._rise_seen = False  # the rise being watched was seen moving (so a stop mid-way is the controller's)
        self._intent_next_try = 0.0

    # -- inputs ----------------------------------------------------------------------------------------------------

    def on_status(self, values: dict[str, PointValue], now: float, started: float | None = None) -> None:
        """A status read of the controller that ended `now` (and began at `started`): supervise what is moving."""
        self.sensors.update(values, now, started)
        view = self.sensors.view(self.fire_hold)
        if self._raising_since is None and view.state in ("rising", "efo_rising"):
            # A rise the gateway did not start (the controller's own button, an auto re-rise, a late command):
            # supervised all the same.
            self._raising_since = now
            self._rise_seen = False
        if self._raising_since is not None and view.state in ("rising", "efo_rising"):
            self._rise_seen = True
        if self._raising_since is not None:
            presence = [
                i
                for i in raise_inhibits(view, now, self.settings.interlocks)
                if i in (Inhibit.LOOP_OCCUPIED, Inhibit.PHOTOCELL, Inhibit.PRESSURE_EDGE, Inhibit.SENSOR_UNKNOWN)
            ]
            if presence:
                # Within this poll: whatever the controller does by itself, we send it down (R15).
                self._raising_since = None
                self.actuator.send("cmd_lower")
                self._decide("lower", None, True, Rule.PRESENCE_DURING_RISE, presence, now)
            elif view.state == "up":
                self._raising_since = None
            elif view.state == "rising" and view.lights is not None and view.lights & WARNING_LIGHTS != WARNING_LIGHTS:
                # Rising (or about to) without the flasher and buzzer (R13): a dead lamp, a broken output. Down,
                # the safe direction, before anyone is surprised by it.
                self._raising_since = None
                self.actuator.send("cmd_lower")
                self._decide("lower", None, True, Rule.WARNING_FAILED, (), now)
            elif view.state in ("fault", "manual"):
                # The controller stopped the motion itself (a trip, a limit fault, the manual release): the rise is
                # over, the fault is its to report and the operator's to clear; nothing is retried.
                self._raising_since = None
                self.actuator.send("cmd_stop")
                self._decide("raise", None, False, Rule.CONTROLLER_FAULT, _stopping(view), now)
            elif view.state == "stopped_mid" and self._rise_seen:
                # It was rising and stopped by itself: the e-stop, a stop at the controller.
                self._raising_since = None
                self._decide("raise", None, False, Rule.CONTROLLER_STOPPED, _stopping(view), now)
            elif view.state in ("down", "stopped_mid") and now - self._raising_since > self.settings.start_grace_s:
                # Asked to rise and did not start: the controller's own interlocks said no (layer 1). A stop
                # cancels the request, so it cannot start later.
                self._raising_since = None
                self.actuator.send("cmd_stop")
                self._decide("raise", None, False, Rule.CONTROLLER_REFUSED, (), now)
            elif now - self._raising_since > self.settings.rise_timeout_s:
                self._raising_since = None
                self.actuator.send("cmd_stop")
                self._decide("stop", None, True, Rule.MOTION_TIMEOUT, (), now)
        if self.fire_hold and self.settings.fire_lane and view.state not in ("down", "lowering"):
            # A fire lane must come down: the lowering is asked for again, once a second, for as long as it is
            # not down or on its way (a lost write, a controller that was rebooting, a stop from elsewhere).
            if now - self._fire_lower_sent >= FIRE_RESEND_S:
                self._fire_lower_sent = now
                self._lowering_since = now
                self.actuator.send("cmd_lower")
                if not self._fire_lane_warned:
                    self._fire_lane_warned = True
                    self._decide("lower", Authority.FIRE, True, Rule.FIRE_LANE_NOT_DOWN, (), now)
        elif view.state == "down":
            self._fire_lane_warned = False
        if self._lowering_since is not None:
            if view.state == "down":
                self._lowering_since = None
            elif self.fire_hold and self.settings.fire_lane:
                pass  # a slow fire lowering is never stopped
            elif now - self._lowering_since > self.settings.lower_timeout_s:
                self._lowering_since = None
                self.actuator.send("cmd_stop")
                self._decide("stop", None, True, Rule.MOTION_TIMEOUT, (), now)
        self._pursue(now)

    def not_delivered(self, request: str, now: float) -> None:
        """A request that never reached the controller: the bus failed, or a raise waited too long for it and was
        dropped. Said in the audit trail after the acceptance it follows; a rise that cannot happen is no longer
        watched for (a lost lowering of a fire lane is asked for again by `on_status`)."""
        command = request.removeprefix("cmd_")
        if request in ("cmd_raise", "cmd_efo"):
            self._raising_since = None
        elif request == "cmd_lower":
            self._lowering_since = None
        self._decide(command, None, False, Rule.NOT_DELIVERED, (), now)

    def check_staleness(self, now: float) -> None:
        """Between status reads: a rise we cannot see is a rise we stop (lowering is the safe direction)."""
        if self._raising_since is None:
            return
        view = self.sensors.view(self.fire_hold)
        if view.read_mono is None or now - view.read_mono > self.settings.interlocks.max_staleness_s:
            self._raising_since = None
            self.actuator.send("cmd_lower")
            self._decide("lower", None, True, Rule.STALE_DURING_RISE, (Inhibit.STALE_DATA,), now)

    def set_fire(self, active: bool, now: float) -> None:
        """Fire linkage: a confirmed fire lowers a fire lane and holds it; the end of the fire alone does not
        release it (R17)."""
        self.fire_active = active
        if active and self.settings.fire_lane:
            self.fire_hold = True
            self._raising_since = None
            self._lowering_since = now
            self._fire_lower_sent = now
            # Lowering is the safe direction: no presence or interlock holds it back.
            self.actuator.send("cmd_lower")
            self._decide("lower", Authority.FIRE, True, Rule.ACCEPTED, (), now)

    # -- modes -----------------------------------------------------------------------------------------------------

    def intent(self) -> Intent | None:
        """The mode that wants this lane up, of the highest authority; None when none does (paused modes, such as
        school hours on a clock that lost its synchronisation, wait)."""
        active = [i for i in self.intents.values() if i.mode not in self.paused]
        return min(active, key=lambda i: i.source, default=None)

    def hold_up(self, mode: str, source: Authority, now: float) -> Decision | None:
        """A mode begins that wants this lane up. The first try is decided and published now (a refusal names its
        reasons); later tries, once the reasons are gone, come from the status reads."""
        self.intents[mode] = Intent(mode, source)
        for listener in self.on_intents:
            listener()
        if self.sensors.view(self.fire_hold).state in ("up", "rising", "efo_rising") or self._raising_since is not None:
            return None
        decision = self.request(Command.RAISE, source, now)
        # Refused for an interlock: tried again as soon as it is gone. Accepted, or refused otherwise: not before
        # the retry time, so a controller that will not rise is not asked every poll.
        self._intent_next_try = now if decision.rule in (Rule.INTERLOCK, Rule.NOT_FROM_STATE) else now + INTENT_RETRY_S
        return decision

    def end_mode(self, mode: str, now: float, lower: bool = False) -> Decision | None:
        """A mode ends. With `lower` (the end of school hours) the lane is lowered by that mode, unless another
        mode still wants it up; the end of a lockdown leaves the lane where it is, for the guard to decide."""
        ended = self.intents.pop(mode, None)
        if ended is not None:
            for listener in self.on_intents:
                listener()
        if ended is None or not lower or self.intents:
            return None
        return self.request(Command.LOWER, ended.source, now)

    def _drop_intents(self, modes: list[str]) -> None:
        for mode in modes:
            del self.intents[mode]
        if modes:
            for listener in self.on_intents:
                listener()

    def retry_intent_at(self, when: float) -> None:
        """Try the intent again from `when` (a restored lockdown: at the first status read)."""
        self._intent_next_try = when

    def _pursue(self, now: float) -> None:
        """A mode wants the lane up and it is not: try again once nothing inhibits the raise. Quietly while
        something does: the first refusal was published, and the status shows the reasons."""
        intent = self.intent()
        if intent is None or now < self._intent_next_try:
            return
        if self._raising_since is not None or self._lowering_since is not None:
            return
        view = self.sensors.view(self.fire_hold)
        if view.state not in ("down", "stopped_mid") or (self.fire_hold and self.settings.fire_lane):
            return
        if self.fire_active and intent.source > Authority.FIRE:
            return
        if raise_inhibits(view, now, self.settings.interlocks):
            return
        self._intent_next_try = now + INTENT_RETRY_S
        self.request(Command.RAISE, intent.source, now)

    # -- commands --------------------------------------------------------------------------------------------------

    def request(self, command: Command, source: Authority, now: float, issued: float | None = None) -> Decision:
        """Decide one command now; carry it out if accepted."""
        if issued is not None and now - issued > self.settings.command_ttl_s:
            return self._decide(command.value, source, False, Rule.EXPIRED, (), now)
        if command is Command.RELEASE_FIRE_HOLD:
            if source is not Authority.GUARD:
                return self._decide(command.value, source, False, Rule.NOT_LOCAL, (), now)
            if self.fire_active:
                return self._decide(command.value, source, False, Rule.FIRE_NOT_RESET, (), now)
            self.fire_hold = False
            return self._decide(command.value, source, True, Rule.ACCEPTED, (), now)
        if self.fire_hold and self.settings.fire_lane and command is not Command.LOWER and source > Authority.FIRE:
            return self._decide(command.value, source, False, Rule.OUTRANKED, (Inhibit.FIRE_HOLD_DOWN,), now)
        intent = self.intent()
        if command is Command.LOWER and intent is not None and source > intent.source:
            # A lockdown set by the guard is not undone by the platform, nor the school day by anything lower.
            return self._decide(command.value, source, False, Rule.MODE_HOLDS_UP, (), now)
        if command in (Command.LOWER, Command.STOP) and intent is not None:
            # Someone at least as high wants it down or stopped it: those modes give up on this lane until they
            # begin again, so nothing raises it behind the guard's back. A stop from lower down is carried out (a
            # stop is always safe), but does not end a higher authority's mode.
            self._drop_intents([m for m, i in self.intents.items() if i.source >= source])
        if command is Command.STOP:
            self._raising_since = None
            self._lowering_since = None
            self.actuator.send("cmd_stop")
            return self._decide(command.value, source, True, Rule.ACCEPTED, (), now)
        if command is Command.LOWER and self.sensors.view(self.fire_hold).local_mode:
            # The controller takes no remote command in LOCAL: said now, not as a timeout later.
            return self._decide(command.value, source, False, Rule.CONTROLLER_LOCAL, (Inhibit.LOCAL_MODE,), now)
        if command is Command.LOWER:
            self._raising_since = None
            self._lowering_since = now
            self.actuator.send("cmd_lower")
            return self._decide(command.value, source, True, Rule.ACCEPTED, (), now)
        # RAISE
        if self.fire_hold and self.settings.fire_lane:
            return self._decide(command.value, source, False, Rule.FIRE_HOLD_DOWN, (Inhibit.FIRE_HOLD_DOWN,), now)
        if self.fire_active and source > Authority.FIRE:
            return self._decide(command.value, source, False, Rule.OUTRANKED, (), now)
        inhibits = raise_inhibits(self.sensors.view(self.fire_hold), now, self.settings.interlocks)
        if inhibits:
            return self._decide(command.value, source, False, Rule.INTERLOCK, inhibits, now)
        if self.sensors.view(self.fire_hold).state not in ("down", "stopped_mid"):
            return self._decide(command.value, source, False, Rule.NOT_FROM_STATE, (), now)
        self._lowering_since = None
        self._raising_since = now
        self._rise_seen = False
        self.actuator.send("cmd_raise")
        return self._decide(command.value, source, True, Rule.ACCEPTED, (), now)

    def emergency_rise(self, now: float) -> Decision:
        """EFO from the lane's local key: never reachable from `request` (R16). Presence still forbids it: loops and
        photocell inhibit even an emergency rise; the controller's own e-stop and faults too."""
        view = self.sensors.view(self.fire_hold)
        blocking = {Inhibit.LOOP_OCCUPIED, Inhibit.PHOTOCELL, Inhibit.PRESSURE_EDGE, Inhibit.SENSOR_UNKNOWN,
                    Inhibit.ESTOP, Inhibit.CONTROLLER_FAULT, Inhibit.STATE_UNKNOWN, Inhibit.STALE_DATA}  # fmt: skip
        inhibits = [i for i in raise_inhibits(view, now, self.settings.interlocks) if i in blocking]
        if inhibits:
            return self._decide("efo", Authority.GUARD, False, Rule.INTERLOCK, inhibits, now)
        self._lowering_since = None
        self._raising_since = now
        self._rise_seen = False
        self.actuator.send("cmd_efo")
        return self._decide("efo", Authority.GUARD, True, Rule.ACCEPTED, (), now)

    def _decide(
        self,
        command: str,
        source: Authority | None,
        accepted: bool,
        rule: Rule,
        reasons: Sequence[Inhibit],
        now: float,
    ) -> Decision:
        decision = Decision(self.lane, command, source, accepted, rule, tuple(reasons), now)
        self.last_decision = decision
        if rule in RISE_FAILED and self.intents:
            # A rise that ended for a safety reason is not tried again by a mode (R14, R15): the lane stays as it
            # is until a guard raises it or the mode begins anew.
            self._drop_intents(list(self.intents))
        for listener in self.decisions:
            listener(decision)
        return decision


def _stopping(view: LaneView) -> list[Inhibit]:
    """What the controller shows that explains a rise it ended itself."""
    found = []
    if view.estop:
        found.append(Inhibit.ESTOP)
    if view.manual_release or view.state == "manual":
        found.append(Inhibit.MANUAL_RELEASE)
    if view.state == "fault" or view.fault_code not in (None, "none"):
        found.append(Inhibit.CONTROLLER_FAULT)
    return found
