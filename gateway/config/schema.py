"""Site configuration: one TOML file validated once into frozen typed models.

Every error names the file, the line and the key, and says what was expected; nothing starts on a bad file.
The key stays as written in the TOML; what was expected is a catalogue Message, said in the installer's language
on a terminal and in English in the service's log.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

from drivers.errors import ProfileError
from drivers.profile import load_profile, shipped_profiles
from gateway.base.contract import ACTIONS
from gateway.base.errors import ConfigError, os_reason
from gateway.base.i18n import N_, Message, MessageError
from gateway.base.keys import KeyFileError, check_private_file, load_public

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
_T = TypeVar("_T")
# Types are strict (a string is never a number or a boolean, nor a float an integer), except where TOML has no
# type of its own: a path is a string, and a list is a TOML array (its items stay strict).
ConfigPath = Annotated[Path, Strict(False)]
Array = Annotated[tuple[_T, ...], Strict(False)]


def _toml_type(value: object) -> Message:
    """What a TOML value is, in the installer's words: said after what was expected instead."""
    kinds: tuple[tuple[type, str], ...] = (
        (bool, N_("a boolean")), (int, N_("an integer")), (float, N_("a number with a decimal point")),
        (str, N_("a string in quotes")), (list, N_("a list")), (dict, N_("a table")),
        (datetime, N_("a date and time")), (date, N_("a date")), (time, N_("a time of day")),
    )  # fmt: skip
    return Message(next((name for kind, name in kinds if isinstance(value, kind)), N_("a value of another type")))


def _exact_int(value: object) -> object:
    """An integer choice (Literal[1, 2]) takes true as 1 and 1.0 as 1 even in strict mode: refused here."""
    if type(value) is not int:
        raise PydanticKnownError("int_type")
    return value


IntChoice = BeforeValidator(_exact_int)


def _pin_type(value: object) -> object:
    """A pin's type checked before the union (int | str), which would say each member's error in turn."""
    if type(value) not in (int, str):
        raise MessageError(N_("expected a pin like 17, 'GPIO17', 'BOARD11' or 'J8:11', not {given}"),
                           given=_toml_type(value))  # fmt: skip
    return value


def _contact_or_pin_type(value: object) -> object:
    """As `_pin_type`, for an input that may also be a table (ContactPin); a table's own errors are its keys'."""
    if type(value) not in (int, str, dict):
        raise MessageError(N_("expected a pin like 17 or 'GPIO17', or a table with its pin and contact, not {given}"),
                           given=_toml_type(value))  # fmt: skip
    return value


# A GPIO pin: a BCM number or a name.
GpioPin = Annotated[int | str, BeforeValidator(_pin_type)]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MessageError(N_("unknown time zone {value!r} (expected e.g. 'Asia/Shanghai')"), value=value) from exc
    return value


Zone = Annotated[str, AfterValidator(_known_zone)]
HourMinute = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]  # "HH:MM", local time


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SiteConfig(_Frozen):
    """The campus (or part of one) this gateway serves."""

    id: Id
    name: str = ""
    # The language of the commands run on the gateway (guards', installers'); `--lang` wins, the locale follows.
    language: Literal["zh-CN", "en"] | None = None


