"""The bollard lanes of a running gateway: supervisors fed by the bus pollers, commands written to the controllers,
the lanes' half of the site's modes (lockdown, school hours, fire linkage), and every decision recorded as a
`bollard` event (the audit trail the platform receives).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from drivers.device import ModbusDevice
from drivers.dry_contact import DryContactController, InputPin
from drivers.errors import BusError, DeviceError
from drivers.modbus import ModbusBus, RequestPolicy
from drivers.profile import PointValue, Quality, load_profile
from gateway.base.clock import Clock
from gateway.base.statefile import load_json, save_json
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
from gateway.safety.site_mode import Decided, Intents, SchoolDay, SiteMode
from gateway.store.recorder import Recorder
from gateway.store.records import Event, Stamp

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
        site: SiteMode,
        hold_file: Path | None = None,
        pin_factory: Any = None,
    ) -> None:
        """`site`: the site's modes, which the lanes follow (and whose modes.json keeps the lanes' intents);
        `hold_file` keeps the fire holds across restarts."""
        self.recorder = recorder
        self.site = site
        self._scheduled = {lane.id for lane in lanes if lane.scheduled}
        self.clock = clock
        self.hold_file = hold_file
        self.supervisors: dict[str, LaneSupervisor] = {}
        self.actuators: dict[str, ModbusActuator] = {}
        self.dry_lanes: dict[str, DryContactLane] = {}
        self._settings: dict[str, tuple[LaneConfig, ModbusDevice]] = {}
        self.settings_checked: dict[str, dict[str, str]] = {}  # lane -> findings of the last settings read
        self._by_controller: dict[str, str] = {}
        with contextlib.ExitStack() as building:
            building.callback(self.close)  # a lane that cannot be built releases the pins of those that were
            for lane in lanes:
                self._add_lane(lane, controllers, pin_factory)
            building.pop_all()
        for lane_id in self._load_holds():
            if lane_id in self.supervisors and self.supervisors[lane_id].settings.fire_lane:
                # A fire hold outlives a restart: only the guard's release ends it (R17). The supervisor asks
                # for the lowering again at its first status read if the lane is not down.
                self.supervisors[lane_id].fire_hold = True
                log.warning("lane %s: fire hold-down restored from %s", lane_id, self.hold_file)
        self._saved_holds = self._holds()
        if site.fire:
            self._fire(True)  # restored: a panel in fire before the restart was never reset
        self._restore_intents(site.keep_intents(self._intents))
        for sup in self.supervisors.values():
            sup.on_intents.append(site.save_modes)
        site.on_lockdown.append(self._lockdown)
        site.on_closed_campus.append(self._closed_campus)
        site.on_fire.append(self._fire)

    @property
    def lockdown(self) -> Authority | None:
        """Site mode's lockdown (who declared it). The panel reads it here until it takes `SiteMode` itself."""
        return self.site.lockdown

    @property
    def closed_campus(self) -> bool | None:
        """Site mode's closed campus (None: not known). The panel reads it here until it takes `SiteMode` itself."""
        return self.site.closed_campus

    @property
    def fire(self) -> bool:
        """Site mode's confirmed fire. The panel reads it here until it takes `SiteMode` itself."""
        return self.site.fire

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
            data = load_json(self.hold_file)
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
        """A bus poller read a device: a lane's controller goes to its supervisor."""
        lane = self._by_controller.get(entry.device.name)
        if lane is None:
            return
        if entry.last_values is not None:
            self.supervisors[lane].on_status(entry.last_values, entry.last_read_mono, entry.last_read_started_mono)
        else:
            self.supervisors[lane].check_staleness(self.clock.mono())

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

    # -- the lanes' half of the site's modes ------------------------------------------------------------------

    def set_lockdown(self, on: bool, source: Authority) -> tuple[bool, list[Decided]]:
        """Site mode's lockdown, with what the lanes decided. The panel and the signed commands call it here until
        they take `SiteMode` themselves."""
        return self.site.set_lockdown(on, source)

    def _lockdown(self, on: bool, source: Authority) -> list[Decision]:
        """Lockdown (封闭管理, an intruder): every lane that is not a fire lane is raised, interlocks respected, and
        kept wanted up until the lockdown ends (fire lanes stay free for the fire service). Its end leaves the
        lanes where they are."""
        now = self.clock.mono()
        decisions: list[Decision] = []
        for sup in self.supervisors.values():
            if sup.settings.fire_lane:
                continue
            d = sup.hold_up("lockdown", source, now) if on else sup.end_mode("lockdown", now)
            if d is not None:
                decisions.append(d)
        return decisions

    def _closed_campus(self, closed: bool | None, day: SchoolDay) -> None:
        """The schedule's verdict changed: the scheduled lanes wait while it is unknown, are raised when the school
        day begins and lowered when it ends. Lanes the guard took over during the day (lowered, stopped) are not
        the schedule's any more, and stay as they are."""
        now = self.clock.mono()
        for lane in self._scheduled:
            if closed is None:
                self.supervisors[lane].paused.add("schedule")
            else:
                self.supervisors[lane].paused.discard("schedule")
        if day == "begins":
            for lane in sorted(self._scheduled):
                self.supervisors[lane].hold_up("schedule", Authority.SCHEDULE, now)
        elif day == "ends":
            for lane in sorted(self._scheduled):
                self.supervisors[lane].end_mode("schedule", now, lower=True)

    def _fire(self, active: bool) -> None:
        """The confirmed fire began or ended: every lane is told (fire lanes go down and are held there)."""
        now = self.clock.mono()
        for sup in self.supervisors.values():
            sup.set_fire(active, now)

    def _intents(self) -> Intents:
        """Which modes still want each lane up, for site mode's modes.json."""
        return {
            lane: [(i.mode, i.source) for i in sup.intents.values()]
            for lane, sup in self.supervisors.items()
            if sup.intents
        }

    def _restore_intents(self, intents: Intents | None) -> None:
        """Each lane's modes as they were before a restart: pursued from the first status read. None (a modes.json
        without intents, or an unreadable one): the restored lockdown wants every lane it covers."""
        lockdown = self.site.lockdown
        now = self.clock.mono()
        for lane, sup in self.supervisors.items():
            if intents is None:
                wanted = [("lockdown", lockdown)] if lockdown is not None and not sup.settings.fire_lane else []
            else:
                wanted = intents.get(lane, [])
            for mode, authority in wanted:
                sup.intents[mode] = Intent(mode, authority)  # pursued from the first status read
                sup.retry_intent_at(now)

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
