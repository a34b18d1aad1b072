"""`python -m simulators`: simulated devices as a process of their own (used where the gateway runs in another
network namespace).

    python -m simulators --tcp 127.0.0.1:1502 --unit 1=fire_panel --unit 2=smoke_detector --wave 2

`--wave UNIT` keeps the smoke of that detector moving so that telemetry flows; SIGUSR1 toggles a fire on every
fire panel (alarm, then clear and reset), so a test can cause an alarm at a moment of its choosing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from simulators.devices import FirePanelSim, SimDevice, SmokeDetectorSim, make_device
from simulators.modbus_server import SimServer


async def _serve(host: str, port: int, units: dict[int, SimDevice], wave: int | None) -> None:
    fire = [0]

    def toggle() -> None:
        for dev in units.values():
            if isinstance(dev, FirePanelSim):
                if fire[0]:
                    dev.clear_point(fire[0])
                    dev.reset()
                else:
                    dev.alarm_point(7)
        fire[0] = 0 if fire[0] else 7

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, toggle)
    async with SimServer.tcp(units, host, port) as server:
        print(f"listening on {server.address[0]}:{server.address[1]}", flush=True)
        level = 0
        while True:
            dev = units.get(wave) if wave is not None else None
            if isinstance(dev, SmokeDetectorSim):
                level = (level + 17) % 280
                dev.set_smoke(level / 100)
            await asyncio.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    p.add_argument("--tcp", required=True, metavar="HOST:PORT")
    p.add_argument("--unit", action="append", default=[], metavar="ID=MODEL")
    p.add_argument("--wave", type=int, metavar="UNIT")
    args = p.parse_args(argv)
    host, _, port = args.tcp.rpartition(":")
    units = {int(u.split("=")[0]): make_device(u.split("=")[1]) for u in args.unit}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, int(port), units, args.wave))
    return 0


if __name__ == "__main__":
    sys.exit(main())
