"""The gateway's raise interlocks (R12): every condition that alone forbids commanding a bollard to rise.

This is layer 2 of the safety order, on top of the controller's own interlocks and below nothing: no command, from
the guard, the fire linkage, the platform or a schedule, is sent to raise a lane while any inhibit here holds. The
decision is a pure function of what the gateway last read and when, so each refusal can name its reasons in the
guard's language, and property tests can drive it through any sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.profile import PointValue, Quality, Value
from gateway.base.i18n import N_, tr


class Inhibit(StrEnum):
    """Why a raise is refused. The value is the stable code published with the refusal."""

    LOOP_OCCUPIED = "loop_occupied"
    LOOP_CLEARING = "loop_clearing"
    PHOTOCELL = "photocell_blocked"
    PRESSURE_EDGE = "pressure_edge"
    ESTOP = "estop"
    CONTROLLER_FAULT = "controller_fault"
    LOCAL_MODE = "local_mode"
    MANUAL_RELEASE = "manual_release"
    FIRE_HOLD_DOWN = "fire_hold_down"
    STATE_UNKNOWN = "state_unknown"
    SENSOR_UNKNOWN = "sensor_unknown"
    STALE_DATA = "stale_data"


# The guard reads these on the panel and the CLI (translated through the catalogue: gateway/i18n.py).
REASONS: dict[Inhibit, str] = {
    Inhibit.LOOP_OCCUPIED: N_("a vehicle is on the loop"),
    Inhibit.LOOP_CLEARING: N_("the loop cleared less than the clear delay ago"),
    Inhibit.PHOTOCELL: N_("the photocell is blocked"),
    Inhibit.PRESSURE_EDGE: N_("the pressure edge is active"),
    Inhibit.ESTOP: N_("the emergency stop is pressed"),
    Inhibit.CONTROLLER_FAULT: N_("the controller reports a fault"),
    Inhibit.LOCAL_MODE: N_("the controller is in local mode"),
    Inhibit.MANUAL_RELEASE: N_("the manual release is engaged"),
    Inhibit.FIRE_HOLD_DOWN: N_("fire hold-down is active on this lane"),
    Inhibit.STATE_UNKNOWN: N_("the bollard's state is unknown"),
    Inhibit.SENSOR_UNKNOWN: N_("a safety sensor could not be read"),
    Inhibit.STALE_DATA: N_("the controller's data is too old"),
}


def reason(inhibit: Inhibit, lang: str = "en") -> str:
    """The refusal's reason for a person, in zh-CN or English."""
    return tr(REASONS[inhibit], lang)


@dataclass(frozen=True, slots=True)
class InterlockSettings:
    """Per lane; defaults from devices.md 3.5 and R12."""

    loop_clear_delay_s: float = 1.0
    max_staleness_s: float = 1.0


@dataclass(frozen=True, slots=True)
class LaneView:
    """What the gateway last read of one lane's controller, and when (monotonic seconds)."""

    read_mono: float | None
    state: str | None  # the controller's state point; None when not read or not good
    fault_code: str | None
    loop_occupied: bool | None
    loop_cleared_mono: float | None  # when the loops last went from occupied to free
    photocell_blocked: bool | None
    pressure_edge: bool | None
    estop: bool | None
    local_mode: bool | None
    manual_release: bool | None
    fire_hold_down: bool
    limit_up: bool | None = None
    limit_down: bool | None = None
    lights: int | None = None  # the controller's lights register (None: it has none, e.g. dry contacts)


