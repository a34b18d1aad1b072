"""The rig description: a TOML file saying what is wired where, and which devices are real or simulated.

One file describes one rig. `backend = "virtual"` builds it from the simulators alone (pseudo-terminal pairs,
loopback TCP, gpiozero's mock pins); `backend = "bench"` names a Raspberry Pi's USB RS-485 adapters and the GPIO
pins of its loop-back wires. The gateway's own configuration is derived from it (see `hil.rig`), so the scenarios
never depend on which backend they run on.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Pin = int | str
DEFAULT_LOCK = Path("/run/lock/campus-edge-hil.lock")


class RigFileError(Exception):
    """A rig file that cannot be used; the message names the file and the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RigConfig(_Frozen):
    """The rig itself: its name (shown in skip reasons and in the lock) and the lock that keeps runs apart."""

    name: Id
    backend: Literal["virtual", "bench"]
    lock_file: Path | None = None  # bench default: /run/lock/campus-edge-hil.lock; a virtual rig needs none


class LineConfig(_Frozen):
    """An RS-485 line (`rtu`) or a Modbus TCP endpoint (`tcp`).

    On a bench, an RS-485 line is two USB adapters joined A-A, B-B and ground: the gateway opens `gateway_port`,
    the simulators answer on `device_port` (needed only when a device on the line is simulated). The virtual rig
    makes a pseudo-terminal pair instead and takes no port. A TCP line whose devices are simulated listens on
    loopback; one with a real device names its `host` and `port`.
    """

    id: Id
    type: Literal["rtu", "tcp"]
    baud: Literal[2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    gateway_port: str | None = None
    device_port: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    timeout_ms: int = Field(default=300, ge=10, le=10000)
    retries: int = Field(default=1, ge=0, le=5)


class DeviceConfig(_Frozen):
    """A Modbus device on a line: a profile model at a unit id, real hardware or a simulator."""

    id: Id
    line: Id
    unit: int = Field(ge=1, le=247)
    profile: Literal["fire_panel", "smoke_detector", "bollard_controller"]
    real: bool = False
    poll_interval_s: float = Field(default=0.2, ge=0.01, le=60)


class LoopbackConfig(_Frozen):
    """A GPIO loop-back: an output pin of the Pi wired to an input pin, so the rig can play a contact.

    The gateway reads `input` (pull-up on, as for a contact to ground) as the input `id` of `kind`; the rig drives
    `output`: low where the contact would be closed, high where it would be open.
    """

    id: Id
    kind: Literal["door", "trouble_relay", "fire_relay"]
    contact: Literal["NC", "NO"] = "NC"
    input: Pin
    output: Pin


class LaneRigConfig(_Frozen):
    """A bollard lane on a Modbus controller of the rig."""

    id: Id
    controller: Id
    power_loss: Literal["stay", "auto_lower"] = "auto_lower"
    fire_lane: bool = True


class RigDescription(_Frozen):
    """The whole rig."""

    rig: RigConfig
    lines: tuple[LineConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    loopbacks: tuple[LoopbackConfig, ...] = ()
    lanes: tuple[LaneRigConfig, ...] = ()
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _wiring(self) -> RigDescription:
        problems = _wiring_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def lock_file(self) -> Path | None:
        """The lock a run holds: a bench always has one; a virtual rig only when it names one."""
        if self.rig.lock_file is not None:
            return self.rig.lock_file
        return DEFAULT_LOCK if self.rig.backend == "bench" else None

    def line(self, line_id: str) -> LineConfig:
        return next(line for line in self.lines if line.id == line_id)

    def device(self, device_id: str) -> DeviceConfig:
        return next(d for d in self.devices if d.id == device_id)

    def on_line(self, line_id: str) -> list[DeviceConfig]:
        return [d for d in self.devices if d.line == line_id]


def _wiring_problems(desc: RigDescription) -> list[str]:
    """Cross-field rules: every name resolves, no pin or unit is used twice, each backend gets what it needs."""
    problems: list[str] = []
    bench = desc.rig.backend == "bench"
    for kind, ids in (
        ("line", [x.id for x in desc.lines]),
        ("device", [x.id for x in desc.devices]),
        ("loop-back", [x.id for x in desc.loopbacks]),
        ("lane", [x.id for x in desc.lanes]),
    ):
        problems += [f"{kind} {dup!r} is described twice" for dup in sorted({i for i in ids if ids.count(i) > 1})]
    lines = {x.id: x for x in desc.lines}
    units: set[tuple[str, int]] = set()
    for d in desc.devices:
        if d.line not in lines:
            problems.append(f"devices.{d.id}.line: no line {d.line!r}")
            continue
        if (d.line, d.unit) in units:
            problems.append(f"devices.{d.id}.unit: unit {d.unit} is already used on line {d.line!r}")
        units.add((d.line, d.unit))
        if d.real and not bench:
            problems.append(f"devices.{d.id}.real: a virtual rig has simulated devices only")
    for line in desc.lines:
        on_line = desc.on_line(line.id)
        simulated = [d.id for d in on_line if not d.real]
        real = [d.id for d in on_line if d.real]
        where = f"lines.{line.id}"
        if not bench:
            given = [key for key in ("gateway_port", "device_port", "host", "port") if getattr(line, key) is not None]
            problems += [
                f"{where}.{key}: a virtual rig makes its own ends (pseudo-terminals, loopback)" for key in given
            ]
        elif line.type == "rtu":
            if line.gateway_port is None:
                problems.append(f"{where}.gateway_port: expected the serial device the gateway opens")
            if simulated and line.device_port is None:
                problems.append(
                    f"{where}.device_port: expected the serial device the simulators answer on "
                    f"(simulated: {', '.join(simulated)})"
                )
            if line.device_port is not None and line.device_port == line.gateway_port:
                problems.append(f"{where}.device_port: the same device as gateway_port")
        elif real and simulated:
            problems.append(
                f"{where}: one TCP endpoint cannot hold real ({', '.join(real)}) and simulated ({', '.join(simulated)})"
                " devices"
            )
        elif real and (line.host is None or line.port is None):
            problems.append(f"{where}: expected host and port of the real device ({', '.join(real)})")
        elif simulated and (line.host is not None or line.port is not None):
            problems.append(f"{where}: simulated devices listen on a free loopback port; leave host and port out")
    pins: dict[str, str] = {}
    for lb in desc.loopbacks:
        for end in ("input", "output"):
            key = str(getattr(lb, end)).upper().removeprefix("GPIO").removeprefix("BCM")
            if key in pins:
                problems.append(f"loopbacks.{lb.id}.{end}: pin {key} is already {pins[key]}")
            pins[key] = f"loopbacks.{lb.id}.{end}"
    devices = {d.id: d for d in desc.devices}
    for lane in desc.lanes:
        ctl = devices.get(lane.controller)
        if ctl is None:
            problems.append(f"lanes.{lane.id}.controller: no device {lane.controller!r}")
        elif ctl.profile != "bollard_controller":
            problems.append(f"lanes.{lane.id}.controller: {ctl.id} is a {ctl.profile}, not a bollard_controller")
    return problems


def parse_rig(text: str, source: str) -> RigDescription:
    """Validate a rig description; errors say `source: key: what was expected`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RigFileError(f"{source}: not TOML: {exc}") from None
    try:
        return RigDescription.model_validate({**data, "source": source})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            # The cross-field rules give one problem a line, each naming its own key.
            lines += [f"{source}: {loc}: {m}" if loc else f"{source}: {m}" for m in msg.splitlines()]
        raise RigFileError("\n".join(lines)) from None


def load_rig(path: Path) -> RigDescription:
    """Read and validate a rig file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RigFileError(f"{path}: cannot read the rig file: {exc.strerror}") from None
    return parse_rig(text, str(path))
