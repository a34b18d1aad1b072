"""`campus-edge scan`: find the devices on an RS-485 line or behind a Modbus TCP endpoint, and propose their
configuration."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import get_args

from pydantic import ValidationError

from drivers.errors import DriverError
from drivers.modbus import ModbusBus
from gateway.base.i18n import LANGUAGES, _, set_language
from gateway.cli.scan.probe import FoundUnit, Kind, parse_ids, scan_bus
from gateway.cli.scan.progress import Progress
from gateway.cli.scan.proposal import Proposal, propose
from gateway.config import RtuBusConfig, TcpBusConfig

BAUDS = get_args(RtuBusConfig.model_fields["baud"].annotation)
DEFAULT_TIMEOUT_MS = {"rtu": 200, "tcp": 500}  # a device's own answer takes up to ~200 ms (devices.md 5)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `scan` subcommand."""
    p = sub.add_parser("scan", help="find the Modbus devices on a bus and propose their configuration")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="DEVICE", help="serial device of the RS-485 line, e.g. /dev/ttyUSB0")
    where.add_argument("--tcp", metavar="HOST[:PORT]", help="a Modbus TCP device or TCP-to-RTU gateway (port 502)")
    p.add_argument("--baud", type=int, default=9600, choices=BAUDS)
    p.add_argument("--parity", default="N", choices=("N", "E", "O"))
    p.add_argument("--stopbits", type=int, default=1, choices=(1, 2))
    p.add_argument("--ids", default="1-247", help="unit ids to try: 1-247 (default), or e.g. 1,3,10-20")
    p.add_argument("--timeout-ms", type=int, help="wait this long for each answer (default 200 RTU, 500 TCP)")
    p.add_argument("--bus-id", help="the id of the proposed [[buses]] entry (default rs485-1 or tcp-1)")
    p.add_argument("--output", type=Path, metavar="FILE", help="also write the proposed TOML to FILE")
    p.add_argument("--lang", choices=LANGUAGES, help="language of the output (default: the locale's)")


def _host_port(text: str) -> tuple[str, int]:
    """'HOST', 'HOST:PORT', '[::1]:PORT'."""
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        return host, int(rest.removeprefix(":") or 502)
    host, sep, port = text.rpartition(":")
    if not sep or ":" in host:
        return text, 502
    return host, int(port)


def _bus_config(args: argparse.Namespace) -> RtuBusConfig | TcpBusConfig:
    if args.port is not None:
        return RtuBusConfig(
            id=args.bus_id or "rs485-1",
            type="rtu",
            port=args.port,
            baud=args.baud,
            parity=args.parity,
            stopbits=args.stopbits,
        )
    host, port = _host_port(args.tcp)
    return TcpBusConfig(id=args.bus_id or "tcp-1", type="tcp", host=host, port=port)


def _open(bus: RtuBusConfig | TcpBusConfig) -> ModbusBus:
    if isinstance(bus, RtuBusConfig):
        return ModbusBus.rtu(bus.id, bus.port, bus.baud, bus.parity, bus.stopbits)
    return ModbusBus.tcp(bus.id, bus.host, bus.port)


def _where(bus: RtuBusConfig | TcpBusConfig) -> str:
    if isinstance(bus, RtuBusConfig):
        return f"{bus.port}, {bus.baud} 8{bus.parity}{bus.stopbits}"
    return f"{bus.host}:{bus.port}"


def report(bus: RtuBusConfig | TcpBusConfig, tried: int, found: list[FoundUnit], proposal: Proposal) -> str:
    """What the scan found, a line per unit that answered, for the installer."""
    lines = [
        _(
            "Bus {bus} ({where}): {tried} unit ids tried, {answered} answered.",
            bus=bus.id,
            where=_where(bus),
            tried=tried,
            answered=len(found),
        )
    ]
    for unit in found:
        if unit.kind is Kind.MATCHED:
            what = unit.profiles[0].model
        elif unit.kind is Kind.UNKNOWN:
            what = _("unknown device")
        else:
            what = _("exceptions only")
        label = _("unit {unit}", unit=unit.unit)
        lines.append(f"  {label:<9} {what:<20} {unit.identification_text()}".rstrip())
        if unit.kind is not Kind.MATCHED:
            lines.extend(f"      {a.describe()}" for a in unit.answers)
            lines.append(f"      {unit.identification_answer()}")
            lines.extend(f"      {m}" for m in unit.misses)
    if proposal.load is not None:
        lines.append(_("Estimated load of the proposed polling: {load:.0%} of the line.", load=proposal.load.load))
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """0: some unit answered; 1: none did; 2: the bus cannot be opened or the arguments are wrong."""
    set_language(args.lang)
    try:
        units = parse_ids(args.ids)
        bus = _bus_config(args)
    except (ValueError, ValidationError) as exc:
        print(f"campus-edge scan: {exc}", file=sys.stderr)
        return 2
    timeout_s = (args.timeout_ms or DEFAULT_TIMEOUT_MS[bus.type]) / 1000
    progress = Progress(_("scanning {bus}", bus=bus.id), len(units))

    async def scan() -> list[FoundUnit]:
        async with _open(bus) as line:
            return await scan_bus(line, units, timeout_s, on_unit=lambda u, f: progress.step(u, f is not None))

    try:
        found = asyncio.run(scan())
    except DriverError as exc:
        progress.close()
        print(_("campus-edge scan: cannot open bus {bus} ({where}): {reason}", bus=bus.id, where=_where(bus),
                reason=getattr(exc, "reason", exc)), file=sys.stderr)  # fmt: skip
        return 2
    progress.close()
    proposal = propose(bus, found)
    text = proposal.toml()
    print(report(bus, len(units), found, proposal))
    print(text, end="")
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        print(_("Written to {path}.", path=args.output), file=sys.stderr)
    return 0 if found else 1
