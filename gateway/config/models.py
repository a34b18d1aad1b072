"""The site's configuration as frozen typed models: one per table of the TOML file, and the small types and
validators they share.

Types are strict, and a validator's error is a catalogue Message, said in the installer's language on a terminal
and in English in the service's log.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

from gateway.base.i18n import N_, Message, MessageError

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


GUARD_KINDS = frozenset({"bollard_raise", "bollard_lower", "bollard_stop", "efo_key"})
UNIX_PATH_MAX = 107  # a Unix socket path longer than this cannot be bound


def field_doors(cfg: Config) -> list[FieldDoorConfig]:
    """Every door on a field node's loop, in the order of the configuration."""
    return [door for d in cfg.devices for door in d.doors]
