"""The bollard lanes of a running gateway: supervisors fed by the bus pollers, commands written to the controllers,
the fire linkage, and every decision recorded as a `bollard` event (the audit trail the platform receives).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.device import ModbusDevice
from drivers.dry_contact import DryContactController, InputPin
from drivers.errors import BusError, DeviceError
from drivers.modbus import ModbusBus, RequestPolicy
from drivers.profile import PointValue, Quality, load_profile
from gateway.base import strict_json
from gateway.base.clock import Clock
from gateway.base.i18n import N_, both, tr
from gateway.base.statefile import save_json
from gateway.config import LaneConfig
from gateway.field.polling import PolledDevice
from gateway.field.tracking import DeviceTracker
from gateway.safety.authority import Authority
from gateway.safety.bollards.dry_contact import DryContactLane, DryContactTiming
from gateway.safety.bollards.interlocks import InterlockSettings
from gateway.safety.bollards.supervisor import (
    START_GRACE_S,
    Actuator,
    Command,
    Decision,
    Intent,
    LaneSettings,
    LaneSupervisor,
)
from gateway.safety.fire import panel_reset_seen
from gateway.safety.schedule import Schedule
from gateway.store.recorder import Recorder
from gateway.store.records import Event, EventState, Stamp

log = logging.getLogger(__name__)

COIL = {"cmd_raise": 0, "cmd_lower": 1, "cmd_stop": 2, "cmd_efo": 4}
MAX_QUEUED_S = 1.0  # a raise not on the wire this long after it was decided is not sent at all
UPWARD = frozenset({"cmd_raise", "cmd_efo"})
SETTINGS_CHECK_S = 3600.0  # the controller's settings are read at start and then hourly (a technician may change them)
SETTINGS_RETRY_S = 30.0
GUARD_COMMANDS = {"bollard_raise": Command.RAISE, "bollard_lower": Command.LOWER, "bollard_stop": Command.STOP}


class ModbusActuator:
    """Requests to one controller, written in order by a task of their own (the supervisor must not wait)."""

    def __init__(self, lane: str, bus: ModbusBus, unit: int, timeout_s: float, clock: Clock) -> None:
        self.lane = lane
        self.bus = bus
        self.unit = unit
        self.timeout_s = timeout_s
        self.clock = clock
        self.queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
        self.failures = 0
        self.dropped = 0
        self.on_failed: Callable[[str], None] | None = None  # a request that did not reach the controller

    def send(self, request: str) -> None:
        self.queue.put_nowait((request, self.clock.mono()))

    async def run(self) -> None:
        """Write each request as it comes; a failed one is logged, never retried. A raise that waited too long for
        the bus (a stalled device, a reconnect) is dropped, never written late: a raise decided before a vehicle
        arrived must not happen after it did. The supervisor then sees no motion and reports the refusal."""
        while True:
            request, queued = await self.queue.get()
            late = self.clock.mono() - queued
            if request in UPWARD and late > MAX_QUEUED_S:
                self.dropped += 1
                log.error("lane %s: %s dropped: waited %.1f s for the bus", self.lane, request, late)
                if self.on_failed is not None:
                    self.on_failed(request)
                continue
            # An upward request gets its timeout twice over, bus wait and connection included; a lower or a stop
            # is the safe direction and is always tried to the end.
            limit = self.timeout_s * 2 if request in UPWARD else None
            try:
                async with asyncio.timeout(limit):
                    await self.bus.write_coil(self.unit, COIL[request], True, self.timeout_s)
            except (DeviceError, BusError, TimeoutError) as exc:
                self.failures += 1
                log.error("lane %s: %s not delivered: %s", self.lane, request, exc or "timed out")
                if self.on_failed is not None:
                    self.on_failed(request)


def settings_findings(lane: LaneConfig, values: dict[str, PointValue]) -> dict[str, str]:
    """What in a Modbus controller's settings contradicts the lane's configuration or the safety rules, by setting.

    The power-loss behaviour is the hardware's (R18): configured and built must agree. The controller gives the
    pre-warning of a Modbus lane itself, so it must last at least the lane's `pre_warn_ms` (R13). A controller
    whose EFO coil is enabled for remote use can be raised fast by anyone on its network (R16); one that re-raises
    by itself after a lowering does so without the gateway's decision (on a fire lane, against the hold-down); one
    whose own loop clear delay is shorter than the lane's is a weaker first layer than the site was designed for.
    """
    found: dict[str, str] = {}
    hardware = values.get("power_loss_behaviour")
    if hardware is None or hardware.quality is not Quality.GOOD or hardware.value is None:
        found["power_loss"] = "the controller's power-loss behaviour cannot be read"
    elif hardware.value != lane.power_loss:
        found["power_loss"] = f"configured {lane.power_loss}, the controller's hardware does {hardware.value}"
    elif lane.fire_lane and hardware.value == "stay":
        found["power_loss"] = "a fire lane whose bollards stay up without power"
    pre_warn = values.get("pre_warn_ms")
    if pre_warn is None or not isinstance(pre_warn.value, int):
        found["pre_warn_ms"] = "the controller's pre-warning time cannot be read"
    elif pre_warn.value < lane.pre_warn_ms:
        found["pre_warn_ms"] = (
            f"the controller warns {pre_warn.value} ms before a rise, the lane needs {lane.pre_warn_ms}"
        )
    efo = values.get("efo_remote_enable")
    if efo is None or not isinstance(efo.value, int):
        found["efo_remote_enable"] = "the controller's remote EFO setting cannot be read"
    elif efo.value != 0:
        found["efo_remote_enable"] = "the controller accepts EFO over Modbus (the local key is in the remote position)"
    rerise = values.get("auto_rerise_s")
    if rerise is None or not isinstance(rerise.value, int):
        found["auto_rerise_s"] = "the controller's automatic re-rise setting cannot be read"
    elif rerise.value != 0:
        # The controller would raise by itself after a lowering: on a fire lane, against the fire hold-down.
        found["auto_rerise_s"] = f"the controller raises by itself {rerise.value} s after a lowering; expected 0"
    clear = values.get("loop_clear_delay_ms")
    if clear is not None and isinstance(clear.value, int) and clear.value < lane.loop_clear_delay_s * 1000:
        found["loop_clear_delay_ms"] = (
            f"the controller's own loop clear delay is {clear.value} ms, shorter than the lane's "
            f"{lane.loop_clear_delay_s * 1000:g} ms"
        )
    return found


class BollardService:
    """All lanes of the site."""

    def __init__(
        self,
        lanes: tuple[LaneConfig, ...],
        controllers: dict[str, tuple[ModbusBus, int]],
        recorder: Recorder,
        clock: Clock,
        hold_file: Path | None = None,
        pin_factory: Any = None,
        panels: tuple[str, ...] = (),
        schedule: Schedule | None = None,
        gateway_id: str = "gateway",
        modes_file: Path | None = None,
    ) -> None:
        """`panels`: the fire panels (whose fire ends with a reset, not with the fire bit alone). `schedule`: the
        closed-campus hours; `modes_file` keeps a lockdown across restarts."""
        self.recorder = recorder
        self.schedule = schedule
        self.gateway_id = gateway_id
        self.modes_file = modes_file
        self.lockdown: Authority | None = None  # who declared the lockdown in force; None: none
        self.closed_campus: bool | None = None  # None: not known (no schedule, or the clock is not synchronised)
        self._last_known: bool | None = None  # the schedule's last known verdict, kept across restarts
        self.on_closed_campus: list[Callable[[bool | None], None]] = []
        self._scheduled = {lane.id for lane in lanes if lane.scheduled}
        self.clock = clock
        self.hold_file = hold_file
        self.supervisors: dict[str, LaneSupervisor] = {}
        self.actuators: dict[str, ModbusActuator] = {}
        self.dry_lanes: dict[str, DryContactLane] = {}
        self._settings: dict[str, tuple[LaneConfig, ModbusDevice]] = {}
        self.settings_checked: dict[str, dict[str, str]] = {}  # lane -> findings of the last settings read
        self._by_controller: dict[str, str] = {}
        self._fires: dict[str, bool] = {}  # fire sources: panel or relay -> active; detectors counted apart
        self._detector_fires: set[str] = set()
        self._awaiting_reset: dict[str, int] = {}  # panels whose fire bit dropped -> polls since, not yet reset
        self._inconsistent: set[str] = set()  # panels reported as cleared without a reset
        self._panels = frozenset(panels)
        self.fire = False
        with contextlib.ExitStack() as building:
            building.callback(self.close)  # a lane that cannot be built releases the pins of those that were
            for lane in lanes:
                self._add_lane(lane, controllers, pin_factory)
            building.pop_all()
        recorder.on_events.append(self._fire_linkage)
        for lane_id in self._load_holds():
            if lane_id in self.supervisors and self.supervisors[lane_id].settings.fire_lane:
                # A fire hold outlives a restart: only the guard's release ends it (R17). The supervisor asks
                # for the lowering again at its first status read if the lane is not down.
                self.supervisors[lane_id].fire_hold = True
                log.warning("lane %s: fire hold-down restored from %s", lane_id, self.hold_file)
        self._saved_holds = self._holds()
        self.sources_file = hold_file.with_name("fire-sources.json") if hold_file is not None else None
        self._restore_sources()
        self._restore_modes()
        for sup in self.supervisors.values():
            sup.on_intents.append(self._save_modes)

    def _add_lane(
        self, lane: LaneConfig, controllers: dict[str, tuple[ModbusBus, int]], pin_factory: Any
    ) -> LaneSupervisor:
        pre_warn_s = lane.pre_warn_ms / 1000
        settings = LaneSettings(
            fire_lane=lane.fire_lane,
            rise_timeout_s=lane.rise_timeout_s + (pre_warn_s if lane.dry_contact else 0.0),
            lower_timeout_s=lane.lower_timeout_s,
            command_ttl_s=lane.command_ttl_s,
            start_grace_s=START_GRACE_S + (pre_warn_s if lane.dry_contact else 0.0),
            interlocks=InterlockSettings(lane.loop_clear_delay_s, lane.max_staleness_s),
        )
        actuator: Actuator
        if lane.dry_contact is not None:
            dry = lane.dry_contact
            pins = DryContactController(
                lane.id,
                dry.relays(),
                {name: InputPin(c.pin, c.contact) for name, c in dry.inputs().items()},
                active_high=dry.relay_active_high,
                pin_factory=pin_factory,
            )
            timing = DryContactTiming(pre_warn_s, dry.pulse_ms / 1000, dry.poll_ms / 1000)
            actuator = self.dry_lanes[lane.id] = DryContactLane(lane.id, pins, timing, self.clock.mono)
        else:
            assert lane.controller is not None  # the configuration checks that a lane has one kind
            bus, unit = controllers[lane.controller]
            actuator = self.actuators[lane.id] = ModbusActuator(
                lane.id, bus, unit, lane.command_timeout_ms / 1000, self.clock
            )
            self._by_controller[lane.controller] = lane.id
            profile = load_profile("bollard_controller")
            policy = RequestPolicy(lane.command_timeout_ms / 1000, 1)
            self._settings[lane.id] = (lane, ModbusDevice(lane.controller, bus, unit, profile, policy))
        sup = LaneSupervisor(lane.id, settings, actuator)
        sup.decisions.append(self._publish)
        if lane.id in self.actuators:
            self.actuators[lane.id].on_failed = lambda request: sup.not_delivered(request, self.clock.mono())
        self.supervisors[lane.id] = sup
        if lane.dry_contact is not None:
            self._report_dry_lane(lane.id, sup)
        return sup

    def _report_dry_lane(self, lane: str, sup: LaneSupervisor) -> None:
        """A dry-contact lane has no device poller: its contacts reach the supervisor, and their changes the
        platform, through the same tracker a Modbus controller's status goes through."""
        dry = self.dry_lanes[lane]
        full = load_profile("bollard_controller")
        sample = dry.step(self.clock.mono())
        profile = full.model_copy(update={"points": tuple(p for p in full.points if p.name in sample)})
        memory = self.recorder.memory.of(lane) if self.recorder.memory is not None else None
        tracker = DeviceTracker(lane, profile, started_mono=self.clock.mono(), remembered=memory)
        self.recorder.board.register(lane, profile.model, self.clock.wall_ms())

        def on_status(values: dict[str, PointValue], now: float) -> None:
            sup.on_status(values, now)
            out = tracker.update(values, Stamp(self.clock.wall_ms(), now, self.clock.synced()))
            if out.readings or out.events:
                self.recorder.record(out.readings, out.events, lane, True)

        dry.on_status = on_status

    def close(self) -> None:
        """Release the relays and pins of dry-contact lanes."""
        for dry in self.dry_lanes.values():
            dry.controller.close()

    def _holds(self) -> list[str]:
        return sorted(lane for lane, sup in self.supervisors.items() if sup.fire_hold)

    def _load_holds(self) -> list[str]:
        if self.hold_file is None:
            return []
        try:
            data = strict_json.loads(self.hold_file.read_text(encoding="utf-8"), self.hold_file.name)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            # Unreadable: every fire lane is held, the safe reading of "we do not know".
            log.error(
                "%s: unreadable (%s): holding every fire lane down until a guard releases it", self.hold_file, exc
            )
            return list(self.supervisors)
        return [str(x) for x in data] if isinstance(data, list) else list(self.supervisors)

    def _save_holds(self) -> None:
        holds = self._holds()
        if self.hold_file is None or holds == self._saved_holds:
            return
        if save_json(self.hold_file, holds, "the fire holds"):
            self._saved_holds = holds

    def on_poll(self, entry: PolledDevice) -> None:
        """A bus poller read a device: a lane's controller goes to its supervisor; a fire panel's reset bit may end
        a fire whose fire bit has already dropped."""
        if entry.device.profile.model == "fire_panel":
            self._panel_polled(entry)
            return
        lane = self._by_controller.get(entry.device.name)
        if lane is None:
            return
        if entry.last_values is not None:
            self.supervisors[lane].on_status(entry.last_values, entry.last_read_mono, entry.last_read_started_mono)
        else:
            self.supervisors[lane].check_staleness(self.clock.mono())

    def _panel_polled(self, entry: PolledDevice) -> None:
        """A panel in fire ends its fire here, on a poll that shows the fire bit clear *and* a reset: the reset bit,
        or no first-alarm point any more (a level the reset leaves, for panels whose reset bit is a short pulse).
        A fire bit clear without either, two polls running, is reported as inconsistent, and the fire stands."""
        name = entry.device.name
        values = entry.last_values
        if not self._fires.get(name) or values is None:
            return
        fire = values.get("fire")
        if fire is None or fire.quality is not Quality.GOOD or fire.value is not False:
            self._awaiting_reset.pop(name, None)  # in fire (again), or not readable: the fire stands, consistently
            return
        if panel_reset_seen(values):
            log.warning("fire linkage: panel %s reset", name)
            self._awaiting_reset.pop(name, None)
            if name in self._inconsistent:
                self._inconsistent.discard(name)
                self._inconsistency(name, False)
            self._fires[name] = False
            self._save_sources()
            self._update_fire()
            return
        self._awaiting_reset[name] = self._awaiting_reset.get(name, 0) + 1
        if self._awaiting_reset[name] == 2 and name not in self._inconsistent:
            self._inconsistent.add(name)
            self._save_sources()
            self._inconsistency(name, True)

    def request(self, lane: str, command: Command, source: Authority, issued: float | None = None) -> Decision:
        """A command for a lane, decided now (raises KeyError for a lane that does not exist)."""
        return self.supervisors[lane].request(command, source, self.clock.mono(), issued)

    def guard_input(self, kind: str, lane: str) -> None:
        """A button or the EFO key at the gate house was pressed (GPIO): works with the network down."""
        if kind == "efo_key":
            self.supervisors[lane].emergency_rise(self.clock.mono())
        else:
            self.request(lane, GUARD_COMMANDS[kind], Authority.GUARD)

    async def run(self) -> None:
        """Write commands; look for rises nobody can see any more."""
        async with asyncio.TaskGroup() as tg:
            for actuator in self.actuators.values():
                tg.create_task(actuator.run(), name=f"bollard-writer[{actuator.lane}]")
            for dry in self.dry_lanes.values():
                tg.create_task(dry.run(), name=f"bollard-contacts[{dry.lane}]")
            for lane in self._settings:
                tg.create_task(self._check_settings(lane), name=f"bollard-settings[{lane}]")

            while True:
                await asyncio.sleep(0.1)
                now = self.clock.mono()
                for sup in self.supervisors.values():
                    sup.check_staleness(now)

    async def _check_settings(self, lane: str) -> None:
        """Read the controller's settings at start and hourly (a technician may change them)."""
        while True:
            try:
                await self.check_settings(lane)
            except (DeviceError, BusError) as exc:
                log.info("lane %s: controller settings not read: %s", lane, exc)
                await asyncio.sleep(SETTINGS_RETRY_S)
                continue
            await asyncio.sleep(SETTINGS_CHECK_S)

    async def check_settings(self, lane: str) -> dict[str, str]:
        """Read a Modbus lane's controller settings and report what contradicts the configuration, and when that
        ends. The first result is always reported: it is the commissioning's evidence (R18).

        Raises:
            DeviceError, BusError: the controller could not be read.
        """
        config, device = self._settings[lane]
        values = await device.read_settings()
        self._adopt_clear_delay(lane, config, values.get("loop_clear_delay_ms"))
        found = settings_findings(config, values)
        before = self.settings_checked.get(lane)
        self.settings_checked[lane] = found
        if found == before:
            return found
        for key, text in found.items():
            log.warning("lane %s: controller settings: %s: %s", lane, key, text)
        detail: dict[str, str | int | float | bool | None] = {
            "power_loss_configured": config.power_loss,
            "power_loss_controller": _text(values.get("power_loss_behaviour")),
            "pre_warn_ms_controller": _text(values.get("pre_warn_ms")),
            "findings": "; ".join(f"{k}: {v}" for k, v in found.items()),
        }
        state = "raised" if found else ("cleared" if before else "changed")
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        value = ",".join(found) if found else "ok"
        severity = "warning" if found else "info"
        event = Event("bollard", severity, state, lane, "settings", value, Quality.GOOD, stamp, detail)  # type: ignore[arg-type]
        self.recorder.record([], [event])
        return found

    def _adopt_clear_delay(self, lane: str, config: LaneConfig, clear: PointValue | None) -> None:
        """A controller that waits longer after its loop clears than the lane says would refuse a raise the gateway
        accepted ("raise done", then "controller refused"): the gateway waits as long as the longer of the two, so
        the guard is told "the loop cleared less than the clear delay ago" instead."""
        sup = self.supervisors[lane]
        wanted = config.loop_clear_delay_s
        if clear is not None and clear.quality is Quality.GOOD and isinstance(clear.value, int):
            wanted = max(wanted, clear.value / 1000)
        if wanted != sup.settings.interlocks.loop_clear_delay_s:
            log.info("lane %s: loop clear delay %g s (the lane %g s, the controller's %s)", lane, wanted,
                     config.loop_clear_delay_s, _text(clear))  # fmt: skip
            sup.settings = replace(sup.settings, interlocks=replace(sup.settings.interlocks, loop_clear_delay_s=wanted))

    # -- lockdown and the closed-campus schedule ---------------------------------------------------------------

    def set_lockdown(self, on: bool, source: Authority) -> tuple[bool, list[Decision]]:
        """Lockdown (封闭管理, an intruder): every lane that is not a fire lane is raised, interlocks respected, and
        kept wanted up until the lockdown ends (fire lanes stay free for the fire service). Ending it takes at
        least the authority that declared it, and leaves the lanes where they are. Returns (done, decisions)."""
        now = self.clock.mono()
        if not on and self.lockdown is not None and source > self.lockdown:
            return False, []
        if on and self.lockdown is not None and self.lockdown <= source:
            return True, []  # already in force, declared at least as high
        was = self.lockdown
        self.lockdown = source if on else None
        decisions: list[Decision] = []
        for sup in self.supervisors.values():
            if sup.settings.fire_lane:
                continue
            d = sup.hold_up("lockdown", source, now) if on else sup.end_mode("lockdown", now)
            if d is not None:
                decisions.append(d)
        self._save_modes()
        if (was is None) == on:
            log.warning("lockdown %s by %s", "declared" if on else "ended", source.name.lower())
            detail: dict[str, str | int | float | bool | None] = {
                "source": source.name.lower(),
            }
            detail["text_en"], detail["text_zh"] = both(
                N_("lockdown declared: gates closed") if on else N_("lockdown ended")
            )
            self._site_event("lockdown", on, "warning" if on else "info", detail)
        return True, decisions

    def _restore_modes(self) -> None:
        """The lockdown, the last known state of the schedule, and which lanes each mode still wants up, as they
        were before a restart (state_dir/modes.json): a lane the guard lowered during a lockdown stays lowered."""
        if self.modes_file is None:
            return
        try:
            source, last, intents = _parse_modes(self.modes_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # Unreadable: a lockdown may have been in force. Declared again, by the guard, to be safe: the gate
            # stays closed until a guard ends it.
            log.error("%s: unreadable (%s): lockdown assumed in force", self.modes_file, exc)
            source, last, intents = Authority.GUARD, None, None
        self.lockdown = source
        self._last_known = last
        now = self.clock.mono()
        for lane, sup in self.supervisors.items():
            if intents is None:  # a file without them (or none readable): the lockdown wants every lane it covers
                wanted = [("lockdown", source)] if source is not None and not sup.settings.fire_lane else []
            else:
                wanted = intents.get(lane, [])
            for mode, authority in wanted:
                sup.intents[mode] = Intent(mode, authority)  # pursued from the first status read
                sup.retry_intent_at(now)
        if source is not None:
            log.warning("lockdown restored from %s", self.modes_file)

    def _save_modes(self) -> None:
        if self.modes_file is None:
            return
        data = {
            "lockdown": self.lockdown.name.lower() if self.lockdown else None,
            "closed_campus_last": self._last_known,
            "intents": {
                lane: [[i.mode, i.source.name.lower()] for i in sup.intents.values()]
                for lane, sup in self.supervisors.items()
                if sup.intents
            },
        }
        save_json(self.modes_file, data, "the modes")

    def apply_schedule(self, closed: bool | None) -> None:
        """The closed-campus schedule says the campus is now closed (True), open (False) or unknown (None: the
        clock is not synchronised; nothing moves, the school day's wishes wait, and doors armed by the schedule
        are not). The day begins and ends on changes of the last *known* state, kept across restarts: a gateway
        that was off, or unsynchronised, at the end of the day still lowers the lanes when it knows the time."""
        if closed == self.closed_campus:
            return
        was = self.closed_campus
        self.closed_campus = closed
        now = self.clock.mono()
        for lane in self._scheduled:
            if closed is None:
                self.supervisors[lane].paused.add("schedule")
            else:
                self.supervisors[lane].paused.discard("schedule")
        if closed is True and self._last_known is not True:
            for lane in sorted(self._scheduled):
                self.supervisors[lane].hold_up("schedule", Authority.SCHEDULE, now)
        elif closed is False and self._last_known is True:
            # Lanes the guard took over during the day (lowered, stopped) are not the schedule's any more.
            for lane in sorted(self._scheduled):
                self.supervisors[lane].end_mode("schedule", now, lower=True)
        if closed is not None:
            self._last_known = closed
        self._save_modes()
        log.warning("closed-campus schedule: %s", {True: "closed", False: "open", None: "unknown"}[closed])
        if closed is not None or was is not None:
            words = {
                True: N_("school hours: campus closed"),
                False: N_("campus open"),
                None: N_("clock not synchronised: schedule suspended"),
            }
            en, zh = tr(words[closed], "en"), tr(words[closed], "zh-CN")
            detail: dict[str, str | int | float | bool | None] = {"text_en": en, "text_zh": zh}
            self._site_event("closed_campus", closed, "info", detail)
        for listener in self.on_closed_campus:
            listener(closed)

    async def follow_schedule(self) -> None:
        """Judge the schedule every second (on a synchronised clock only) until cancelled."""
        if self.schedule is None:
            return
        while True:
            closed = self.schedule.closed(datetime.now(UTC)) if self.clock.synced() else None
            self.apply_schedule(closed)
            await asyncio.sleep(1.0)

    def _site_event(
        self, point: str, value: bool | None, severity: str, detail: dict[str, str | int | float | bool | None]
    ) -> None:
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        state = "changed" if value is None else ("raised" if value else "cleared")
        quality = Quality.GOOD if value is not None else Quality.BAD
        event = Event("bollard", severity, state, self.gateway_id, point, value, quality, stamp, detail)  # type: ignore[arg-type]
        self.recorder.record([], [event])

    def _fire_linkage(self, events: list[Event]) -> None:
        """A confirmed fire: a panel or its fire relay in fire, or two detectors (devices.md 4).

        A panel's fire ends only when its fire bit has dropped *and* it reports a reset (R2, R17): a panel whose
        fire bit drops without one is inconsistent, and the fire linkage stays on. A fire relay opening is the
        panel's reset (the relay follows its latched fire output).
        """
        changed = False
        for ev in events:
            if ev.cls != "fire" or ev.state not in ("raised", "cleared"):
                continue
            active = ev.state == "raised"
            if ev.point == "fire_alarm":  # a smoke detector's own alarm: one alone is not a confirmed fire
                before = set(self._detector_fires)
                (self._detector_fires.add if active else self._detector_fires.discard)(ev.device)
                changed |= before != self._detector_fires
            elif ev.point == "fire" and not active and ev.device in self._panels:
                pass  # a panel's fire ends in _panel_polled, with its reset
            elif self._fires.get(ev.device) != active:
                self._fires[ev.device] = active
                changed = True
        if changed:
            self._save_sources()
            self._update_fire()

    def _update_fire(self) -> None:
        confirmed = any(self._fires.values()) or len(self._detector_fires) >= 2
        # Once confirmed, the fire lasts while any source still reports it: one of two detectors clearing
        # does not end it.
        fire = confirmed or (self.fire and (any(self._fires.values()) or bool(self._detector_fires)))
        if fire != self.fire:
            self.fire = fire
            log.warning("fire linkage: fire %s", "confirmed" if fire else "over")
            now = self.clock.mono()
            for sup in self.supervisors.values():
                sup.set_fire(fire, now)

    def _inconsistency(self, panel: str, raised: bool) -> None:
        """The panel's fire bit dropped without a reset: the fire stands until it is reset. Raised once per fire and
        cleared at the reset, as a warning the platform can act on (such a panel is misconfigured or faulty)."""
        if raised:
            log.warning("fire linkage: panel %s cleared its fire bit without a reset: fire kept", panel)
            en, zh = both(
                N_("the panel cleared its fire without a reset; fire linkage stays on until the panel is reset")
            )
        else:
            en, zh = both(N_("the panel was reset; fire linkage ended"))
        detail: dict[str, str | int | float | bool | None] = {"text_en": en, "text_zh": zh}
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        state: EventState = "raised" if raised else "cleared"
        event = Event("fire", "warning", state, panel, "inconsistent", raised, Quality.GOOD, stamp, detail)
        self.recorder.record([], [event])

    def _save_sources(self) -> None:
        """The fire sources in fire, so that a restart does not end a fire the panel never reset (R2, R17)."""
        if self.sources_file is None:
            return
        sources = {
            "in_fire": sorted(name for name, active in self._fires.items() if active),
            "inconsistent": sorted(self._inconsistent),
        }
        save_json(self.sources_file, sources, "the fire sources")

    def _restore_sources(self) -> None:
        if self.sources_file is None:
            return
        try:
            data = strict_json.loads(self.sources_file.read_text(encoding="utf-8"), self.sources_file.name)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable (%s): the fire sources start clear", self.sources_file, exc)
            return
        if not isinstance(data, dict):
            return
        for name in data.get("in_fire", []):
            if isinstance(name, str) and name in self._panels:
                # A relay's fire is its contact's level, read again at start; a panel's waits for its reset.
                self._fires[name] = True
        # Said to the platform already: cleared at the reset, not raised again.
        self._inconsistent = {n for n in data.get("inconsistent", []) if isinstance(n, str) and self._fires.get(n)}
        if any(self._fires.values()):
            log.warning("fire linkage: panels still in fire (not reset) before the restart: %s", sorted(self._fires))
            self.fire = True
            now = self.clock.mono()
            for sup in self.supervisors.values():
                sup.set_fire(True, now)

    def _publish(self, d: Decision) -> None:
        self._save_holds()
        severity = "info" if d.accepted and d.source is not None else "warning"
        detail: dict[str, str | int | float | bool | None] = {
            "source": d.source.name.lower() if d.source is not None else "supervisor",
            "accepted": d.accepted,
            "rule": d.rule.value,
            "reasons": ",".join(r.value for r in d.reasons),
            "text_en": d.text("en"),
            "text_zh": d.text("zh-CN"),
        }
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        event = Event("bollard", severity, "changed", d.lane, "command", d.command, Quality.GOOD, stamp, detail)  # type: ignore[arg-type]
        log.info("bollard %s", d.text("en"))
        self.recorder.record([], [event])  # kept like any event: in memory while the store refuses writes


def _text(pv: PointValue | None) -> str | None:
    return None if pv is None or pv.value is None else str(pv.value)


def _parse_modes(text: str) -> tuple[Authority | None, bool | None, dict[str, list[tuple[str, Authority]]] | None]:
    """modes.json: (the lockdown's authority, the schedule's last known verdict, lane -> [(mode, authority)])."""
    data = strict_json.loads(text, "modes.json")
    source = Authority[str(data["lockdown"]).upper()] if data.get("lockdown") else None
    last = data.get("closed_campus_last")
    if not (last is None or isinstance(last, bool)):
        raise ValueError(f"closed_campus_last: expected true, false or null, got {last!r}")
    raw = data.get("intents")
    if raw is None:
        return source, last, None
    intents = {str(lane): [(str(m), Authority[str(a).upper()]) for m, a in wanted] for lane, wanted in raw.items()}
    return source, last, intents
