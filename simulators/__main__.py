"""`python -m simulators`: simulated devices as a process of their own (used where the gateway runs in another
network namespace).

    python -m simulators --tcp 127.0.0.1:1502 --unit 1=fire_panel --unit 2=smoke_detector --wave 2
    python -m simulators --tcp 127.0.0.1:1502 --tcp 127.0.0.1:1503 --unit 1=analog_module --churn

`--wave UNIT` keeps the smoke of that detector moving so that telemetry flows; SIGUSR1 toggles a fire on every
fire panel (alarm, then clear and reset), so a test can cause an alarm at a moment of its choosing. Each `--tcp`
endpoint is a device server of its own with the same units (as separate Modbus TCP devices on a site would be);
`--churn` makes analog modules change every channel on every read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from simulators.catalogue import make_device
from simulators.devices import AnalogModuleSim, FirePanelSim, SimDevice, SmokeDetectorSim
from simulators.modbus_server import SimServer


async def _serve(endpoints: list[tuple[str, int, dict[int, SimDevice]]], wave: int | None) -> None:
    fire = [0]
    every = [dev for _h, _p, units in endpoints for dev in units.values()]

    def toggle() -> None:
        for dev in every:
            if isinstance(dev, FirePanelSim):
                if fire[0]:
                    dev.clear_point(fire[0])
                    dev.reset()
                else:
                    dev.alarm_point(7)
        fire[0] = 0 if fire[0] else 7

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, toggle)
    async with contextlib.AsyncExitStack() as stack:
        for host, port, units in endpoints:
            server = await stack.enter_async_context(SimServer.tcp(units, host, port))
            print(f"listening on {server.address[0]}:{server.address[1]}", flush=True)
        level = 0
        waving = [units[wave] for _h, _p, units in endpoints if wave in units]
        while True:
            level = (level + 17) % 280
            for dev in waving:
                if isinstance(dev, SmokeDetectorSim):
                    dev.set_smoke(level / 100)
            await asyncio.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    p.add_argument("--tcp", required=True, action="append", metavar="HOST:PORT")
    p.add_argument("--unit", action="append", default=[], metavar="ID=MODEL")
    p.add_argument("--wave", type=int, metavar="UNIT")
    p.add_argument("--churn", action="store_true", help="analog modules change every channel on every read")
    args = p.parse_args(argv)
    endpoints = []
    for tcp in args.tcp:
        host, _, port = tcp.rpartition(":")
        units = {int(u.split("=")[0]): make_device(u.split("=")[1]) for u in args.unit}
        for dev in units.values():
            if isinstance(dev, AnalogModuleSim):
                dev.churn = args.churn
        endpoints.append((host, int(port), units))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(endpoints, args.wave))
    return 0


if __name__ == "__main__":
    sys.exit(main())
