"""The commissioning check (`campus-edge check`): is this gateway, with this configuration, ready to run here?

Each check says PASS, WARN or FAIL and a line of why, in the installer's language. They look at the machine as
the gateway will meet it: the configuration as the gateway loads it, the serial ports opened with the bus
settings, the pin factory the GPIO will get (real pins on a Raspberry Pi), the RS-485 load estimated as at start
(gateway/bus_load.py), a real MQTT connection with the configured CA, client certificate, user name and password,
the kernel's clock flag, and the state directory's disk. The check connects under its own client id and publishes
nothing, so a running gateway is not disturbed.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import ssl
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import serial  # pyserial

from drivers.profile import load_profile
from gateway.base.clock import kernel_clock_synced
from gateway.base.errors import ConfigError
from gateway.base.i18n import _
from gateway.config import Config, ContactPin, RtuBusConfig, load_config
from gateway.field.bus_load import BUSY_AT, estimate
from gateway.uplink.mqtt_tls import password, tls_context

log = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 10.0
# Where Linux names the board it runs on (the device tree's model, NUL-terminated): "Raspberry Pi 4 Model B Rev 1.4".
PI_MODEL_FILES = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
# gpiozero's default pin factories in the order it tries them (gpiozero/devices.py), each with its library and a
# name that library must have: lgpio 0.0.0.2, which pip takes where no 0.2 wheel fits, is an empty lgpio.py. Its
# last, "native", is left out: gpiozero itself warns against it, and it does not know a Pi 5.
PIN_LIBRARIES = (("lgpio", "lgpio", "gpiochip_open"), ("rpigpio", "RPi.GPIO", "setmode"), ("pigpio", "pigpio", "pi"))
OUTBOX_FILES = ("outbox.db", "outbox.db-wal", "outbox.db-shm")


class Verdict(StrEnum):
    """PASS: ready. WARN: will run, but something is not as it should be. FAIL: must be fixed first."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    verdict: Verdict
    why: str


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def check_config(path: Path) -> tuple[Check, Config | None]:
    """The file as the gateway loads it; errors name the file, the line and the key."""
    name = _("configuration")
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return Check(name, Verdict.FAIL, str(exc)), None
    why = _(
        "{path}: {buses} buses, {devices} devices, {inputs} GPIO inputs, {lanes} lanes",
        path=path,
        buses=len(cfg.buses),
        devices=len(cfg.devices),
        inputs=len(cfg.gpio.inputs),
        lanes=len(cfg.lanes),
    )
    return Check(name, Verdict.PASS, why), cfg


def check_serial_ports(cfg: Config) -> list[Check]:
    """Each RS-485 bus's serial device exists and opens with the bus's settings (nothing is sent)."""
    checks = []
    for bus in cfg.buses:
        if not isinstance(bus, RtuBusConfig):
            continue
        name = _("serial port")
        settings = f"{bus.baud} 8{bus.parity}{bus.stopbits}"
        if "://" not in bus.port and not Path(bus.port).exists():
            why = _("bus {bus}: {port} does not exist (is the RS-485 adapter plugged in?)", bus=bus.id, port=bus.port)
            checks.append(Check(name, Verdict.FAIL, why))
            continue
        try:
            port = serial.serial_for_url(
                bus.port, baudrate=bus.baud, bytesize=8, parity=bus.parity, stopbits=bus.stopbits, timeout=0
            )
            port.close()
        except (serial.SerialException, OSError, ValueError) as exc:
            why = _(
                "bus {bus}: cannot open {port} at {settings}: {reason}",
                bus=bus.id,
                port=bus.port,
                settings=settings,
                reason=exc,
            )
            checks.append(Check(name, Verdict.FAIL, why))
            continue
        checks.append(Check(name, Verdict.PASS, _("bus {bus}: {port} opens at {settings}", bus=bus.id,
                                                  port=bus.port, settings=settings)))  # fmt: skip
    return checks


def check_gpio_pins(cfg: Config) -> Check:
    """No pin is wired to two things. The config loader refuses a pin used twice (naming both uses), so a
    configuration that loaded passes; this line says how many pins it uses."""
    pins: set[str] = {str(i.pin) for i in cfg.gpio.inputs}
    for lane in cfg.lanes:
        if lane.dry_contact is not None:
            pins |= {str(p) for p in lane.dry_contact.relays().values()}
            pins |= {str(c.pin) for c in lane.dry_contact.inputs().values() if isinstance(c, ContactPin)}
    return Check(_("GPIO pins"), Verdict.PASS, _("{count} pins, none used twice", count=len(pins)))


def raspberry_pi(model_files: Sequence[Path] = PI_MODEL_FILES) -> str | None:
    """The model of the Raspberry Pi this runs on, or None on any other machine."""
    for path in model_files:
        try:
            model = path.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if model.startswith("Raspberry Pi"):
            return model
    return None


