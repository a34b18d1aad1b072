"""(g) Back on the link: broker outages of several lengths, the gateway on its default reconnect settings.

One analog module every 100 ms (180 readings/s), a listener with a persistent session. For each outage length the
broker is stopped, kept down, and started again; the figure is the time from the broker's start to the first
message that reaches the listener, and whether every committed seq arrived.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import rig
from bench.listener import expand


def run(workdir: Path, outages_s: tuple[float, ...] = (5.0, 30.0)) -> dict[str, Any]:
    """Each outage once, in order, on one gateway."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    figures: dict[str, float | None] = {}
    with (
        rig.broker(workdir) as broker,
        rig.tcp_simulators(workdir, 1, "analog_module") as ports,
        rig.listener(workdir, broker.url, session="bench-platform") as listener,
    ):
        text = rig.tcp_site(state, broker.url, ports, "analog_module", 0.1)
        # The defaults: reconnect_min_s and reconnect_max_s as a site would have them.
        text = text.replace("reconnect_min_s = 0.2\nreconnect_max_s = 2\n", "")
        starts: list[float] = []
        with rig.gateway(workdir, text) as gw:
            time.sleep(3.0)
            for outage in outages_s:
                broker.stop()
                time.sleep(outage)
                starts.append(time.monotonic())  # from the moment mosquitto is started, not once it listens
                broker.start()
                time.sleep(max(35.0, outage))  # longer than the longest back-off: the figure is never cut short
            rig.stop(gw)
        time.sleep(0.5)
        heard = listener.finish()
    resumed = heard["resumed_mono"]
    for outage, began in zip(outages_s, starts, strict=True):
        after = [t - began for t in resumed if t >= began]
        figures[f"{outage:g}"] = round(after[0], 2) if after else None
    last_seq, waiting = rig.outbox_state(state)
    received = expand(heard["received_seqs"])
    lost = [s for s in range(1, last_seq + 1) if s not in received and s not in waiting]
    return {
        "load": {"readings_per_s": 180, "outages_s": list(outages_s), "reconnect": "defaults"},
        "first_delivery_after_broker_back_s": figures,
        "worst_s": max((v for v in figures.values() if v is not None), default=None),
        "lost": len(lost),
    }
