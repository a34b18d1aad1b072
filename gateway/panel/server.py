"""The gate-house panel (issue 10): one HTTPS page for the guards, served by the gateway on its own event loop.

This module composes it: the HTTP plumbing (`http.py`: TLS, headers, static files, the session cookie, CSRF, the
strict JSON), what the guard sees (`view.py`, pushed live over server-sent events) and what the guard does
(`actions.py`: sign-in, bollard commands, alarm acknowledgement, lockdown, each audited).

The page, its style and its script are files of this package (gateway/panel/static): nothing comes from elsewhere,
and the Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from gateway.base.clock import Clock
from gateway.config import Config, PanelConfig
from gateway.panel import http
from gateway.panel.actions import GuardActions
from gateway.panel.auth import Gatekeeper
from gateway.panel.view import GuardView, LinkState
from gateway.safety.alarms import AlarmBook
from gateway.safety.bollards.service import BollardService
from gateway.safety.site_mode import SiteMode
from gateway.store.recorder import Recorder

__all__ = ["LinkState", "PanelServer"]


class PanelServer:
    """The panel's HTTPS server; `run()` until cancelled."""

    def __init__(
        self,
        cfg: PanelConfig,
        site: Config,
        bollards: BollardService,
        modes: SiteMode,
        alarms: AlarmBook,
        link_state: Callable[[], LinkState],
        recorder: Recorder,
        clock: Clock,
    ) -> None:
        self.cfg = cfg
        self.gate = Gatekeeper(cfg, clock.mono)
        self.port = cfg.port  # 0: any free port; the bound one once `bound` is set
        self.bound = asyncio.Event()
        changed = asyncio.Event()  # an event recorded or an action done: the view is pushed at once
        self.actions = GuardActions(cfg, site, bollards, modes, alarms, recorder, clock, self.gate, changed)
        self.view = GuardView(site, bollards, modes, alarms, link_state, self.gate, changed, self.actions.allowed)
        recorder.on_events.append(lambda _events: changed.set())

    def app(self) -> web.Application:
        return http.application(
            [
                web.get("/api/texts", self.view.texts),
                web.post("/api/login", self.actions.login),
                web.post("/api/logout", self.actions.logout),
                web.get("/api/session", self.actions.session),
                web.get("/api/events", self.view.events),
                web.post("/api/action", self.actions.action),
            ]
        )

    async def run(self) -> None:
        """Listen and serve until cancelled."""
        try:
            await http.serve(self.app(), self.cfg, self.port, self._bound)
        finally:
            self.bound.clear()

    def _bound(self, port: int) -> None:
        self.port = port
        self.bound.set()
