"""The configuration a scan proposes: one `[[buses]]` entry and a `[[devices]]` entry per recognised unit.

The entries are built as the gateway's own config models (so a baud rate the config would refuse cannot be
proposed) and written as TOML for the installer to paste into gateway.toml; units that fit no profile are listed
as comments, with what they answered. On an RS-485 line the proposal's load is estimated as `campus-edge check`
does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.base.i18n import _
from gateway.cli.scan.probe import FoundUnit, Kind
from gateway.config import DeviceConfig, RtuBusConfig, TcpBusConfig
from gateway.field.bus_load import BusEstimate, estimate

_DEVICE_KEYS = ("id", "name", "bus", "unit", "profile", "poll_interval_s")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's


def _comment(text: str) -> str:
    return "\n".join(f"# {line}" for line in text.splitlines())


def device_id(model: str, unit: int) -> str:
    """'smoke-detector-12' for unit 12 of profile smoke_detector: a valid config id the installer may rename."""
    return f"{model.replace('_', '-')}-{unit}"


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a scan proposes for one bus."""

    bus: RtuBusConfig | TcpBusConfig
    devices: tuple[DeviceConfig, ...]
    matched: tuple[FoundUnit, ...]  # the unit behind each device entry
    others: tuple[FoundUnit, ...]  # answered, but fit no profile
    load: BusEstimate | None  # RS-485 lines only

    def toml(self) -> str:
        """The entries as TOML, with comments saying what each unit is."""
        head = _("Proposed by campus-edge scan: check names and poll intervals, then paste into gateway.toml.")
        out = [_comment(head)]
        out.append("")
        out.append("[[buses]]")
        fields = ("id", "type", "port", "baud", "parity", "stopbits") if self.bus.type == "rtu" else (
            "id", "type", "host", "port",
        )  # fmt: skip
        out.extend(f"{name} = {_toml(getattr(self.bus, name))}" for name in fields)
        if self.load is not None:
            out.append(_comment(_("estimated load of this polling: {load:.0%} of the line", load=self.load.load)))
        for dev, unit in zip(self.devices, self.matched, strict=True):
            out.append("")
            also = [p.model for p in unit.profiles[1:]]
            what = _("unit {unit}: {profile}", unit=unit.unit, profile=dev.profile)
            ident = unit.identification_text()
            out.append(_comment(f"{what}, {ident}" if ident else what))
            if also:
                out.append(_comment(_("also fits: {profiles}", profiles=", ".join(also))))
            out.append("[[devices]]")
            out.extend(
                f"{k} = {_toml(getattr(dev, k))}" for k in ("id", "name", "bus", "unit", "profile", "poll_interval_s")
            )
        for unit in self.others:
            out.append("")
            if unit.kind is Kind.EXCEPTIONS:
                what = _("unit {unit} answers with exceptions only; not proposed", unit=unit.unit)
            else:
                what = _("unit {unit} fits no profile; not proposed", unit=unit.unit)
            out.append(_comment(what))
            out.extend(_comment(f"  {a.describe()}") for a in unit.answers)
            out.append(_comment(f"  {unit.identification_answer()}"))
        return "\n".join(out) + "\n"


def propose(bus: RtuBusConfig | TcpBusConfig, found: Sequence[FoundUnit]) -> Proposal:
    """Entries for the units a scan found on `bus`: each recognised unit with its first fitting profile."""
    devices = []
    for unit in found:
        if unit.kind is not Kind.MATCHED:
            continue
        profile = unit.profiles[0]
        assert profile.identify is not None
        devices.append(
            DeviceConfig(
                id=device_id(profile.model, unit.unit),
                bus=bus.id,
                unit=unit.unit,
                profile=profile.model,
                poll_interval_s=profile.identify.poll_interval_s,
            )
        )
    matched = tuple(u for u in found if u.kind is Kind.MATCHED)
    others = tuple(u for u in found if u.kind is not Kind.MATCHED)
    load = None
    if isinstance(bus, RtuBusConfig):
        profiles = {u.unit: u.profiles[0] for u in found if u.kind is Kind.MATCHED}
        load = estimate(bus, [(d.id, profiles[d.unit], d.poll_interval_s) for d in devices])
    return Proposal(bus, tuple(devices), matched, others, load)