def configured_language(path: Path) -> str | None:
    """`[site] language` of a configuration file, read without validating the rest (a guard's command line may not
    read the key files the full check opens); None when absent or unreadable."""
    try:
        site = tomllib.loads(path.read_text(encoding="utf-8")).get("site", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    lang = site.get("language") if isinstance(site, dict) else None
    return lang if lang in ("zh-CN", "en") else None


class GatewayConfig(_Frozen):
    """This gateway."""

    id: Id
    state_dir: ConfigPath = Path("/var/lib/campus-edge")
    control_socket: ConfigPath | None = None  # the gate house's local control; default: state_dir/control.sock
    control_group: str | None = None  # members of this group may use it (the socket is 0660)


class MqttConfig(_Frozen):
    """The link to the platform's broker. Several URLs are tried in turn."""

    urls: Array[str] = Field(min_length=1)
    protocol: Literal["5", "3.1.1"] = "5"
    allow_plaintext: bool = False
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    username: str | None = None
    password_file: ConfigPath | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    publish_timeout_s: float = Field(default=5.0, gt=0, le=60)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    batch_max_readings: int = Field(default=500, ge=1, le=5000)
    inflight_max: int = Field(default=16, ge=1, le=1000)
    delivery: Literal["broker", "platform"] = "broker"
    ack_timeout_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise MessageError(N_("expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}"), url=url)
        return urls

    @model_validator(mode="after")
    def _plaintext(self) -> MqttConfig:
        plain = [u for u in self.urls if u.startswith("mqtt://")]
        if plain and not self.allow_plaintext:
            raise MessageError(N_("{url} is plaintext MQTT; use mqtts:// or set allow_plaintext = true"), url=plain[0])
        return self


class OutboxConfig(_Frozen):
    """Bounds of the local store: bytes, and a share of the disk (whichever is smaller). Both count every file the
    store keeps (database, WAL, ballast), so the smallest bound that leaves room for rows is 1 MiB.

    `commit_window_ms`: readings and events wait this long for others to share their commit (one fsync for many
    polls); 0 commits what each turn of the event loop recorded. Alarms never wait.
    """

    max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    max_disk_share: float = Field(default=0.5, gt=0, le=0.95)
    commit_window_ms: float = Field(default=2.0, ge=0, le=1000)


class RtuBusConfig(_Frozen):
    """An RS-485 line on a serial device, Modbus RTU."""

    id: Id
    type: Literal["rtu"]
    port: str
    baud: Annotated[Literal[2400, 4800, 9600, 19200, 38400, 57600, 115200], IntChoice] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Annotated[Literal[1, 2], IntChoice] = 1
    timeout_ms: int = Field(default=500, ge=10, le=10000)
    retries: int = Field(default=2, ge=0, le=5)
    # A device's own time to answer, added to each transaction's wire time when the line's load is estimated.
    reply_latency_ms: int = Field(default=20, ge=0, le=5000)


class TcpBusConfig(_Frozen):
    """A Modbus TCP server: a device, or a TCP-to-RTU gateway."""

    id: Id
    type: Literal["tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    timeout_ms: int = Field(default=1000, ge=10, le=10000)
    retries: int = Field(default=2, ge=0, le=5)


BusConfig = Annotated[RtuBusConfig | TcpBusConfig, Field(discriminator="type")]


class FieldDoorConfig(_Frozen):
    """A door on a loop of a field node (a door_node device): forced-open and held-open alarms (R11) as a door on a
    GPIO pin has, armed by the same rules; a rex input may name it as its door."""

    loop: int = Field(ge=1, le=4)
    id: Id
    name: str = ""
    armed: Literal["schedule", "always", "never"] = "schedule"
    rex_window_s: float = Field(default=1.0, ge=0, le=30)
    held_open_s: float = Field(default=60.0, gt=0, le=86400)
    held_prewarn_s: float | None = Field(default=None, gt=0, le=86400)  # default: 3/4 of held_open_s


class DeviceConfig(_Frozen):
    """A Modbus device, decoded by a profile."""

    id: Id
    bus: Id
    unit: int = Field(ge=1, le=247)
    profile: str
    name: str = ""
    poll_interval_s: float = Field(default=1.0, ge=0.01, le=3600)
    timeout_ms: int | None = Field(default=None, ge=10, le=10000)
    retries: int | None = Field(default=None, ge=0, le=5)
    offline_after_polls: int = Field(default=3, ge=1, le=100)
    offline_after_s: float = Field(default=10.0, ge=0, le=3600)
    backoff_max_s: float = Field(default=30.0, ge=0.1, le=3600)
    heartbeat_s: float = Field(default=300.0, ge=1, le=86400)
    # R10 for points whose changes the device counts itself (a profile's `counts`, e.g. a door node's loops): more
    # changes than this within the window, seen by a poll or not, is an unstable point, as on a GPIO input.
    chatter_count: int = Field(default=10, ge=2, le=1000)
    chatter_window_s: float = Field(default=10.0, gt=0, le=3600)
    doors: Array[FieldDoorConfig] = ()  # a door node's loops that are doors with alarms


class GpioInputConfig(_Frozen):
    """A contact on a GPIO pin: a door, a panel's trouble relay (normally energised: open = trouble), or a panel's
    fire relay (closes on fire: a fire alarm that reaches the gateway even when the panel's serial link is down)."""

    id: Id
    pin: GpioPin
    kind: Literal[
        "door", "trouble_relay", "fire_relay", "bollard_raise", "bollard_lower", "bollard_stop", "efo_key",
        "lockdown_key", "rex",
    ]  # fmt: skip
    lane: Id | None = None  # for the gate house's buttons and the EFO key: the lane they act on
    door: Id | None = None  # for a request-to-exit button or an access grant (kind rex): its door
    contact: Literal["NC", "NO"] = "NC"
    debounce_ms: int = Field(default=50, ge=0, le=1000)
    name: str = ""
    # R10: more changes than this within the window is an unstable input: one warning with a count, not a flood.
    chatter_count: int = Field(default=10, ge=2, le=1000)
    chatter_window_s: float = Field(default=10.0, gt=0, le=3600)
    # So are more raw edges than this (before the debounce) within the window: a contact chattering faster than
    # its debounce can settle shows no change at all. A clean door opening bounces some tens of edges.
    chatter_edges: int = Field(default=200, ge=10, le=100_000)
    # Doors (R11): forced-open and held-open alarms, during the closed-campus schedule, always, or never.
    armed: Literal["schedule", "always", "never"] = "schedule"
    rex_window_s: float = Field(default=1.0, ge=0, le=30)
    held_open_s: float = Field(default=60.0, gt=0, le=86400)
    held_prewarn_s: float | None = Field(default=None, gt=0, le=86400)  # default: 3/4 of held_open_s


class PeriodConfig(_Frozen):
    """School hours on some days: `start` and `end` as "HH:MM" local time (an end before the start runs past
    midnight)."""

    days: Array[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: HourMinute
    end: HourMinute


class ExtraDayConfig(_Frozen):
    """A make-up school day (调休): on `date`, the periods of the weekday `as` apply."""

    date: date
    as_: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(alias="as")


class ScheduleConfig(_Frozen):
    """The closed-campus schedule: scheduled lanes up and doors armed while the school is in session."""

    timezone: Zone = "Asia/Shanghai"
    periods: Array[PeriodConfig] = Field(min_length=1)
    holidays: Array[date] = ()
    extra_days: Array[ExtraDayConfig] = ()


class GpioConfig(_Frozen):
    """GPIO pins; `pin_factory = "mock"` runs against simulated pins."""

    pin_factory: Literal["default", "mock"] = "default"
    inputs: Array[GpioInputConfig] = ()


class ContactPin(_Frozen):
    """A contact on a GPIO pin and when it reads active (NO: when closed; NC: when open, so a cut wire is active)."""

    pin: GpioPin
    contact: Literal["NC", "NO"]


# A contact input: a pin alone (the usual contact) or a table with its pin and contact.
ContactOrPin = Annotated[ContactPin | int | str, BeforeValidator(_contact_or_pin_type)]


class DryContactConfig(_Frozen):
    """A bollard controller wired by dry contacts: relays on GPIO outputs close its terminals, its limit switches
    and safety devices are contacts on GPIO inputs. A pin alone takes the usual contact (limits NO, safety NC);
    `{ pin = 20, contact = "NC" }` says otherwise. Unwired optional inputs read inactive."""

    raise_relay: GpioPin
    lower_relay: GpioPin
    stop_relay: GpioPin
    warning_relay: GpioPin  # lights and buzzer: the gateway gives the pre-warning such a controller cannot (R13)
    efo_relay: GpioPin | None = None
    relay_active_high: bool = True
    pulse_ms: int = Field(default=500, ge=50, le=5000)
    poll_ms: int = Field(default=50, ge=10, le=500)
    limit_up: ContactOrPin
    limit_down: ContactOrPin
    loop_a: ContactOrPin
    loop_b: ContactOrPin | None = None
    photocell: ContactOrPin
    pressure_edge: ContactOrPin | None = None
    estop: ContactOrPin | None = None
    local_mode: ContactOrPin | None = None
    manual_release: ContactOrPin | None = None

    def relays(self) -> dict[str, GpioPin]:
        """Relay name -> pin, for the wired ones."""
        wired = {
            "raise": self.raise_relay,
            "lower": self.lower_relay,
            "stop": self.stop_relay,
            "warning": self.warning_relay,
            "efo": self.efo_relay,
        }
        return {name: pin for name, pin in wired.items() if pin is not None}

    def inputs(self) -> dict[str, ContactPin]:
        """Input name (as the Modbus controller's discrete inputs) -> pin and contact, for the wired ones."""
        wired: dict[str, tuple[ContactPin | GpioPin | None, Literal["NC", "NO"]]] = {
            "limit_up": (self.limit_up, "NO"),
            "limit_down": (self.limit_down, "NO"),
            "loop_a_occupied": (self.loop_a, "NC"),
            "loop_b_occupied": (self.loop_b, "NC"),
            "photocell_blocked": (self.photocell, "NC"),
            "pressure_edge_active": (self.pressure_edge, "NC"),
            "estop_pressed": (self.estop, "NC"),
            "local_mode": (self.local_mode, "NO"),
            "manual_release_engaged": (self.manual_release, "NO"),
        }
        out: dict[str, ContactPin] = {}
        for name, (given, usual) in wired.items():
            if isinstance(given, ContactPin):
                out[name] = given
            elif given is not None:
                out[name] = ContactPin(pin=given, contact=usual)
        return out


class LaneConfig(_Frozen):
    """A bollard lane: one controller, a Modbus `bollard_controller` device or a `dry_contact` one, and how the
    gateway supervises it. `power_loss` is what the lane's hardware does without power (R18): `auto_lower` for a
    fire lane, `stay` where the lane must stay closed; a Modbus controller's own register is checked against it."""

    id: Id
    controller: Id | None = None
    dry_contact: DryContactConfig | None = None
    power_loss: Literal["stay", "auto_lower"]
    name: str = ""
    fire_lane: bool = False
    pre_warn_ms: int = Field(default=1000, ge=1000, le=10000)
    scheduled: bool = True  # raised during the closed-campus schedule, when there is one
    rise_timeout_s: float = Field(default=10.0, gt=0, le=120)
    lower_timeout_s: float = Field(default=8.0, gt=0, le=120)
    loop_clear_delay_s: float = Field(default=1.0, ge=0, le=60)
    max_staleness_s: float = Field(default=1.0, gt=0, le=30)
    command_ttl_s: float = Field(default=5.0, gt=0, le=60)
    command_timeout_ms: int = Field(default=500, ge=10, le=10000)


class CommandKeyConfig(_Frozen):
    """A public key the gateway accepts signed commands from (issue 7): whose it is and what its roles allow."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    issuer: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    public_key_file: ConfigPath
    roles: Array[Literal["guard", "operator", "admin"]] = Field(min_length=1)
    revoked: bool = False
    targets: Array[str] | None = None  # the lanes (or the gateway id) this key may act on; default: all


class CommandsConfig(_Frozen):
    """Signed commands from the platform and guard stations, on `campus/v1/{site}/{gateway}/cmd/{target}`.
    `roles` may narrow what each role may do (action names as in the contract)."""

    keys: Array[CommandKeyConfig] = Field(min_length=1)
    skew_s: float = Field(default=2.0, ge=0, le=30)
    # Commands looked at, at most, a second (burst: at once); beyond, dropped unread and counted: a flood must
    # not take the CPU the fire alarms need.
    max_per_s: float = Field(default=20.0, gt=0, le=1000)
    burst: int = Field(default=40, ge=1, le=10000)
    roles: dict[Literal["guard", "operator", "admin"], Array[str]] = Field(default_factory=dict)


class AlarmsConfig(_Frozen):
    """The alarm book: unacknowledged alarms are announced again this often."""

    renotify_s: float = Field(default=300.0, ge=10, le=86400)
    # A risk warning coming and going faster than this is counted, and announced once it settles.
    chatter_s: float = Field(default=60.0, ge=1, le=86400)
    # A bus is judged overloaded, or not, from each window this long of its polling (R24).
    bus_window_s: float = Field(default=60.0, ge=1, le=3600)


class ReportsConfig(_Frozen):
    """Hazard-check reports: daily at `at` (local time), weekly on `weekday`, monthly on `day` of the month."""

    timezone: Zone = "Asia/Shanghai"
    at: HourMinute = "07:00"
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    day: int = Field(default=1, ge=1, le=28)
    untested_after_days: int = Field(default=30, ge=1, le=366)  # a detector not self-tested this long is listed


def _loopback(value: str) -> str:
    try:
        loopback = value == "localhost" or ipaddress.ip_address(value).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise MessageError(
            N_("expected a loopback address (127.0.0.1, ::1 or localhost), got {value!r}: the metrics endpoint has "
               "no authentication and stays on this machine"),
            value=value,
        )  # fmt: skip
    return value


class HealthConfig(_Frozen):
    """Health telemetry on `.../health` every `interval_s`; a Prometheus text endpoint on this machine only,
    at http://`metrics_address`:`metrics_port`/metrics, off unless `metrics_port` is set (0: any free port, logged)."""

    interval_s: float = Field(default=60.0, ge=1, le=3600)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_address: Annotated[str, AfterValidator(_loopback)] = "127.0.0.1"


PIN_HASH = r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"


def _pin_hash(value: str) -> str:
    if not re.fullmatch(PIN_HASH, value):
        raise MessageError(N_("expected the hash `campus-edge panel hash-pin` prints (scrypt$...), never the PIN"))
    return value


class PanelGuardConfig(_Frozen):
    """A guard who may sign in at the gate-house panel: the PIN is kept only as `campus-edge panel hash-pin`'s
    scrypt hash; the role is one of the command roles (what it may do: [commands] roles, or the defaults)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    name: str = Field(default="", max_length=64)  # shown on the panel and kept in the audit beside the id
    pin_hash: Annotated[str, AfterValidator(_pin_hash)]
    role: Literal["guard", "operator", "admin"] = "guard"


class PanelConfig(_Frozen):
    """The gate-house panel (issue 10): HTTPS on `address`:`port` with the gateway's certificate, off unless this
    table is present. Sessions end `session_s` after sign-in; a guard has `max_attempts` tries: that many wrong PINs in
    a row (the last still answered as wrong) lock the guard id out for `lockout_s` from the next attempt on, and
    `address_attempts` (default four times `max_attempts`) the address they came from."""

    address: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    cert_file: ConfigPath = Path("tls/gateway.crt")
    key_file: ConfigPath = Path("tls/gateway.key")
    guards: Array[PanelGuardConfig] = Field(min_length=1)
    session_s: float = Field(default=900.0, ge=10, le=43200)
    max_attempts: int = Field(default=5, ge=1, le=20)
    address_attempts: int | None = Field(default=None, ge=1, le=200)
    lockout_s: float = Field(default=300.0, ge=1, le=86400)

    @property
    def address_limit(self) -> int:
        """Wrong PINs in a row from one address (any guard ids) that lock the address out."""
        return self.address_attempts if self.address_attempts is not None else 4 * self.max_attempts

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise MessageError(N_("expected an IP address of this gateway, got {value!r}"), value=value) from None
        return value


class Config(_Frozen):
    """The whole site configuration."""

    site: SiteConfig
    gateway: GatewayConfig
    mqtt: MqttConfig
    outbox: OutboxConfig = OutboxConfig()
    buses: Array[BusConfig] = ()
    devices: Array[DeviceConfig] = ()
    gpio: GpioConfig = GpioConfig()
    lanes: Array[LaneConfig] = ()
    schedule: ScheduleConfig | None = None
    commands: CommandsConfig | None = None
    alarms: AlarmsConfig = AlarmsConfig()
    reports: ReportsConfig = ReportsConfig()
    health: HealthConfig = HealthConfig()
    panel: PanelConfig | None = None
    source: str = Field(default="", exclude=True)
    digest: str = Field(default="", exclude=True)


def _line_map(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths (as pydantic reports them) to the line that defines them, for error messages."""
    lines: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str | int, ...], int] = {}
    current: tuple[str | int, ...] = ()
    header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    key = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            parts: tuple[str | int, ...] = ()
            for name in m.group(2).split("."):
                if parts in counters:
                    parts = (*parts, counters[parts])  # a table inside the latest entry of an array of tables
                parts = (*parts, name)
            if m.group(1) == "[[":
                index = counters.get(parts, -1) + 1
                counters[parts] = index
                current = (*parts, index)
            else:
                current = parts
            lines.setdefault(current, number)
            continue
        m = key.match(line)
        if m:
            lines.setdefault((*current, m.group(1)), number)
    return lines


def _written(data: object, loc: tuple[str | int, ...], kind: str) -> tuple[str | int, ...]:
    """pydantic's location of an error as the keys and indexes the file has: unions add the member they tried
    (a bus's "rtu", a pin's "int" or "ContactPin"), a dict its "[key]"; a missing key is the one that is not."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        children = node if isinstance(node, dict) else dict(enumerate(node)) if isinstance(node, list) else {}
        if part in children:
            node = children[part]
        elif not (kind == "missing" and i == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _where(lines: dict[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> tuple[int | None, str]:
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]], key
    return None, key


# pydantic's error types an installer meets, as catalogue templates filled from the error's context (limits,
# pattern, choices). Where pydantic's English names a TOML thing well it is kept word for word; where it names a
# Python one (tuple, dictionary, a model class) the TOML word replaces it.
_PYDANTIC: dict[str, str] = {
    "missing": N_("required key is missing"),
    "extra_forbidden": N_("unknown key"),
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "literal_error": N_("Input should be {expected}"),
    "too_short": N_("Input should have at least {min_length} item(s), not {actual_length}"),
    "too_long": N_("Input should have at most {max_length} item(s), not {actual_length}"),
    "union_tag_invalid": N_("Input should be one of {expected_tags}, not {tag!r}"),
    "union_tag_not_found": N_("required key {discriminator} is missing"),
}
# Strict types (no string is a number, no integer a boolean): these errors say what was written instead.
_TYPES: dict[str, str] = {
    "int_type": N_("Input should be a valid integer"),
    "float_type": N_("Input should be a valid number"),
    "string_type": N_("Input should be a valid string"),
    "bool_type": N_("Input should be a valid boolean"),
    "tuple_type": N_("Input should be a list"),
    "list_type": N_("Input should be a list"),
    "dict_type": N_("Input should be a table"),
    "model_type": N_("Input should be a table"),
    "model_attributes_type": N_("Input should be a table"),
    "date_type": N_("Input should be a valid date (YYYY-MM-DD)"),
    "path_type": N_("Input should be a valid path"),
}


def _one_of(choices: str) -> Message:
    """pydantic's list of a Literal's values (`'a', 'b' or 'c'`), its "or" in the reader's language."""
    items = re.split(r", | or ", choices)
    if len(items) == 1:
        return Message.untranslated(choices)
    return Message(N_("{choices} or {last}"), choices=", ".join(items[:-1]), last=items[-1])


def _expected(err: Any) -> Message:
    """What pydantic found wrong, as a Message: ours when a validator raised one, a catalogue template for the
    common error types, pydantic's English for the rest."""
    kind = err["type"]
    ctx = dict(err.get("ctx") or {})
    error = ctx.get("error")
    if isinstance(error, MessageError):
        return error.message
    if kind in _TYPES:
        return Message(N_("{expected}, not {given}"), expected=Message(_TYPES[kind]), given=_toml_type(err["input"]))
    if kind in _PYDANTIC:
        # A float limit pydantic says as an integer (gt=0 on a float: "greater than 0"); say it the same way.
        ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
        if kind == "literal_error":
            ctx["expected"] = _one_of(str(ctx["expected"]))
        try:
            _PYDANTIC[kind].format(**ctx)
        except (KeyError, IndexError):  # a context pydantic shapes differently in some version: say it its way
            pass
        else:
            return Message(_PYDANTIC[kind], **ctx)
    return Message.untranslated(str(err["msg"]).removeprefix("Value error, "))


Problems = list[tuple[tuple[str | int, ...], Message]]
GUARD_KINDS = frozenset({"bollard_raise", "bollard_lower", "bollard_stop", "efo_key"})
UNIX_PATH_MAX = 107  # a Unix socket path longer than this cannot be bound
_BCM_MAX = 27  # the GPIO numbers on a Raspberry Pi's 40-pin header
_PIN_NAME = re.compile(r"(GPIO|BCM|BOARD|WPI)\d{1,2}|J8:\d{1,2}")
_DRY_PINS = (
    "raise_relay", "lower_relay", "stop_relay", "warning_relay", "efo_relay", "limit_up", "limit_down", "loop_a",
    "loop_b", "photocell", "pressure_edge", "estop", "local_mode", "manual_release",
)  # fmt: skip
DEFAULT_PASSWORDS = frozenset(
    {b"", b"password", b"passw0rd", b"admin", b"public", b"changeme", b"123456", b"12345678", b"mosquitto", b"guest"}
)  # fmt: skip
_MQTT_FILES = ("ca_file", "cert_file", "key_file", "password_file")


def _check_files(mqtt: MqttConfig, base_dir: Path) -> tuple[dict[str, Path], Problems]:
    """Credential files resolved against the config's folder, and each one that cannot be read."""
    resolved: dict[str, Path] = {}
    problems: Problems = []
    for name in _MQTT_FILES:
        path: Path | None = getattr(mqtt, name)
        if path is None:
            continue
        full = path if path.is_absolute() else base_dir / path
        resolved[name] = full
        try:
            with open(full, "rb") as f:
                content = f.read(256)
        except OSError as exc:
            problems.append(
                (("mqtt", name), Message(N_("cannot read {path}: {error}"), path=full, error=os_reason(exc)))
            )
            continue
        if not content:
            problems.append((("mqtt", name), Message(N_("{path} is empty"), path=full)))
        elif name in ("key_file", "password_file") or _holds_private_key(full):
            secret = _secret_problem(full)
            if secret is not None:
                problems.append((("mqtt", name), secret))
            if name == "password_file" and content.strip().lower() in DEFAULT_PASSWORDS:
                problems.append(
                    (("mqtt", name), Message(N_("{path} holds a default password; set a real one"), path=full))
                )
    if mqtt.key_file is not None and mqtt.cert_file is None:
        problems.append((("mqtt", "key_file"), Message(N_("a key_file needs its cert_file"))))
    return resolved, problems


_PRIVATE_KEY_PEM = re.compile(rb"^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", re.MULTILINE)


def _holds_private_key(path: Path) -> bool:
    """A certificate file with the private key in it too (one PEM for both): a secret, like the key file."""
    try:
        return _PRIVATE_KEY_PEM.search(path.read_bytes()) is not None
    except OSError:
        return False


def _secret_problem(path: Path) -> Message | None:
    """Why a secret file cannot be used (others may read it, another user owns it), with the command that fixes
    it; None when it is private to this process's user."""
    try:
        check_private_file(path)
    except KeyFileError as exc:
        return exc.message
    return None


def _check_command_keys(commands: CommandsConfig | None, base_dir: Path) -> tuple[CommandsConfig | None, Problems]:
    """Command keys resolved against the config's folder; each that is not an Ed25519 public key, or whose id
    is used twice, or a role that names an action that does not exist."""
    if commands is None:
        return None, []
    problems: Problems = []
    keys = []
    seen: set[str] = set()
    for i, key in enumerate(commands.keys):
        path = key.public_key_file if key.public_key_file.is_absolute() else base_dir / key.public_key_file
        if key.id in seen:
            problems.append((("commands", "keys", i, "id"), Message(N_("key id {id!r} is used twice"), id=key.id)))
        seen.add(key.id)
        try:
            load_public(path)
        except KeyFileError as exc:
            problems.append((("commands", "keys", i, "public_key_file"), exc.message))
        keys.append(key.model_copy(update={"public_key_file": path}))
    for role, actions in commands.roles.items():
        unknown = sorted(set(actions) - set(ACTIONS))
        if unknown:
            no_action = Message(
                N_("no action {action!r}; expected some of {known}"), action=unknown[0], known=list(ACTIONS)
            )
            problems.append((("commands", "roles", role), no_action))
    return commands.model_copy(update={"keys": tuple(keys)}), problems


def _check_panel(panel: PanelConfig | None, base_dir: Path) -> tuple[PanelConfig | None, Problems]:
    """The panel's certificate and key resolved against the config's folder and there, the key (and a certificate
    that holds one) private; guard ids used once."""
    if panel is None:
        return None, []
    problems: Problems = []
    files: dict[str, Path] = {}
    for key in ("cert_file", "key_file"):
        path: Path = getattr(panel, key)
        path = path if path.is_absolute() else base_dir / path
        files[key] = path
        if not path.is_file():
            problems.append((("panel", key), Message(N_("no such file: {path}"), path=path)))
        elif key == "key_file" or _holds_private_key(path):
            secret = _secret_problem(path)
            if secret is not None:
                problems.append((("panel", key), secret))
    seen: set[str] = set()
    for i, guard in enumerate(panel.guards):
        if guard.id in seen:
            problems.append((("panel", "guards", i, "id"), Message(N_("guard id {id!r} is used twice"), id=guard.id)))
        seen.add(guard.id)
    return panel.model_copy(update=files), problems


# What an id already belongs to, in "id 'x' is already used by a device".
_USES = {"device": N_("device"), "lane": N_("lane"), "input": N_("GPIO input"), "door": N_("field node door")}


def _cross_check(cfg: Config) -> Problems:
    """What one table cannot check alone: ids used twice, references to buses, devices, lanes and doors, pins."""
    problems: Problems = []
    buses = {b.id for b in cfg.buses}
    seen_ids: dict[str, str] = {}
    seen_bus_ids: set[str] = set()
    for i, b in enumerate(cfg.buses):
        if b.id in seen_bus_ids:
            problems.append((("buses", i, "id"), Message(N_("bus id {id!r} is used twice"), id=b.id)))
        seen_bus_ids.add(b.id)
    units: set[tuple[str, int]] = set()
    for i, d in enumerate(cfg.devices):
        if d.id in seen_ids:
            problems.append((("devices", i, "id"), _used_by(d.id, seen_ids)))
        seen_ids[d.id] = _USES["device"]
        if d.bus not in buses:
            no_bus = Message(N_("no bus {bus!r}; expected one of {known}"), bus=d.bus, known=sorted(buses))
            problems.append((("devices", i, "bus"), no_bus))
        if (d.bus, d.unit) in units:
            unit_used = Message(N_("unit {unit} is already used on bus {bus}"), unit=d.unit, bus=d.bus)
            problems.append((("devices", i, "unit"), unit_used))
        units.add((d.bus, d.unit))
        try:
            points = {p.name for p in load_profile(d.profile).points}
        except ProfileError as exc:
            problems.append((("devices", i, "profile"), _profile_problem(d.profile, exc)))
            points = set()
        loops: set[int] = set()
        for j, door in enumerate(d.doors):
            where = ("devices", i, "doors", j)
            if door.id in seen_ids:
                problems.append(((*where, "id"), _used_by(door.id, seen_ids)))
            seen_ids[door.id] = _USES["door"]
            if points and f"door{door.loop}_state" not in points:
                not_a_node = Message(N_("profile {profile!r} has no door loop {loop}"), profile=d.profile,
                                     loop=door.loop)  # fmt: skip
                problems.append(((*where, "loop"), not_a_node))
            if door.loop in loops:
                problems.append(((*where, "loop"), Message(N_("loop {loop} is used twice"), loop=door.loop)))
            loops.add(door.loop)
            problems += _door_settings_problems(cfg, where, door)
    profiles = {d.id: d.profile for d in cfg.devices}
    pins: dict[str, str] = {}
    for i, lane in enumerate(cfg.lanes):
        if lane.id in seen_ids:
            problems.append((("lanes", i, "id"), _used_by(lane.id, seen_ids)))
        seen_ids[lane.id] = _USES["lane"]
        if (lane.controller is None) == (lane.dry_contact is None):
            either = Message(N_("a lane needs either controller = a device id or a [dry_contact] table"))
            problems.append((("lanes", i, "id"), either))
            continue
        if lane.dry_contact is not None:
            dry = lane.dry_contact
            for key in _DRY_PINS:
                value = getattr(dry, key)
                if value is not None:
                    pin = value.pin if isinstance(value, ContactPin) else value
                    problems += _pin_problems(("lanes", i, "dry_contact", key), pin, pins, lane.id)
            continue
        if lane.controller is None or profiles.get(lane.controller) != "bollard_controller":
            known = sorted(k for k, v in profiles.items() if v == "bollard_controller")
            no_controller = Message(N_("no bollard_controller device {device!r}; expected one of {known}"),
                                    device=lane.controller, known=known)  # fmt: skip
            problems.append((("lanes", i, "controller"), no_controller))
        if lane.controller in [other.controller for other in cfg.lanes[:i]]:
            driven = Message(N_("controller {device!r} already drives a lane"), device=lane.controller)
            problems.append((("lanes", i, "controller"), driven))
    for i, g in enumerate(cfg.gpio.inputs):
        if g.id in seen_ids:
            problems.append((("gpio", "inputs", i, "id"), _used_by(g.id, seen_ids)))
        seen_ids[g.id] = _USES["input"]
        problems += _pin_problems(("gpio", "inputs", i, "pin"), g.pin, pins, g.id)
        lanes = {lane.id for lane in cfg.lanes}
        if g.kind in GUARD_KINDS and g.lane not in lanes:
            needs_lane = Message(N_("a {kind} input needs lane = one of {known}"), kind=g.kind, known=sorted(lanes))
            problems.append((("gpio", "inputs", i, "lane"), needs_lane))
        if g.kind not in GUARD_KINDS and g.lane is not None:
            problems.append((("gpio", "inputs", i, "lane"), Message(N_("a {kind} input has no lane"), kind=g.kind)))
        doors = sorted([d.id for d in cfg.gpio.inputs if d.kind == "door"] + [d.id for d in field_doors(cfg)])
        if g.kind == "rex" and g.door not in doors:
            needs_door = Message(N_("a rex input needs door = one of {known}"), known=doors)
            problems.append((("gpio", "inputs", i, "door"), needs_door))
        if g.kind != "rex" and g.door is not None:
            problems.append((("gpio", "inputs", i, "door"), Message(N_("a {kind} input has no door"), kind=g.kind)))
        if g.kind == "door":
            problems += _door_settings_problems(cfg, ("gpio", "inputs", i), g)
    if cfg.commands is not None:
        targets = {lane.id for lane in cfg.lanes} | {cfg.gateway.id}
        for i, command_key in enumerate(cfg.commands.keys):
            strangers = sorted(set(command_key.targets or ()) - targets)
            if strangers:
                no_target = Message(N_("no target {target!r}; expected of {known}"), target=strangers[0],
                                    known=sorted(targets))  # fmt: skip
                problems.append((("commands", "keys", i, "targets"), no_target))
    return problems


def field_doors(cfg: Config) -> list[FieldDoorConfig]:
    """Every door on a field node's loop, in the order of the configuration."""
    return [door for d in cfg.devices for door in d.doors]


def _door_settings_problems(
    cfg: Config, where: tuple[str | int, ...], door: GpioInputConfig | FieldDoorConfig
) -> Problems:
    problems: Problems = []
    if door.armed == "schedule" and "armed" in door.model_fields_set and cfg.schedule is None:
        needs_schedule = Message(N_('armed = "schedule" needs a [schedule]; or "always"'))
        problems.append(((*where, "armed"), needs_schedule))
    if door.held_prewarn_s is not None and door.held_prewarn_s >= door.held_open_s:
        problems.append(((*where, "held_prewarn_s"), Message(N_("expected less than held_open_s"))))
    return problems


def _used_by(item: str, seen: dict[str, str]) -> Message:
    return Message(N_("id {id!r} is already used by a {what}"), id=item, what=Message(seen[item]))


def _profile_problem(name: str, exc: ProfileError) -> Message:
    """A profile name that is not shipped, said in the reader's language; a custom profile file's own error (its
    path, its key) is said as the profile loader says it."""
    if "/" not in name and not name.endswith(".toml") and name not in shipped_profiles():
        return Message(N_("no device profile named {name!r}"), name=name)
    return Message(N_("the profile cannot be used: {reason}"), reason=str(exc))


def _pin_key(pin: int | str) -> str:
    """One name per BCM pin: 17, "GPIO17" and "BCM17" are the same pin. (Header names, "BOARD11" or "J8:11",
    are compared as written.)"""
    text = str(pin)
    for prefix in ("GPIO", "BCM"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return str(int(text[len(prefix) :]))
    return text


def _pin_problems(where: tuple[str | int, ...], pin: int | str, used: dict[str, str], owner: str) -> Problems:
    """A GPIO pin that is not one, or is taken already (`used`: pin -> the use that took it, which gets this one);
    the message names both uses."""
    problems: Problems = []
    if isinstance(pin, int) and not 0 <= pin <= _BCM_MAX:
        problems.append((where, Message(N_("expected a BCM GPIO number 0..{max}, got {pin}"), max=_BCM_MAX, pin=pin)))
    elif isinstance(pin, str) and not _PIN_NAME.fullmatch(pin):
        problems.append((where, Message(N_("expected a pin like 17, 'GPIO17', 'BOARD11' or 'J8:11', got {pin!r}"),
                                        pin=pin)))  # fmt: skip
    key = _pin_key(pin)
    this = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
    this = f"{this.removesuffix('.pin')} ({owner})"
    if key in used:
        problems.append((where, Message(N_("pin {pin} is already used by {use}"), pin=pin, use=used[key])))
    else:
        used[key] = this
    return problems


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration text; relative paths are taken from `base_dir`.

    Raises:
        ConfigError: the first problem, as `file:line: key: what was expected`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        raise ConfigError(source, line, "", Message(N_("not valid TOML: {reason}"), reason=exc)) from exc
    lines = _line_map(text)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _written(data, tuple(err["loc"]), err["type"])
        if err["type"] == "union_tag_invalid":  # pydantic names the table; the installer wrote the wrong tag
            loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
        line, key = _where(lines, loc)
        raise ConfigError(source, line, key, _expected(err)) from exc
    problems = _cross_check(cfg)
    files, file_problems = _check_files(cfg.mqtt, base_dir or Path.cwd())
    problems += file_problems
    commands, command_problems = _check_command_keys(cfg.commands, base_dir or Path.cwd())
    problems += command_problems
    panel, panel_problems = _check_panel(cfg.panel, base_dir or Path.cwd())
    problems += panel_problems
    if problems:
        loc, msg = problems[0]
        line, key = _where(lines, loc)
        raise ConfigError(source, line, key, msg)
    state_dir = cfg.gateway.state_dir
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    control = cfg.gateway.control_socket or state_dir / "control.sock"
    if base_dir is not None and not control.is_absolute():
        control = base_dir / control
    if cfg.lanes and len(str(control).encode()) > UNIX_PATH_MAX:
        key = "control_socket" if cfg.gateway.control_socket else "state_dir"
        line, where = _where(lines, ("gateway", key))
        too_long = Message(N_("control socket path {path} is longer than {max} bytes"), path=control, max=UNIX_PATH_MAX)
        raise ConfigError(source, line, where, too_long)
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return cfg.model_copy(
        update={
            "source": source,
            "digest": digest,
            "gateway": cfg.gateway.model_copy(update={"state_dir": state_dir, "control_socket": control}),
            "mqtt": cfg.mqtt.model_copy(update=files),
            "commands": commands,
            "panel": panel,
        }
    )


def load_config(path: Path) -> Config:
    """Read and validate a configuration file; one that holds the guards' PIN hashes must be private (a short PIN
    is found from its hash in minutes, by anyone who can read it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), None, "", Message(N_("cannot read: {reason}"), reason=os_reason(exc))) from exc
    cfg = parse_config(text, str(path), path.parent)
    if cfg.panel is not None and cfg.panel.guards:
        secret = _secret_problem(path)
        if secret is not None:
            line, key = _where(_line_map(text), ("panel", "guards", 0, "pin_hash"))
            pins = Message(N_("this file holds the guards' PIN hashes: {problem}"), problem=secret)
            raise ConfigError(str(path), line, key, pins)
    return cfg