def pin_library() -> tuple[str | None, bool]:
    """The pin factory gpiozero's default will load (None: none but its mock), and whether an empty lgpio was met."""
    empty_lgpio = False
    for factory, module, needed in PIN_LIBRARIES:
        try:
            lib = importlib.import_module(module)
        except (ImportError, RuntimeError):  # RPi.GPIO refuses to import off a Pi
            continue
        if hasattr(lib, needed):
            return factory, empty_lgpio
        empty_lgpio |= factory == "lgpio"
    return None, empty_lgpio


def check_pin_factory(cfg: Config, model_files: Sequence[Path] = PI_MODEL_FILES) -> Check:
    """The pin factory the gateway's GPIO will get. On a Raspberry Pi whose GPIO the site uses, only gpiozero's
    mock pins (no pin library, or lgpio's empty 0.0.0.2) is a FAIL: the inputs and relays could not work."""
    name = _("pin factory")
    model = raspberry_pi(model_files)
    used = bool(cfg.gpio.inputs) or any(lane.dry_contact is not None for lane in cfg.lanes)
    if cfg.gpio.pin_factory == "mock":
        if model is not None and used:
            return Check(name, Verdict.WARN, _('mock: simulated pins (pin_factory = "mock") on this {model}: '
                                               "nothing wired to the pins is read or driven", model=model))  # fmt: skip
        return Check(name, Verdict.PASS, _('mock: simulated pins (pin_factory = "mock")'))
    if not used:
        return Check(name, Verdict.PASS, _("none needed: no GPIO inputs and no dry-contact lanes"))
    factory, empty_lgpio = pin_library()
    if factory is not None:
        if model is None:
            return Check(name, Verdict.PASS, _("{factory}: real pins", factory=factory))
        return Check(name, Verdict.PASS, _("{factory}: real pins on this {model}", factory=factory, model=model))
    if model is None:
        return Check(name, Verdict.WARN, _('none: not a Raspberry Pi, and no library for real pins; the GPIO inputs '
                                           'and relays need pin_factory = "mock" here'))  # fmt: skip
    if empty_lgpio:
        why = _("{model}: lgpio is installed but empty (lgpio 0.0.0.2, which pip takes where no lgpio 0.2 fits, as "
                "on Python 3.13), so only gpiozero's mock pins are left: the GPIO inputs and relays cannot work "
                "(see the installer guide)", model=model)  # fmt: skip
    else:
        why = _("{model}: no library for real pins (lgpio, RPi.GPIO or pigpio), only gpiozero's mock pins: the GPIO "
                "inputs and relays cannot work (install lgpio, see the installer guide)", model=model)  # fmt: skip
    return Check(name, Verdict.FAIL, why)


def check_bus_load(cfg: Config) -> list[Check]:
    """Each RS-485 line's load from the configured polling (R24): WARN above 80 %, FAIL above 100 %."""
    checks = []
    for bus in cfg.buses:
        if not isinstance(bus, RtuBusConfig):
            continue
        devices = [(d.id, load_profile(d.profile), d.poll_interval_s) for d in cfg.devices if d.bus == bus.id]
        est = estimate(bus, devices)
        heavy = sorted(est.devices, key=lambda d: d.share, reverse=True)[:3]
        names = ", ".join(
            _("{device} {ms:.0f} ms every {interval:g} s", device=d.device, ms=d.poll_s * 1000, interval=d.interval_s)
            for d in heavy
        )
        name = _("RS-485 load")
        if est.load > 1.0:
            why = _("bus {bus}: bus overloaded, polling needs {load:.0%} of the line (heaviest: {devices})",
                    bus=bus.id, load=est.load, devices=names)  # fmt: skip
            checks.append(Check(name, Verdict.FAIL, why))
        elif est.load > BUSY_AT:
            why = _("bus {bus}: near the limit, polling needs {load:.0%} of the line (heaviest: {devices})",
                    bus=bus.id, load=est.load, devices=names)  # fmt: skip
            checks.append(Check(name, Verdict.WARN, why))
        else:
            why = _("bus {bus}: polling needs {load:.0%} of the line ({count} devices at {baud} baud)",
                    bus=bus.id, load=est.load, count=len(devices), baud=bus.baud)  # fmt: skip
            checks.append(Check(name, Verdict.PASS, why))
    return checks


async def _connect(cfg: Config, url: str, timeout_s: float) -> str:
    """Connect to one broker URL as the gateway would, then disconnect; return how (TLS, certificate, user).

    Raises:
        aiomqtt.MqttError, OSError (ssl.SSLError among them), TimeoutError: the reason it failed.
    """
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    assert parts.hostname is not None
    protocol = aiomqtt.ProtocolVersion.V5 if cfg.mqtt.protocol == "5" else aiomqtt.ProtocolVersion.V311
    client = aiomqtt.Client(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        # Never the gateway's own client id: the broker would drop a running gateway's session for it.
        identifier=f"{cfg.gateway.id}-check-{uuid.uuid4().hex[:8]}",
        protocol=protocol,
        username=cfg.mqtt.username,
        password=password(cfg.mqtt),
        tls_context=tls_context(cfg.mqtt) if tls else None,
        timeout=timeout_s,
        clean_session=True if protocol is aiomqtt.ProtocolVersion.V311 else None,
    )
    async with asyncio.timeout(timeout_s + 1), client:
        pass
    how = [_("TLS") if tls else _("plaintext")]
    if tls and cfg.mqtt.cert_file is not None:
        how.append(_("client certificate"))
    if cfg.mqtt.username is not None:
        how.append(_("user {user}", user=cfg.mqtt.username))
    return ", ".join(how)


