"""R12: each raise inhibit alone blocks a raise and names itself, read from the simulated controller's registers."""

from __future__ import annotations

import pytest

from drivers.profile import PointValue, Quality, decode, load_profile
from gateway.safety.bollards.interlocks import Inhibit, InterlockSettings, LaneSensors, raise_inhibits, reason
from simulators.bollard import BollardSim, BollardState

SETTINGS = InterlockSettings(loop_clear_delay_s=1.0, max_staleness_s=1.0)
PROFILE = load_profile("bollard_controller")


def read(sim: BollardSim) -> dict[str, PointValue]:
    """What a status poll of the controller decodes to."""
    blocks = {}
    for b in PROFILE.blocks:
        words = sim.read(b.function, b.address, b.count)
        assert isinstance(words, list)
        blocks[b.name] = words
    return decode(PROFILE, blocks)


def lane(sim: BollardSim, at: float = 10.0) -> LaneSensors:
    sensors = LaneSensors()
    sensors.update(read(sim), at)
    return sensors


def test_interlocks_clear_lane_may_rise() -> None:
    """Down, every sensor free, no fault, fresh data: nothing inhibits."""
    assert raise_inhibits(lane(BollardSim()).view(fire_hold_down=False), 10.2, SETTINGS) == []


@pytest.mark.parametrize(
    ("inp", "inhibit"),
    [
        ("loop_a_occupied", Inhibit.LOOP_OCCUPIED),
        ("loop_b_occupied", Inhibit.LOOP_OCCUPIED),
        ("photocell_blocked", Inhibit.PHOTOCELL),
        ("pressure_edge_active", Inhibit.PRESSURE_EDGE),
        ("estop_pressed", Inhibit.ESTOP),
        ("local_mode", Inhibit.LOCAL_MODE),
        ("manual_release_engaged", Inhibit.MANUAL_RELEASE),
    ],
)
def test_interlocks_each_input_alone_blocks(inp: str, inhibit: Inhibit) -> None:
    """One field input active, everything else clear: the raise is refused for exactly that reason."""
    sim = BollardSim()
    sim.set_input(inp, True)
    assert raise_inhibits(lane(sim).view(fire_hold_down=False), 10.2, SETTINGS) == [inhibit]


def test_interlocks_controller_fault_blocks() -> None:
    """A controller in FAULT with a fault code refuses, naming the fault."""
    sim = BollardSim()
    sim.set_state(BollardState.FAULT)
    sim.fault_code = 5  # motor overcurrent
    assert raise_inhibits(lane(sim).view(fire_hold_down=False), 10.2, SETTINGS) == [Inhibit.CONTROLLER_FAULT]


def test_interlocks_fire_hold_down_blocks() -> None:
    """Fire linkage holds a fire lane down."""
    view = lane(BollardSim()).view(fire_hold_down=True)
    assert raise_inhibits(view, 10.2, SETTINGS) == [Inhibit.FIRE_HOLD_DOWN]


def test_interlocks_unknown_state_blocks() -> None:
    """After a controller restart the state is unknown until a limit is seen; never read at all likewise."""
    sim = BollardSim()
    sim.set_state(BollardState.UNKNOWN)
    assert raise_inhibits(lane(sim).view(fire_hold_down=False), 10.2, SETTINGS) == [Inhibit.STATE_UNKNOWN]
    never = LaneSensors().view(fire_hold_down=False)
    assert Inhibit.STATE_UNKNOWN in raise_inhibits(never, 10.2, SETTINGS)


def test_interlocks_stale_data_blocks() -> None:
    """A status older than max_staleness is no status."""
    view = lane(BollardSim(), at=10.0).view(fire_hold_down=False)
    assert raise_inhibits(view, 10.9, SETTINGS) == []
    assert raise_inhibits(view, 11.1, SETTINGS) == [Inhibit.STALE_DATA]


def test_interlocks_loop_clear_delay() -> None:
    """A vehicle leaves the loop: the raise stays refused for the clear delay, then is allowed."""
    sim = BollardSim()
    sim.set_input("loop_a_occupied", True)
    sensors = lane(sim, at=10.0)
    sim.set_input("loop_a_occupied", False)
    sensors.update(read(sim), 20.0)
    assert raise_inhibits(sensors.view(fire_hold_down=False), 20.5, SETTINGS) == [Inhibit.LOOP_CLEARING]
    sensors.update(read(sim), 21.0)  # a later poll, loop still free
    assert raise_inhibits(sensors.view(fire_hold_down=False), 21.01, SETTINGS) == []


def test_interlocks_unreadable_sensor_blocks() -> None:
    """A safety input read with bad quality is not taken as free."""
    values = read(BollardSim())
    values["photocell_blocked"] = PointValue(None, Quality.BAD)
    sensors = LaneSensors()
    sensors.update(values, 10.0)
    assert raise_inhibits(sensors.view(fire_hold_down=False), 10.1, SETTINGS) == [Inhibit.SENSOR_UNKNOWN]


def test_interlocks_several_at_once_are_all_named() -> None:
    """A guard sees every reason, not only the first."""
    sim = BollardSim()
    sim.set_input("loop_a_occupied", True)
    sim.set_input("photocell_blocked", True)
    found = raise_inhibits(lane(sim).view(fire_hold_down=True), 10.2, SETTINGS)
    assert found == [Inhibit.LOOP_OCCUPIED, Inhibit.PHOTOCELL, Inhibit.FIRE_HOLD_DOWN]


@pytest.mark.parametrize("inhibit", list(Inhibit))
def test_interlocks_every_reason_in_both_languages(inhibit: Inhibit) -> None:
    """Guards read zh-CN first: every reason has both texts, and the Chinese one is Chinese."""
    assert reason(inhibit, "en")
    zh = reason(inhibit, "zh-CN")
    assert zh != reason(inhibit, "en")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)


def test_interlocks_state_needs_its_limit_switch() -> None:
    """A controller that says DOWN without its lower limit closed (a stuck switch, a restart) is not believed."""
    sim = BollardSim()
    sim.set_state(BollardState.DOWN)
    sim.mech.limit_down_stuck_open = True
    sim.set_input("limit_down", False)
    assert raise_inhibits(lane(sim).view(fire_hold_down=False), 10.2, SETTINGS) == [Inhibit.STATE_UNKNOWN]


def test_interlocks_time_a_read_the_safe_way() -> None:
    """A read that began at 10.0 and ended at 10.5: its data is as old as 10.0 for staleness, and loops it saw
    free were free only from 10.5 for the clear delay."""
    sim = BollardSim()
    sim.set_input("loop_a_occupied", True)
    sensors = LaneSensors()
    sensors.update(read(sim), 9.0)
    sim.set_input("loop_a_occupied", False)
    sensors.update(read(sim), 10.5, started=10.0)
    view = sensors.view(fire_hold_down=False)
    assert view.read_mono == 10.0
    assert view.loop_cleared_mono == 10.5
    assert raise_inhibits(view, 11.2, SETTINGS) == [Inhibit.STALE_DATA, Inhibit.LOOP_CLEARING]