def raise_inhibits(view: LaneView, now: float, settings: InterlockSettings) -> list[Inhibit]:
    """Every inhibit that holds now, in a fixed order; empty means a raise may be commanded.

    Anything not known for certain counts against the raise: a sensor missing or read with bad quality is an
    inhibit of its own, and data older than `max_staleness_s` is no data.
    """
    found: list[Inhibit] = []
    if view.read_mono is None or view.state is None or view.state == "unknown" or not _limits_agree(view):
        found.append(Inhibit.STATE_UNKNOWN)
    elif now - view.read_mono > settings.max_staleness_s:
        found.append(Inhibit.STALE_DATA)
    sensors = (
        view.loop_occupied,
        view.photocell_blocked,
        view.pressure_edge,
        view.estop,
        view.local_mode,
        view.manual_release,
    )
    # A fault code that cannot be decoded is not "no fault".
    if view.read_mono is not None and (any(v is None for v in sensors) or view.fault_code is None):
        found.append(Inhibit.SENSOR_UNKNOWN)
    if view.loop_occupied:
        found.append(Inhibit.LOOP_OCCUPIED)
    elif view.loop_cleared_mono is not None and now - view.loop_cleared_mono < settings.loop_clear_delay_s:
        found.append(Inhibit.LOOP_CLEARING)
    if view.photocell_blocked:
        found.append(Inhibit.PHOTOCELL)
    if view.pressure_edge:
        found.append(Inhibit.PRESSURE_EDGE)
    if view.estop:
        found.append(Inhibit.ESTOP)
    if view.state == "fault" or view.fault_code not in (None, "none"):
        found.append(Inhibit.CONTROLLER_FAULT)
    if view.local_mode:
        found.append(Inhibit.LOCAL_MODE)
    if view.manual_release or view.state == "manual":
        found.append(Inhibit.MANUAL_RELEASE)
    if view.fire_hold_down:
        found.append(Inhibit.FIRE_HOLD_DOWN)
    return found


class LaneSensors:
    """Turns successive status reads of a controller (bollard_controller profile) into a LaneView.

    Keeps the one thing a single read cannot tell: when the loops last went free, for the clear delay.
    """

    def __init__(self) -> None:
        self._values: dict[str, PointValue] = {}
        self._read_mono: float | None = None
        self._occupied: bool | None = None
        self._cleared_mono: float | None = None

    def update(self, values: dict[str, PointValue], mono: float, started: float | None = None) -> None:
        """A good status read that ended at `mono` and began at `started` (its blocks are read one after the
        other). Each time is taken the safe way: the data is as old as the start (staleness), and loops seen
        free were free from the end (the clear delay)."""
        occupied = _any_active(values, "loop_a_occupied", "loop_b_occupied")
        if self._occupied is not False and occupied is False and self._read_mono is not None:
            self._cleared_mono = mono
        self._occupied = occupied
        self._values = values
        self._read_mono = mono if started is None else min(started, mono)

    def view(self, fire_hold_down: bool) -> LaneView:
        """The lane as last read."""
        return LaneView(
            read_mono=self._read_mono,
            state=_text(self._values.get("state")),
            fault_code=_text(self._values.get("fault_code")),
            loop_occupied=self._occupied,
            loop_cleared_mono=self._cleared_mono,
            photocell_blocked=_any_active(self._values, "photocell_blocked"),
            pressure_edge=_any_active(self._values, "pressure_edge_active"),
            estop=_any_active(self._values, "estop_pressed"),
            local_mode=_any_active(self._values, "local_mode"),
            manual_release=_any_active(self._values, "manual_release_engaged"),
            fire_hold_down=fire_hold_down,
            limit_up=_any_active(self._values, "limit_up"),
            limit_down=_any_active(self._values, "limit_down"),
            lights=_number(self._values.get("lights")),
        )


def _limits_agree(view: LaneView) -> bool:
    """A state of DOWN or UP counts only with its limit switch closed and the other open (R18): a controller that
    says DOWN after a restart, or with a stuck switch, is not believed."""
    if view.state == "down":
        return view.limit_down is True and view.limit_up is False
    if view.state == "up":
        return view.limit_up is True and view.limit_down is False
    return True


def _any_active(values: dict[str, PointValue], *names: str) -> bool | None:
    """True if any is active, False if all read good and inactive, None if any is missing or not good."""
    seen: list[Value] = []
    for name in names:
        pv = values.get(name)
        if pv is None or pv.quality is not Quality.GOOD:
            return None
        seen.append(pv.value)
    return any(bool(v) for v in seen)


def _number(pv: PointValue | None) -> int | None:
    if pv is None or pv.quality is not Quality.GOOD or not isinstance(pv.value, int):
        return None
    return pv.value


def _text(pv: PointValue | None) -> str | None:
    if pv is None or pv.quality is not Quality.GOOD or pv.value is None:
        return None
    return str(pv.value)