async def check_broker(cfg: Config, timeout_s: float = BROKER_TIMEOUT_S) -> list[Check]:
    """Each broker URL with the configured TLS and credentials. One unreachable URL among working ones is a
    WARN (the gateway fails over); none reachable is a FAIL."""
    connected: dict[str, str] = {}
    failed: dict[str, str] = {}
    for url in cfg.mqtt.urls:
        try:
            connected[url] = await _connect(cfg, url, timeout_s)
        except (aiomqtt.MqttError, OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("check: broker %s: %r", url, exc)
            failed[url] = str(exc) or _("no answer within {seconds:g} s", seconds=timeout_s)
    checks = []
    for url in cfg.mqtt.urls:
        if url in connected:
            checks.append(Check(_("broker"), Verdict.PASS, _("{url}: connected ({how})", url=url, how=connected[url])))
        else:
            verdict = Verdict.WARN if connected else Verdict.FAIL
            why = _("{url}: cannot connect: {reason}", url=url, reason=failed[url])
            checks.append(Check(_("broker"), verdict, why))
    return checks


def check_clock(synced: Callable[[], bool] = kernel_clock_synced) -> Check:
    """The kernel's NTP flag. Unsynchronised, the gateway runs but suspends what needs the time of day."""
    name = _("clock")
    if synced():
        return Check(name, Verdict.PASS, _("synchronised"))
    return Check(name, Verdict.WARN, _(
        "not synchronised: the closed-campus schedule, the hazard reports and signed commands are suspended until "
        "it is (check NTP: timedatectl)"
    ))  # fmt: skip


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_state_dir(cfg: Config) -> list[Check]:
    """The state directory can be written (it will be created if missing), and its disk holds the outbox."""
    state = cfg.gateway.state_dir
    name = _("state directory")
    base = _existing(state)
    if not base.is_dir():
        return [Check(name, Verdict.FAIL, _("{path}: {base} is not a directory", path=state, base=base))]
    try:
        if base == state:
            with tempfile.NamedTemporaryFile(dir=state, prefix=".check-"):
                pass
            writable = Check(name, Verdict.PASS, _("{path} is writable", path=state))
        else:
            os.rmdir(tempfile.mkdtemp(dir=base, prefix=".check-"))
            writable = Check(name, Verdict.PASS, _("{path} does not exist yet; the gateway can create it",
                                                     path=state))  # fmt: skip
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return [Check(name, Verdict.FAIL, _("cannot write in {path}: {reason}", path=base, reason=reason))]
    return [writable, _outbox_space(cfg, base)]


def _outbox_space(cfg: Config, base: Path) -> Check:
    """Free space (for an unprivileged user) plus what the outbox already holds, against `[outbox] max_bytes`;
    the outbox also keeps to `max_disk_share` of it."""
    name = _("outbox disk space")
    st = os.statvfs(base)
    free = st.f_bavail * st.f_frsize
    held = sum((cfg.gateway.state_dir / f).stat().st_size for f in OUTBOX_FILES if (cfg.gateway.state_dir / f).exists())
    room = free + held
    want = cfg.outbox.max_bytes
    if room < want:
        why = _("the outbox may grow to {want} but {path} has {room} free: it cannot fit (lower [outbox] max_bytes "
                "or free the disk)", want=_mib(want), path=base, room=_mib(room))  # fmt: skip
        return Check(name, Verdict.FAIL, why)
    share = cfg.outbox.max_disk_share
    if room * share < want:
        why = _("{path} has {room} free: the outbox will keep to {share:.0%} of it, {limit}, below max_bytes {want}",
                path=base, room=_mib(room), share=share, limit=_mib(room * share), want=_mib(want))  # fmt: skip
        return Check(name, Verdict.WARN, why)
    return Check(name, Verdict.PASS, _("{path} has {room} free for an outbox of up to {want}", path=base,
                                       room=_mib(room), want=_mib(want)))  # fmt: skip


async def run_checks(
    path: Path,
    synced: Callable[[], bool] = kernel_clock_synced,
    broker_timeout_s: float = BROKER_TIMEOUT_S,
    model_files: Sequence[Path] = PI_MODEL_FILES,
) -> list[Check]:
    """Every check, in the order an installer fixes things; after a configuration error, only that one."""
    config_check, cfg = check_config(path)
    if cfg is None:
        return [config_check]
    checks = [config_check, *check_serial_ports(cfg), check_gpio_pins(cfg), check_pin_factory(cfg, model_files)]
    checks += check_bus_load(cfg)
    checks += await check_broker(cfg, broker_timeout_s)
    checks.append(check_clock(synced))
    checks += check_state_dir(cfg)
    return checks


def passed(checks: list[Check]) -> bool:
    """No FAIL."""
    return all(c.verdict is not Verdict.FAIL for c in checks)
