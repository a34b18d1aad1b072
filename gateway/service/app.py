"""Wiring: configuration -> objects -> one TaskGroup of named tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.device import ModbusDevice
from drivers.modbus import ModbusBus, RequestPolicy
from drivers.profile import load_profile
from gateway import __version__
from gateway.base.clock import Clock
from gateway.base.contract import Topics
from gateway.base.extras import require
from gateway.base.statefile import make_state_dir
from gateway.base.supervise import Supervisor
from gateway.config import UNIX_PATH_MAX, Config, RtuBusConfig
from gateway.field.bus_load import POINT as BUS_OVERLOADED
from gateway.field.bus_load import LoadMonitor, estimate, estimate_event
from gateway.field.inputs import ContactInputs
from gateway.field.polling import POINT_BEHIND, BusPoller, PolledDevice, Punctuality
from gateway.field.tracking import DeviceTracker
from gateway.panel.control import ControlSocket
from gateway.safety.alarms import AlarmBook
from gateway.safety.authority import Authority
from gateway.safety.bollards.service import BollardService
from gateway.safety.commands.service import CommandService
from gateway.safety.doors import DoorAlarms, FieldDoorFeed, site_doors
from gateway.safety.hazards import Inspector, ReportClock, run_reports
from gateway.safety.schedule import DAYS, schedule_from
from gateway.safety.site_mode import SiteMode
from gateway.service.health import HealthSampler, publish_health, status_line
from gateway.service.sdnotify import Notifier, keep_systemd_informed
from gateway.store.event_memory import EventMemory
from gateway.store.outbox import Limits, Outbox
from gateway.store.recorder import Recorder
from gateway.store.records import Event
from gateway.store.stateboard import StateBoard
from gateway.uplink.link import Identity, Uplink

if TYPE_CHECKING:
    from gateway.panel.server import PanelServer
    from gateway.service.metrics import MetricsServer

log = logging.getLogger(__name__)


def _pin_factory(cfg: Config) -> Any:
    if cfg.gpio.pin_factory == "mock":
        from gpiozero.pins.mock import MockFactory  # noqa: PLC0415

        return MockFactory()
    return None


class Gateway:
    """One gateway process: pollers per bus, GPIO inputs, the outbox and the uplink."""

    def __init__(
        self, cfg: Config, *, pin_factory: Any = None, clock: Clock | None = None, walk_test: bool = False
    ) -> None:
        """`walk_test`: the installer's walk test runs this gateway. Its events say `"test": true`; it keeps an
        alarm book of its own (the site's is left as the service left it) and counts nothing towards the hazard
        reports, and writes none."""
        if cfg.health.metrics_port is not None:  # the optional libraries, before anything is opened
            require("metrics")
        if cfg.panel is not None:
            require("panel")
        self.cfg = cfg
        self.walk_test = walk_test
        self.clock = clock or Clock()
        self.topics = Topics(cfg.site.id, cfg.gateway.id)
        make_state_dir(cfg.gateway.state_dir)
        self.outbox = Outbox(
            cfg.gateway.state_dir / "outbox.db", Limits(cfg.outbox.max_bytes, cfg.outbox.max_disk_share)
        )
        self.board = StateBoard(self.topics)
        self.memory = EventMemory(cfg.gateway.state_dir / "event-state.json")
        self.recorder = Recorder(
            self.outbox,
            self.topics,
            self.board,
            self.clock,
            self.memory,
            cfg.outbox.commit_window_ms / 1000,
            walk_test=walk_test,
        )
        self.identity = Identity.new(__version__, cfg.digest, walk_test)
        self.uplink = Uplink(
            cfg.mqtt,
            self.topics,
            self.outbox,
            self.board,
            self.identity,
            self.clock,
            client_id=f"campus-edge-{cfg.site.id}-{cfg.gateway.id}",
        )
        self.pin_factory = pin_factory if pin_factory is not None else _pin_factory(cfg)
        self.inputs = ContactInputs(cfg.gpio.inputs, self.recorder, self.clock, self.pin_factory)
        self.buses: dict[str, ModbusBus] = {}
        self.pollers: dict[str, BusPoller] = {}
        self.started = asyncio.Event()
        self.supervisor = Supervisor()
        self._controllers: dict[str, tuple[ModbusBus, int]] = {}
        self._build_pollers()
        self.site_mode = SiteMode(
            self.recorder,
            self.clock,
            panels=tuple(d.id for d in cfg.devices if d.profile == "fire_panel"),
            schedule=schedule_from(cfg.schedule) if cfg.schedule is not None else None,
            gateway_id=cfg.gateway.id,
            modes_file=cfg.gateway.state_dir / "modes.json",
            sources_file=cfg.gateway.state_dir / "fire-sources.json",
        )
        self.bollards = BollardService(
            cfg.lanes,
            self._controllers,
            self.recorder,
            self.clock,
            self.site_mode,
            cfg.gateway.state_dir / "fire-hold.json",
            self.pin_factory,
        )
        panels = frozenset(d.id for d in cfg.devices if d.profile == "fire_panel")
        self.alarms = AlarmBook(
            self.recorder,
            self.topics,
            self.clock,
            self._alarm_book_file(),
            panels,
            cfg.alarms.renotify_s,
            cfg.alarms.chatter_s,
        )
        for poller in self.pollers.values():
            poller.on_poll.append(self._panel_polled)
        self._watch_bus_load()
        self.inspector = Inspector(
            self.board,
            self.alarms,
            self.outbox,
            self.clock,
            cfg.gateway.state_dir / "detector-tests.json",
            cfg.reports.untested_after_days,
            None if walk_test else cfg.gateway.state_dir / "report-history.json",
            counting=not walk_test,
            field_doors={(d.id, f"door{door.loop}_open"): door.id for d in cfg.devices for door in d.doors},
        )
        self.report_check_s = 30.0  # how often report times are checked and the history saved
        self.recorder.on_events.append(self.inspector.on_events)
        rc = cfg.reports
        self.report_clock = ReportClock(
            rc.timezone,
            time.fromisoformat(rc.at),
            DAYS.index(rc.weekday),
            rc.day,
            cfg.gateway.state_dir / "reports.json",
        )
        self.doors = DoorAlarms(site_doors(cfg), self.recorder, self.clock, lambda: self.site_mode.closed_campus,
                                self.memory)  # fmt: skip
        if any(d.doors for d in cfg.devices):
            feed = FieldDoorFeed(cfg, self.doors)
            self.recorder.on_readings.append(feed.on_readings)
            for poller in self.pollers.values():
                poller.on_poll.append(feed.on_poll)
        self.doors.warn_unarmed(cfg.schedule is not None)
        self.site_mode.on_closed_campus.append(lambda _closed, _day: self.doors.rearm())
        self.inputs.on_door = self.doors.changed
        self.inputs.on_rex = self.doors.rex
        self.inputs.on_lockdown = self._lockdown_key
        self.commands: CommandService | None = None
        if cfg.commands is not None:
            self.commands = CommandService(
                cfg.commands,
                cfg.site.id,
                cfg.gateway.id,
                self.bollards,
                self.site_mode,
                self.clock,
                cfg.gateway.state_dir / "commands.db",
                self.topics.reply,
                self.alarms,
                publish=self.uplink.publish_reply,
            )
            self.uplink.on_command = self.commands.handle  # the uplink was made first: it takes the handler here
        self.control_path = cfg.gateway.control_socket or cfg.gateway.state_dir / "control.sock"
        self.control: ControlSocket | None = None
        if len(str(self.control_path).encode()) <= UNIX_PATH_MAX:
            self.control = ControlSocket(
                self.bollards, self.site_mode, self.control_path, cfg.gateway.control_group, alarms=self.alarms
            )
        else:  # a site with lanes is refused at load for this; without, the local CLI is what is lost
            log.error("control socket path %s is too long: no local control (campus-edge alarm)", self.control_path)
        for poller in self.pollers.values():
            poller.on_poll.append(self.site_mode.on_poll)
            poller.on_poll.append(self.bollards.on_poll)
        self.inputs.on_guard = self.bollards.guard_input
        self.health = HealthSampler(
            self.outbox,
            self.uplink,
            self.clock,
            cfg.gateway.state_dir,
            [(d.id, self.buses[d.bus], d.unit) for d in cfg.devices],
            restarts=self.supervisor.restart_counts,
            punctuality=[p.punctuality for p in self.pollers.values() if p.punctuality is not None],
        )
        self.notifier = Notifier.from_environment()  # systemd's, when it runs the gateway (install-service)
        self.metrics: MetricsServer | None = None
        if cfg.health.metrics_port is not None:
            from gateway.service.metrics import HealthCollector, MetricsServer  # noqa: PLC0415 (aiohttp: only when asked)

            collector = HealthCollector(self.health, __version__, self.identity.boot_id)
            self.metrics = MetricsServer(collector, cfg.health.metrics_address, cfg.health.metrics_port)
        self.panel: PanelServer | None = None
        if cfg.panel is not None:
            from gateway.panel.server import LinkState, PanelServer  # noqa: PLC0415 (aiohttp: only when asked)

            def link_state() -> LinkState:
                sample = self.health.sample()
                return LinkState(sample.link_up, sample.outbox_oldest_age_s)

            self.panel = PanelServer(
                cfg.panel, cfg, self.bollards, self.site_mode, self.alarms, link_state, self.recorder, self.clock
            )
            self.health.sign_ins = self.panel.gate.counts
        self.recorder.declare_recovery()

    def _alarm_book_file(self) -> Path:
        """The site's alarm book; a walk test's own, begun afresh, beside it."""
        state_dir = self.cfg.gateway.state_dir
        if not self.walk_test:
            return state_dir / "alarms.json"
        path = state_dir / "walktest-alarms.json"
        path.unlink(missing_ok=True)
        return path

    def _watch_bus_load(self) -> None:
        """R24: a line the configuration overloads is reported at start; then each bus is judged by its polling, for
        its load and for the share of its polls on time."""
        for b in self.cfg.buses:
            poller = self.pollers[b.id]
            est = None
            if isinstance(b, RtuBusConfig):
                est = estimate(b, [(e.device.name, e.device.profile, e.interval_s) for e in poller.devices])
                log.info("%s", est.summary())
            still_open = self.alarms.alarms.get(f"{b.id}.{BUS_OVERLOADED}")
            overloaded = est is not None and est.overloaded
            if overloaded and est is not None:
                self.recorder.record([], [estimate_event(est, self.clock)])
            overloaded |= still_open is not None and still_open.active
            poller.load = LoadMonitor(
                b.id, self.cfg.alarms.bus_window_s, self.clock, self._bus_load_changed, overloaded, est
            )
            behind = self.alarms.alarms.get(f"{b.id}.{POINT_BEHIND}")
            poller.punctuality = Punctuality(
                b.id,
                self.cfg.alarms.bus_window_s,
                self.clock,
                self._bus_load_changed,
                behind is not None and behind.active,
            )

    def _bus_load_changed(self, event: Event) -> None:
        self.recorder.record([], [event])

    async def _publish_health(self) -> None:
        await publish_health(self.health, self.board, self.topics, self.identity.boot_id, self.cfg.health.interval_s)

    async def _inform_systemd(self) -> None:
        await keep_systemd_informed(self.notifier, self.started, lambda: status_line(self.health.sample()))

    async def _reports(self) -> None:
        await run_reports(self.inspector, self.report_clock, self.topics.report, self.clock, self.report_check_s)

    def _panel_polled(self, entry: PolledDevice) -> None:
        if entry.last_values is not None and entry.device.name in self.alarms.panels:
            self.alarms.on_panel_poll(entry.device.name, entry.last_values)

    def _lockdown_key(self, on: bool) -> None:
        self.site_mode.set_lockdown(on, Authority.GUARD)

    def _build_pollers(self) -> None:
        now = self.clock.mono()
        wall = self.clock.wall_ms()
        for b in self.cfg.buses:
            if isinstance(b, RtuBusConfig):
                bus = ModbusBus.rtu(b.id, b.port, b.baud, b.parity, b.stopbits)
            else:
                bus = ModbusBus.tcp(b.id, b.host, b.port)
            self.buses[b.id] = bus
            entries = []
            for d in (d for d in self.cfg.devices if d.bus == b.id):
                profile = load_profile(d.profile)
                policy = RequestPolicy(
                    (d.timeout_ms or b.timeout_ms) / 1000, b.retries if d.retries is None else d.retries
                )
                device = ModbusDevice(d.id, bus, d.unit, profile, policy)
                self._controllers[d.id] = (bus, d.unit)
                tracker = DeviceTracker(
                    d.id, profile, d.offline_after_polls, d.offline_after_s, d.heartbeat_s, now, self.memory.of(d.id),
                    chatter_count=d.chatter_count, chatter_window_s=d.chatter_window_s,
                )  # fmt: skip
                self.board.register(d.id, profile.model, wall)
                entries.append(PolledDevice(device, tracker, d.poll_interval_s, d.backoff_max_s))
            self.pollers[b.id] = BusPoller(b.id, entries, self.recorder, self.clock)

    async def run(self) -> None:
        """Run until cancelled.

        The parts that hold something open are entered on one exit stack in the order they open, so that they close
        in reverse order when the gateway stops, and also when its start fails half way (a pin taken by another
        program): no failure leaves a pin, a bus or the outbox open, and what the last polls recorded is committed
        before the store closes. The servers (control socket, metrics, panel) bind in their tasks: one that cannot
        bind is restarted by the supervisor like any failing part and keeps no fire alarm from the platform.
        """
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.notifier.close)
            stack.enter_context(self.outbox)
            log.info(
                "campus-edge %s: site %s gateway %s, %d buses, %d devices, %d inputs, outbox %s (%d waiting)",
                __version__,
                self.cfg.site.id,
                self.cfg.gateway.id,
                len(self.buses),
                len(self.cfg.devices),
                len(self.cfg.gpio.inputs),
                self.outbox.path,
                self.outbox.depth(),
            )
            stack.callback(self.recorder.flush)  # what the last polls recorded, before the store closes
            stack.callback(self.alarms.close)
            for bus in self.buses.values():
                stack.push_async_exit(bus)  # opened by its first poll, again after a failure: closed here
            stack.callback(self.bollards.close)
            stack.enter_context(self.inputs)  # claims the pins
            stack.callback(self.doors.close)
            if self.commands is not None:
                stack.callback(self.commands.close)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.supervisor.keep("uplink", self.uplink.run), name="uplink")
                if self.cfg.schedule is not None:
                    tg.create_task(self.supervisor.keep("schedule", self.site_mode.follow_schedule), name="schedule")
                tg.create_task(self.supervisor.keep("alarms", self.alarms.run), name="alarms")
                if not self.walk_test:
                    tg.create_task(self.supervisor.keep("reports", self._reports), name="reports")
                if self.bollards.supervisors:
                    tg.create_task(self.supervisor.keep("bollards", self.bollards.run), name="bollards")
                if self.control is not None:
                    tg.create_task(self.supervisor.keep("control", self.control.run), name="control")
                for name, poller in self.pollers.items():
                    tg.create_task(self.supervisor.keep(f"poll[{name}]", poller.run), name=f"poll[{name}]")
                tg.create_task(self.supervisor.keep("health", self._publish_health), name="health")
                if self.metrics is not None:
                    tg.create_task(self.supervisor.keep("metrics", self.metrics.run), name="metrics")
                if self.panel is not None:
                    tg.create_task(self.supervisor.keep("panel", self.panel.run), name="panel")
                if self.notifier.enabled:
                    tg.create_task(self.supervisor.keep("systemd", self._inform_systemd), name="systemd")
                self.started.set()
