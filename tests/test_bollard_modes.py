"""Lockdown and school hours across sync loss and restarts (state_dir/modes.json), on two dry-contact lanes on
mock pins with the simulated controllers wired to them, and an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.base.clock import Clock
from gateway.base.contract import Topics
from gateway.config import LaneConfig
from gateway.safety.authority import Authority
from gateway.safety.bollards.service import BollardService
from gateway.safety.bollards.supervisor import Command
from gateway.safety.site_mode import SiteMode
from gateway.store.outbox import Outbox
from gateway.store.recorder import Recorder
from gateway.store.stateboard import StateBoard
from simulators.bollard import BollardSim, BollardState
from simulators.dry_contact import DryContactRig

STEP_S = 0.05


class StepClock(Clock):
    """Time moves when the site says."""

    now: ClassVar[float] = 1000.0

    @staticmethod
    def mono() -> float:
        return StepClock.now


def pins(base: int) -> tuple[dict[str, int | str], dict[str, tuple[int | str, Literal["NC", "NO"]]]]:
    relays: dict[str, int | str] = {"raise": base, "lower": base + 1, "stop": base + 2, "warning": base + 3}
    contacts: dict[str, tuple[int | str, Literal["NC", "NO"]]] = {
        "limit_up": (base + 4, "NO"),
        "limit_down": (base + 5, "NO"),
        "loop_a_occupied": (base + 6, "NC"),
        "photocell_blocked": (base + 7, "NC"),
    }
    return relays, contacts


def lane_config(lane: str, base: int) -> LaneConfig:
    relays, contacts = pins(base)
    dry: dict[str, object] = {f"{name}_relay": pin for name, pin in relays.items()}
    keys = {"limit_up": "limit_up", "limit_down": "limit_down", "loop_a_occupied": "loop_a",
            "photocell_blocked": "photocell"}  # fmt: skip
    dry |= {keys[name]: {"pin": pin, "contact": c} for name, (pin, c) in contacts.items()}
    return LaneConfig.model_validate({"id": lane, "power_loss": "stay", "dry_contact": dry})


class Site:
    """Two lanes, west and north, the site's modes and the gateway's bollard service; `restart()` makes new ones."""

    def __init__(self, state: Path, panels: tuple[str, ...] = ()) -> None:
        self.state = state
        self.panels = panels
        self.factory = MockFactory()
        self.sims = {"lane-west": BollardSim(clock=StepClock.mono), "lane-north": BollardSim(clock=StepClock.mono)}
        self.rigs = {}
        for lane, base in (("lane-west", 2), ("lane-north", 14)):
            relays, contacts = pins(base)
            self.rigs[lane] = DryContactRig(self.sims[lane], self.factory, relays, contacts)
        self.service = self._service()

    def _service(self) -> BollardService:
        topics = Topics("s1", "g1")
        self.outbox = Outbox(self.state / "outbox.db")
        recorder = Recorder(self.outbox, topics, StateBoard(topics))
        lanes = (lane_config("lane-west", 2), lane_config("lane-north", 14))
        clock = StepClock(assume_synced=True)
        self.modes = SiteMode(recorder, clock, self.panels, gateway_id="g1", modes_file=self.state / "modes.json",
                              sources_file=self.state / "fire-sources.json")  # fmt: skip
        return BollardService(lanes, {}, recorder, clock, self.modes, self.state / "fire-hold.json", self.factory)

    def restart(self) -> None:
        self.service.close()
        self.outbox.close()
        self.service = self._service()

    def run(self, seconds: float) -> None:
        end = StepClock.now + seconds
        while StepClock.now < end - 1e-9:
            StepClock.now += STEP_S
            for lane, rig in self.rigs.items():
                rig.step()
                self.service.dry_lanes[lane].step(StepClock.now)

    def states(self) -> dict[str, BollardState]:
        return {lane: sim.state for lane, sim in self.sims.items()}


UP = {"lane-west": BollardState.UP, "lane-north": BollardState.UP}
DOWN = {"lane-west": BollardState.DOWN, "lane-north": BollardState.DOWN}


def test_modes_school_day_ends_even_after_the_clock_lost_its_sync(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.run(0.2)
    site.modes.apply_schedule(True)
    site.run(6.0)
    assert site.states() == UP
    site.modes.apply_schedule(None)  # the clock lost its synchronisation at noon
    site.run(1.0)
    site.modes.apply_schedule(False)  # and found it again after school
    site.run(5.0)
    assert site.states() == DOWN


def test_modes_school_day_ends_after_a_restart_over_the_end_of_the_day(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.run(0.2)
    site.modes.apply_schedule(True)
    site.run(6.0)
    assert site.states() == UP
    site.restart()  # the gateway was off at the end of the day
    site.run(0.2)
    site.modes.apply_schedule(False)
    site.run(5.0)
    assert site.states() == DOWN


def test_modes_the_guards_lane_stays_the_guards(tmp_path: Path) -> None:
    """A lane the guard lowered during school hours is not raised again when the clock's sync comes back, nor
    when the gateway restarts; the other lane, still the schedule's, is pursued."""
    site = Site(tmp_path)
    site.run(0.2)
    site.modes.apply_schedule(True)
    site.run(6.0)
    site.service.request("lane-west", Command.LOWER, Authority.GUARD)
    site.run(5.0)
    site.modes.apply_schedule(None)
    site.run(1.0)
    site.modes.apply_schedule(True)
    site.run(15.0)
    assert site.states() == {"lane-west": BollardState.DOWN, "lane-north": BollardState.UP}
    site.restart()
    site.run(0.2)
    site.modes.apply_schedule(True)
    site.run(15.0)
    assert site.states() == {"lane-west": BollardState.DOWN, "lane-north": BollardState.UP}
    assert "schedule" in site.service.supervisors["lane-north"].intents


def test_modes_a_restart_during_a_lockdown_keeps_what_the_guard_did(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.run(0.2)
    site.service.set_lockdown(True, Authority.GUARD)
    site.run(6.0)
    assert site.states() == UP
    site.service.request("lane-north", Command.LOWER, Authority.GUARD)  # an ambulance
    site.run(5.0)
    site.sims["lane-west"].command("cmd_lower")  # lowered at the controller, behind the gateway's back
    site.run(5.0)
    site.restart()
    site.run(15.0)
    assert site.service.lockdown is Authority.GUARD
    assert site.states() == {"lane-west": BollardState.UP, "lane-north": BollardState.DOWN}


def test_modes_a_modes_file_with_a_key_given_twice_is_damaged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """modes.json saying "lockdown" twice (by the guard, then none) is damaged, not read as no lockdown: the
    lockdown is assumed in force, as for any unreadable file, and the log names the key."""
    (tmp_path / "modes.json").write_text('{"lockdown": "guard", "lockdown": null, "closed_campus_last": null}')
    site = Site(tmp_path)
    assert site.service.lockdown is Authority.GUARD
    assert (
        f'{tmp_path / "modes.json"}: unreadable (duplicate key "lockdown" in modes.json): lockdown assumed in force'
        in (caplog.messages)
    )
