"""The site's modes apart from the lanes: the state files the bollard service wrote before site mode owned them,
the school day's edges, the lockdown and the fire as site mode alone decides them, and no import of the lanes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drivers.profile import Quality
from gateway.base.contract import Topics
from gateway.safety.authority import Authority
from gateway.safety.bollards.supervisor import Intent
from gateway.safety.site_mode import SchoolDay, SiteMode
from gateway.store.outbox import Outbox
from gateway.store.recorder import Recorder
from gateway.store.records import Event, EventState, Stamp
from gateway.store.stateboard import StateBoard
from simulators.bollard import BollardState
from tests.test_bollard_modes import Site, StepClock

# Written by the bollard service of the previous release: a school day with a lockdown on top, lane-north lowered
# by the guard since; a panel whose fire bit dropped without a reset.
OLD_MODES = (
    '{"lockdown":"guard","closed_campus_last":true,'
    '"intents":{"lane-west":[["schedule","schedule"],["lockdown","guard"]]}}'
)
OLD_SOURCES = '{"in_fire":["facp-1"],"inconsistent":["facp-1"]}'


def fire(device: str, point: str, raised: bool) -> Event:
    state: EventState = "raised" if raised else "cleared"
    return Event("fire", "alarm", state, device, point, raised, Quality.GOOD, Stamp(0, 0.0, True))


def versioned(old: str) -> str:
    """A state file as this release writes it: the previous release's content in the versioned wrapper."""
    return '{"format":"campus-edge/state","version":1,"data":' + old + "}"


def test_site_mode_reads_and_writes_modes_json_in_the_bollard_services_format(tmp_path: Path) -> None:
    """modes.json as the bollard service wrote it restores the lockdown and each lane's modes, and is written back
    with the same content byte for byte (in the versioned wrapper): the format holds now that site mode writes it."""
    (tmp_path / "modes.json").write_text(OLD_MODES)
    site = Site(tmp_path)
    assert site.modes.lockdown is Authority.GUARD
    assert site.service.supervisors["lane-west"].intents == {
        "schedule": Intent("schedule", Authority.SCHEDULE),
        "lockdown": Intent("lockdown", Authority.GUARD),
    }
    assert site.service.supervisors["lane-north"].intents == {}
    site.run(15.0)
    assert site.states() == {"lane-west": BollardState.UP, "lane-north": BollardState.DOWN}
    site.modes.save_modes()
    assert (tmp_path / "modes.json").read_text() == versioned(OLD_MODES)
    site.modes.apply_schedule(True)  # the day had begun before the restart: it does not begin again
    assert (tmp_path / "modes.json").read_text() == versioned(OLD_MODES)
    site.service.close()
    site.outbox.close()


def test_site_mode_reads_and_writes_fire_sources_json_in_the_bollard_services_format(tmp_path: Path) -> None:
    """fire-sources.json as the bollard service wrote it keeps the unreset panel in fire, and its inconsistency
    said, for every lane; a second panel in fire is written beside it in the same format."""
    (tmp_path / "fire-sources.json").write_text(OLD_SOURCES)
    site = Site(tmp_path, panels=("facp-1", "facp-2"))
    assert site.modes.fire
    assert site.service.fire
    assert all(sup.fire_active for sup in site.service.supervisors.values())
    site.service.recorder.record([], [fire("facp-2", "fire", True)])
    assert (tmp_path / "fire-sources.json").read_text() == versioned(
        '{"in_fire":["facp-1","facp-2"],"inconsistent":["facp-1"]}'
    )
    site.service.close()
    site.outbox.close()


def test_site_mode_decides_the_modes_without_lanes(tmp_path: Path) -> None:
    """With no lanes at all, site mode declares and ends the lockdown by the safety order and records it, tells its
    followers when the school day begins and ends (on changes of the last known verdict only), and confirms a fire
    from two detectors."""
    topics = Topics("s1", "g1")
    outbox = Outbox(tmp_path / "outbox.db")
    recorder = Recorder(outbox, topics, StateBoard(topics))
    site = SiteMode(recorder, StepClock(assume_synced=True), gateway_id="g1", modes_file=tmp_path / "modes.json")
    events: list[Event] = []
    recorder.on_events.append(events.extend)
    days: list[tuple[bool | None, SchoolDay]] = []
    site.on_closed_campus.append(lambda closed, day: days.append((closed, day)))
    fires: list[bool] = []
    site.on_fire.append(fires.append)

    assert site.set_lockdown(True, Authority.PLATFORM) == (True, [])
    assert site.set_lockdown(True, Authority.GUARD) == (True, [])  # the guard's now
    assert site.set_lockdown(False, Authority.PLATFORM) == (False, [])
    assert site.lockdown is Authority.GUARD
    assert (tmp_path / "modes.json").read_text() == versioned(
        '{"lockdown":"guard","closed_campus_last":null,"intents":{}}'
    )
    assert site.set_lockdown(False, Authority.GUARD) == (True, [])
    assert [(e.device, e.point, e.state, e.detail["source"]) for e in events] == [
        ("g1", "lockdown", "raised", "platform"),
        ("g1", "lockdown", "cleared", "guard"),
    ]

    for closed in (True, None, True, False, None, False):
        site.apply_schedule(closed)
    assert days == [(True, "begins"), (None, None), (True, None), (False, "ends"), (None, None), (False, None)]
    assert (tmp_path / "modes.json").read_text() == versioned(
        '{"lockdown":null,"closed_campus_last":false,"intents":{}}'
    )

    recorder.record([], [fire("smoke-1", "fire_alarm", True)])
    assert not site.fire
    recorder.record([], [fire("smoke-2", "fire_alarm", True)])
    recorder.record([], [fire("smoke-1", "fire_alarm", False)])
    assert site.fire
    recorder.record([], [fire("smoke-2", "fire_alarm", False)])
    assert fires == [True, False]
    outbox.close()


def test_site_mode_imports_nothing_of_the_lanes() -> None:
    """Site mode stands below the bollards: importing it loads no module of gateway.safety.bollards."""
    probe = "import sys, gateway.safety.site_mode; print(sorted(m for m in sys.modules if 'bollards' in m))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
