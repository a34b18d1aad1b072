"""Golden words per profile, written by hand from shared/domain/devices.md.

The same words are checked against the driver's decoder and against the simulator's register image, so one wrong
map cannot pass on both sides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ProfileError
from drivers.profile import Quality, decode, decode_point, load_profile, shipped_profiles
from gateway.config import parse_config
from simulators.bollard import BollardSim, BollardState
from simulators.devices import AnalogModuleSim, FirePanelSim, SmokeDetectorSim

# Fire panel in fire at point 102 with a backup power fault, automatic mode, event counter 3.
# Register 1 = GB 26875 system status: bit 0 normal, bit 1 fire, bit 9 backup power fault -> 0x0203.
PANEL_FIRE = [
    0x0100, 0x0203, 0x0003, 0x0001, 0x0000, 0x0000, 0x0000, 0x0000, 0x0066,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0002, 0x00F2,
]  # fmt: skip

# Smoke detector: 2.50 %/m (pre-alarm, bit 1) and dirty chamber (bit 4) -> 0x0012; 22.5 Cel; 24.000 V; mains only.
SMOKE_PREALARM_DIRTY = [0x0012, 250, 225, 24000, 0xFFFF, 5, 320, 2, 100, 0x2101, 0x0103]

# Bollard rising at 40 %, vehicle on loop A: inhibit bit 0; lights red + flasher + buzzer = 0b1101.
BOLLARD_RISING_DI = [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
BOLLARD_RISING_IR = [0x0100, 2, 0, 0x0001, 40, 4200, 0, 0, 0, 0, 250, 240, 2, 0, 0b1101]


# Door node (docs/firmware.md): door 1 shut (50.00 %), door 2 open (66.67 %), door 3 loop cut (100 %), point 4
# unused; config fault; two changes since start. The firmware's own tests hold the same words (firmware/tests).
DOOR_NODE_IR = [
    0x4401, 0x0100, 0x0100, 3, 0b0111, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 2, 4, 0,
    0, 1, 1, 0,
    5000, 6667, 10000, 0,
]  # fmt: skip
DOOR_NODE_DI = [0, 1, 0, 0, 0, 0, 1, 0, 1, 1]


def test_profile_door_node_golden_words_decode() -> None:
    """Door 2 open is a door bit, door 3 cut a tamper bit; levels in percent, the fourth point unused."""
    v = decode(load_profile("door_node"), {"inputs": DOOR_NODE_DI, "registers": DOOR_NODE_IR})
    assert [v[f"door{n}_state"].value for n in range(1, 5)] == ["normal", "open", "cut", "unused"]
    assert [v[f"door{n}_open"].value for n in range(1, 5)] == [False, True, False, False]
    assert [v[f"door{n}_tamper"].value for n in range(1, 5)] == [False, False, True, False]
    assert v["tamper"].value is True
    assert v["config_fault"].value is True
    assert v["watchdog_restart"].value is False
    assert v["door2_level"].value == 66.67
    assert v["door3_changes"].value == 1
    assert v["event_counter"].value == 2
    profile = load_profile("door_node")
    assert (profile.point("door1_open").event, profile.point("door1_tamper").event) == ("door", "tamper")


def test_profile_fire_panel_golden_words_decode() -> None:
    """The documented panel words decode to fire, backup power fault, first alarm point 102."""
    v = decode(load_profile("fire_panel"), {"summary": PANEL_FIRE})
    assert v["fire"].value is True
    assert v["normal"].value is True
    assert v["fault"].value is False
    assert v["backup_power_fault"].value is True
    assert v["main_power_fault"].value is False
    assert v["manual_mode"].value is False
    assert v["first_alarm_point"].value == 102
    assert v["points_per_loop"].value == 242


def test_profile_fire_panel_golden_words_match_simulator() -> None:
    """The simulator in the same situation answers the same words."""
    sim = FirePanelSim(loops=2, points_per_loop=242)
    sim.set(backup_power_fault=True)
    sim.alarm_point(102)
    sim.event_counter = 3
    assert sim.read(4, 0, 18) == PANEL_FIRE


def test_profile_smoke_detector_golden_words_decode() -> None:
    """Pre-alarm and dirty chamber flags, scaled obscuration, and the 'no battery' marker."""
    v = decode(load_profile("smoke_detector"), {"status": SMOKE_PREALARM_DIRTY})
    assert v["fire_alarm"].value is False
    assert v["prealarm"].value is True
    assert v["dirty_chamber"].value is True
    assert v["smoke_obscuration"].value == 2.5
    assert v["temperature"].value == 22.5
    assert v["supply"].value == 24.0
    assert v["battery"].value is None
    assert v["alarm_threshold"].value == 3.2


def test_profile_smoke_detector_golden_words_match_simulator() -> None:
    """The simulator with 2.5 %/m of smoke and a dirty chamber answers the same words (FC04 and FC03)."""
    sim = SmokeDetectorSim(threshold_pct_per_m=3.2)
    sim.set_smoke(2.5)
    sim.set(dirty_chamber=True)
    assert sim.read(4, 0, 11) == SMOKE_PREALARM_DIRTY
    assert sim.read(3, 0, 11) == SMOKE_PREALARM_DIRTY


def test_profile_bollard_golden_words_decode() -> None:
    """State 2 is rising; the loop input and the inhibit word agree."""
    v = decode(load_profile("bollard_controller"), {"inputs": BOLLARD_RISING_DI, "registers": BOLLARD_RISING_IR})
    assert v["state"].value == "rising"
    assert v["fault_code"].value == "none"
    assert v["loop_a_occupied"].value is True
    assert v["mains_ok"].value is True
    assert v["position"].value == 40
    assert v["oil_temperature"].value == 25.0


def test_profile_bollard_golden_words_match_simulator() -> None:
    """The simulator rising at 40 % with a vehicle on loop A answers the same bits and words."""
    sim = BollardSim()
    sim.set_input("loop_a_occupied", True)
    sim.set_state(BollardState.RISING, position=40)
    assert sim.read(2, 0, 13) == BOLLARD_RISING_DI
    assert sim.read(4, 0, 15) == BOLLARD_RISING_IR


@pytest.mark.parametrize("status", range(0x0000, 0x0200))
def test_profile_fire_panel_status_bits_round_trip(status: int) -> None:
    """Every GB 26875 status pattern 0x0000-0x01FF decodes to exactly its flags (R1)."""
    words = [0x0100, status] + [0] * 16
    v = decode(load_profile("fire_panel"), {"summary": words})
    names = ["normal", "fire", "fault", "shielded", "supervisory", "started", "feedback", "delay", "main_power_fault"]
    assert [v[n].value for n in names] == [bool(status >> bit & 1) for bit in range(9)]


def test_profile_out_of_range_value_is_bad_quality() -> None:
    """An obscuration beyond the documented 0-20 %/m is a quality flag, never a number (R8)."""
    words = list(SMOKE_PREALARM_DIRTY)
    words[1] = 5000
    v = decode(load_profile("smoke_detector"), {"status": words})
    assert v["smoke_obscuration"].value is None
    assert v["smoke_obscuration"].quality is Quality.BAD


def test_profile_unknown_enum_code_is_bad_quality() -> None:
    """A bollard state code outside the map is bad data, not a guess."""
    words = list(BOLLARD_RISING_IR)
    words[1] = 42
    v = decode(load_profile("bollard_controller"), {"inputs": BOLLARD_RISING_DI, "registers": words})
    assert v["state"].quality is Quality.BAD


def test_profile_all_shipped_profiles_load() -> None:
    """Every shipped profile validates."""
    assert shipped_profiles() == ["analog_module", "bollard_controller", "door_node", "fire_panel", "smoke_detector"]
    for name in shipped_profiles():
        assert load_profile(name).model == name


def test_profile_unknown_name_is_named() -> None:
    """Asking for a profile that does not exist says which."""
    with pytest.raises(ProfileError, match="no device profile named 'fog_machine'"):
        load_profile("fog_machine")


def test_profile_bad_file_names_file_and_key(tmp_path: object) -> None:
    """A malformed profile file is refused with its path and the offending key."""
    from pathlib import Path  # noqa: PLC0415

    path = Path(str(tmp_path)) / "broken.toml"
    path.write_text(
        'model = "broken"\ndescription = "x"\n'
        '[[blocks]]\nname = "b"\nfunction = 4\naddress = 0\ncount = 2\n'
        '[[points]]\nname = "p"\nblock = "b"\noffset = 5\ntype = "u16"\n'
    )
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(err.value) == f"{path}: point p: offset 5 beyond block b (2)"


def test_profile_analog_module_reads_two_blocks_and_marks_open_loops() -> None:
    """18 channels in two blocks of nine; 0xFFFF (an open 4-20 mA loop) is bad quality, never 655.35."""
    profile = load_profile("analog_module")
    sim = AnalogModuleSim()
    sim.values[3] = 0xFFFF
    blocks = {b.name: sim.read(b.function, b.address, b.count) for b in profile.blocks}
    assert all(isinstance(words, list) for words in blocks.values())
    values = decode(profile, blocks)  # type: ignore[arg-type]
    assert len(values) == 18
    assert values["ch1"].value == 12.0
    assert values["ch4"].quality is Quality.BAD
    assert values["ch18"].value == 12.0


def test_profile_analog_module_churn_changes_every_channel() -> None:
    """With churn (for benchmarks) every channel differs from one read to the next."""
    sim = AnalogModuleSim(churn=True)
    first, second = sim.read(4, 0, 9), sim.read(4, 0, 9)
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_profiles_a_site_profile_example_loads_and_a_config_names_it_by_path(tmp_path: Path) -> None:
    """docs/device-profiles.md's example: a site's own register map, named by its path, validates."""
    example = Path(__file__).resolve().parent.parent / "examples" / "profiles" / "kitchen-gas-detector.toml"
    profile = load_profile(example)
    assert profile.model == "kitchen_gas_detector"
    assert decode_point(profile.point("lel"), [123, 0, 0, 0]).value == 12.3
    assert decode_point(profile.point("status"), [0, 2, 0, 0]).value == "high_alarm"
    text = (
        '[site]\nid = "s"\n[gateway]\nid = "g"\nstate_dir = "' + str(tmp_path) + '"\n'
        '[mqtt]\nurls = ["mqtt://127.0.0.1:1883"]\nallow_plaintext = true\n'
        '[[buses]]\nid = "rs485-1"\ntype = "rtu"\nport = "/dev/ttyUSB0"\nbaud = 9600\n'
        '[[devices]]\nid = "gas-kitchen"\nbus = "rs485-1"\nunit = 7\nprofile = "' + str(example) + '"\n'
    )
    cfg = parse_config(text, "site.toml")
    assert cfg.devices[0].profile == str(example)


def test_profiles_a_change_counter_may_not_count_an_alarm_point(tmp_path: Path) -> None:
    """An unstable counter marks its points bad and holds their events back: a fire point is never among them."""
    path = tmp_path / "x.toml"
    path.write_text(
        'model = "x"\ndescription = "x"\n[[blocks]]\nname = "b"\nfunction = 4\naddress = 0\ncount = 2\n'
        '[[points]]\nname = "fire"\nblock = "b"\noffset = 0\ntype = "bit"\nbit = 0\n'
        'event = "fire"\nseverity = "alarm"\n'
        '[[points]]\nname = "fire_changes"\nblock = "b"\noffset = 1\ntype = "u16"\ncounts = ["fire"]\n'
    )
    with pytest.raises(ProfileError) as refused:
        load_profile(path)
    assert str(refused.value) == (
        f"{path}: point fire_changes: counts 'fire', an alarm point, whose events nothing holds back"
    )
