"""Finding the devices on a Modbus line and naming their profiles, for commissioning (`campus-edge scan`).

Each unit id gets one cheap request (FC03, register 0): a unit that answers anything, data or an exception, is
there; one that stays silent costs one response timeout, so that is what a scan of 247 ids takes. A unit that
answered is asked for its FC43/14 identification (which many RS-485 devices lack) and then read as each shipped
profile would read it: the profile's identification registers must hold what the profile says (a map version, a
known model code) and every block it polls must read. Requests go one at a time through `ModbusBus`, which keeps
the inter-frame gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from drivers.errors import DeviceException, DeviceTimeout, MalformedReply
from drivers.modbus import Function, ModbusBus, RequestPolicy
from drivers.profile import Profile, load_profile, shipped_profiles
from gateway.base.i18n import N_, _

log = logging.getLogger(__name__)

# A TCP-to-RTU gateway answers for a unit that is absent behind it with 0A or 0B: that unit is silent.
GATEWAY_NO_TARGET = frozenset({0x0A, 0x0B})
PROBE: tuple[Function, int, int] = (3, 0, 1)  # the request many cheap devices implement (devices.md 1.4)

EXCEPTION_NAMES = {
    1: N_("illegal function"),
    2: N_("illegal data address"),
    3: N_("illegal data value"),
    4: N_("server device failure"),
    5: N_("acknowledge"),
    6: N_("server device busy"),
    8: N_("memory parity error"),
    10: N_("gateway path unavailable"),
    11: N_("gateway target failed to respond"),
}


def exception_text(code: int) -> str:
    """'exception 02 (illegal data address)' in the active language."""
    name = EXCEPTION_NAMES.get(code)
    return _("exception {code:02d} ({name})", code=code, name=_(name) if name else _("unknown exception"))


@dataclass(frozen=True, slots=True)
class Answer:
    """What one read request got: values, an exception code, or nothing valid."""

    function: int
    address: int
    count: int
    values: tuple[int, ...] | None = None
    exception: int | None = None

    @property
    def answered(self) -> bool:
        return self.values is not None or (self.exception is not None and self.exception not in GATEWAY_NO_TARGET)

    def describe(self) -> str:
        """'FC04 0: 0x0100', 'FC04 0-17: 0x0100 0x0001 ...', 'FC03 0: exception 01 (illegal function)'."""
        span = f"{self.address}" if self.count == 1 else f"{self.address}-{self.address + self.count - 1}"
        where = f"FC{self.function:02d} {span}"
        if self.values is not None:
            shown = " ".join(f"{v:#06x}" for v in self.values[:6]) + (" ..." if len(self.values) > 6 else "")
            return f"{where}: {shown}"
        if self.exception is not None:
            return f"{where}: {exception_text(self.exception)}"
        return where + ": " + _("no reply")


class Kind(StrEnum):
    """What a unit that answered turned out to be."""

    MATCHED = "matched"  # a profile fits it
    UNKNOWN = "unknown"  # it answered with data, but no profile fits
    EXCEPTIONS = "exceptions"  # it answered every request with an exception


@dataclass(slots=True)
class FoundUnit:
    """A unit that answered, what it answered and which profiles fit it (the first is proposed)."""

    unit: int
    kind: Kind
    profiles: list[Profile] = field(default_factory=list)
    identification: dict[int, str] = field(default_factory=dict)
    identification_exception: int | None = None
    answers: list[Answer] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)  # why profiles that partly fit were not taken

    def identification_text(self) -> str:
        """Vendor, product code and revision from FC43/14; empty when the unit gave none."""
        return " ".join(self.identification[k] for k in sorted(self.identification) if self.identification[k])

    def identification_answer(self) -> str:
        """What FC43/14 got, as a line of the answers: 'FC43/14: exception 01 (illegal function)'."""
        if self.identification:
            got = self.identification_text()
        elif self.identification_exception is not None:
            got = exception_text(self.identification_exception)
        else:
            got = _("no reply")
        return f"FC43/14: {got}"


class _UnitReads:
    """Reads of one unit, each asked once (profiles share registers)."""

    def __init__(self, bus: ModbusBus, unit: int, policy: RequestPolicy) -> None:
        self.bus = bus
        self.unit = unit
        self.policy = policy
        self.answers: dict[tuple[int, int, int], Answer] = {}

    async def read(self, function: Function, address: int, count: int) -> Answer:
        key = (function, address, count)
        if key not in self.answers:
            try:
                values = await self.bus.read(self.unit, function, address, count, self.policy)
            except DeviceException as exc:
                self.answers[key] = Answer(function, address, count, exception=exc.code)
            except (DeviceTimeout, MalformedReply) as exc:
                log.debug("scan: %s", exc)
                self.answers[key] = Answer(function, address, count)
            else:
                self.answers[key] = Answer(function, address, count, values=tuple(values))
        return self.answers[key]


async def _fits(reads: _UnitReads, profile: Profile) -> tuple[bool, str | None]:
    """Whether the unit fits `profile`; if not, and it fitted part of it, why not."""
    assert profile.identify is not None
    for index, check in enumerate(profile.identify.checks):
        answer = await reads.read(check.function, check.address, 1)
        if answer.values is None or not check.holds(answer.values[0]):
            if index == 0:
                return False, None
            got = answer.describe()
            return False, _(
                "not {profile}: {got}, {what} should be {expected}",
                profile=profile.model,
                got=got,
                what=check.what or "",
                expected=check.expected(),
            )
    for block in profile.blocks:
        answer = await reads.read(block.function, block.address, block.count)
        if answer.values is None:
            return False, _(
                "not {profile}: its block {block} does not read ({got})",
                profile=profile.model,
                block=block.name,
                got=answer.describe(),
            )
    return True, None


async def probe_unit(bus: ModbusBus, unit: int, profiles: Sequence[Profile], timeout_s: float) -> FoundUnit | None:
    """Find out whether `unit` is on the bus and what it is; None when it stays silent."""
    probe = _UnitReads(bus, unit, RequestPolicy(timeout_s, 0))
    first = await probe.read(*PROBE)
    if not first.answered:
        return None
    # It is there: from now on one lost reply should not make it look like something else.
    reads = _UnitReads(bus, unit, RequestPolicy(timeout_s, 1))
    reads.answers.update(probe.answers)
    found = FoundUnit(unit, Kind.UNKNOWN)
    try:
        found.identification = await bus.read_identification(unit, reads.policy)
    except DeviceException as exc:
        found.identification_exception = exc.code
    except (DeviceTimeout, MalformedReply) as exc:
        log.debug("scan: %s", exc)
    for profile in profiles:
        if profile.identify is None:
            continue
        fits, why = await _fits(reads, profile)
        if fits:
            found.profiles.append(profile)
        elif why:
            found.misses.append(why)
    found.answers = list(reads.answers.values())
    if found.profiles:
        found.kind = Kind.MATCHED
    elif not found.identification and all(a.values is None for a in found.answers):
        found.kind = Kind.EXCEPTIONS
    return found


def identifiable_profiles() -> list[Profile]:
    """The shipped profiles a scan can recognise (those with an [identify] table)."""
    return [p for p in (load_profile(name) for name in shipped_profiles()) if p.identify is not None]


async def scan_bus(
    bus: ModbusBus,
    units: Iterable[int],
    timeout_s: float,
    profiles: Sequence[Profile] | None = None,
    on_unit: Callable[[int, FoundUnit | None], None] | None = None,
) -> list[FoundUnit]:
    """Probe each unit id in turn; `on_unit` hears of each one as it is done (for a progress bar)."""
    use = identifiable_profiles() if profiles is None else list(profiles)
    found: list[FoundUnit] = []
    for unit in units:
        result = await probe_unit(bus, unit, use, timeout_s)
        if result is not None:
            log.info("scan %s: unit %d %s %s", bus.name, unit, result.kind, [p.model for p in result.profiles])
            found.append(result)
        if on_unit is not None:
            on_unit(unit, result)
    return found


def parse_ids(text: str) -> list[int]:
    """'1-247', '1,3,10-20' -> the unit ids, in order, each once.

    Raises:
        ValueError: not such a list, or an id outside 1..247.
    """
    ids: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if dash else lo
        except ValueError:
            raise ValueError(_("expected unit ids like 1-247 or 1,3,10-20, got {text!r}", text=text)) from None
        if not 1 <= lo <= hi <= 247:
            raise ValueError(_("unit ids are 1 to 247, got {part!r}", part=part.strip()))
        ids.extend(i for i in range(lo, hi + 1) if i not in ids)
    return ids
