"""The simulated demo site with its gate-house panel on, for the panel's tests: a real gateway on simulated devices,
its panel on HTTPS at 127.0.0.1 with a trustme certificate, and the events it records kept for the audit checks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from gateway.cli.demo import point_at_simulation, simulate
from gateway.config import HealthConfig, PanelConfig, PanelGuardConfig, load_config
from gateway.panel.auth import hash_pin
from gateway.service.app import Gateway
from gateway.store.records import Event
from simulators.bollard import BollardSim
from simulators.contacts import contact_pin_factory
from simulators.devices import FirePanelSim
from simulators.site import SimulatedSite
from tests.gateway_harness import running_gateway

DEMO = Path(__file__).parent.parent / "examples" / "demo-site.toml"
PINS = {"wang": "2468", "li": "1357"}


@dataclass
class PanelSite:
    """The running site: the gateway, its simulators, the panel's address, the CA that signed its certificate."""

    gw: Gateway
    site: SimulatedSite
    url: str
    ca: trustme.CA
    events: list[Event] = field(default_factory=list)

    @property
    def bollard(self) -> BollardSim:
        sim = self.site.devices["bollard-east"]
        assert isinstance(sim, BollardSim)
        return sim

    @property
    def fire_panel(self) -> FirePanelSim:
        sim = self.site.devices["facp-1"]
        assert isinstance(sim, FirePanelSim)
        return sim

    def audit(self, action: str) -> list[Event]:
        """The panel's audit events for one action."""
        return [e for e in self.events if e.cls == "command" and e.point == f"panel_{action}"]


def panel_config(tmp_path: Path, ca: trustme.CA, **extra: object) -> PanelConfig:
    """Two guards: wang (role guard) and li (operator, who may declare a lockdown)."""
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "gateway.crt", tmp_path / "gateway.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    guards = (
        PanelGuardConfig(id="wang", name="王师傅", pin_hash=hash_pin(PINS["wang"]), role="guard"),
        PanelGuardConfig(id="li", name="李队长", pin_hash=hash_pin(PINS["li"]), role="operator"),
    )
    values: dict[str, object] = {
        "address": "127.0.0.1",
        "port": 0,
        "cert_file": chain,
        "key_file": key,
        "guards": guards,
        "max_attempts": 3,
        "lockout_s": 600,
    }
    values.update(extra)
    return PanelConfig.model_validate(values)


@contextlib.asynccontextmanager
async def panel_site(
    tmp_path: Path, broker_url: str, health: HealthConfig | None = None, **panel: object
) -> AsyncIterator[PanelSite]:
    """The demo site (examples/demo-site.toml), simulated, its gateway running with the panel on (and `health`
    instead of the demo's, to see the panel's counters sooner)."""
    cfg = load_config(DEMO)
    factory = contact_pin_factory()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ca = trustme.CA()
    try:
        async with simulate(cfg, run_dir, factory) as site:
            live = point_at_simulation(cfg, site, run_dir, broker_url)
            live = live.model_copy(
                update={"panel": panel_config(tmp_path, ca, **panel), "health": health or live.health}
            )
            async with running_gateway(live, pin_factory=factory) as gw:
                assert gw.panel is not None
                async with asyncio.timeout(10):
                    await gw.panel.bound.wait()
                ps = PanelSite(gw, site, f"https://127.0.0.1:{gw.panel.port}", ca)
                gw.recorder.on_events.append(ps.events.extend)
                yield ps
    finally:
        factory.reset()
