"""The Prometheus text endpoint: the health sample as metrics, at http://127.0.0.1:PORT/metrics.

A collector of our own reads a fresh `HealthSample` at every scrape (no second set of counters to keep in step),
and `prometheus_client` writes the exposition format. The HTTP server is aiohttp's, on the gateway's own event
loop: no thread of ours, and a scrape is served between polls like any other task. It listens on loopback only
(the configuration refuses anything else): it has no authentication, and a node exporter or a local agent is what
scrapes it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from gateway.service.health import HealthSampler, PollingHealth

log = logging.getLogger(__name__)

_DEVICE = ["device", "bus", "unit"]


class HealthCollector(Collector):
    """Metrics named `campus_edge_*`, from one sample per scrape."""

    def __init__(self, sampler: HealthSampler, version: str, boot_id: str) -> None:
        self.sampler = sampler
        self.version = version
        self.boot_id = boot_id

    def collect(self) -> Iterator[InfoMetricFamily | GaugeMetricFamily | CounterMetricFamily]:
        s = self.sampler.sample()
        yield InfoMetricFamily(
            "campus_edge_gateway", "This gateway run.", value={"version": self.version, "boot_id": self.boot_id}
        )
        yield GaugeMetricFamily("campus_edge_uptime_seconds", "Seconds since the gateway started.", value=s.uptime_s)
        yield GaugeMetricFamily("campus_edge_link_up", "1 while connected to the platform's broker.", value=s.link_up)
        yield CounterMetricFamily(
            "campus_edge_link_connections", "Connections made to the broker.", value=s.link_connections
        )
        yield CounterMetricFamily("campus_edge_link_failures", "Connections lost or refused.", value=s.link_failures)
        yield GaugeMetricFamily("campus_edge_outbox_depth", "Messages waiting in the outbox.", value=s.outbox_depth)
        yield GaugeMetricFamily(
            "campus_edge_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox (0 when none waits).",
            value=s.outbox_oldest_age_s or 0.0,
        )
        yield GaugeMetricFamily("campus_edge_outbox_bytes", "Bytes the outbox holds.", value=s.outbox_bytes)
        yield CounterMetricFamily(
            "campus_edge_outbox_evicted_rows", "Telemetry dropped by a full outbox.", value=s.outbox_evicted_rows
        )
        if s.state_dir_free_bytes is not None:
            yield GaugeMetricFamily(
                "campus_edge_state_dir_free_bytes", "Free bytes on the state directory's file system.",
                value=s.state_dir_free_bytes,
            )  # fmt: skip
        if s.cpu_temperature_c is not None:
            yield GaugeMetricFamily(
                "campus_edge_cpu_temperature_celsius", "The CPU's temperature.", value=s.cpu_temperature_c
            )
        if (si := s.sign_ins) is not None:
            yield CounterMetricFamily(
                "campus_edge_panel_sign_ins_refused", "Sign-ins refused by the guards' panel.", value=si.refused
            )
            yield CounterMetricFamily(
                "campus_edge_panel_wrong_pins", "Wrong guard IDs or PINs at the panel.", value=si.wrong_pins
            )
            yield CounterMetricFamily(
                "campus_edge_panel_lockouts", "Guard IDs and addresses locked out by wrong PINs.", value=si.lockouts
            )
        restarts = CounterMetricFamily(
            "campus_edge_task_restarts", "Times a long-running part failed and was restarted.", labels=["task"]
        )
        for task, n in s.tasks.items():
            restarts.add_metric([task], n)
        yield restarts
        requests = CounterMetricFamily("campus_edge_modbus_requests", "Requests (retries count).", labels=_DEVICE)
        timeouts = CounterMetricFamily("campus_edge_modbus_timeouts", "Requests without a valid reply.", labels=_DEVICE)
        crc = CounterMetricFamily("campus_edge_modbus_crc_errors", "Replies with a wrong CRC (RTU).", labels=_DEVICE)
        malformed = CounterMetricFamily(
            "campus_edge_modbus_malformed", "Replies from another unit, cut short or too short.", labels=_DEVICE
        )
        exceptions = CounterMetricFamily(
            "campus_edge_modbus_exceptions", "Modbus exception replies, by code.", labels=[*_DEVICE, "code"]
        )
        p50 = GaugeMetricFamily(
            "campus_edge_modbus_latency_p50_seconds", "Median request-to-reply time, recent replies.", labels=_DEVICE
        )
        p95 = GaugeMetricFamily(
            "campus_edge_modbus_latency_p95_seconds", "95th percentile request-to-reply time.", labels=_DEVICE
        )
        for m in s.modbus:
            labels = [m.device, m.bus, str(m.unit)]
            requests.add_metric(labels, m.requests)
            timeouts.add_metric(labels, m.timeouts)
            crc.add_metric(labels, m.crc_errors)
            malformed.add_metric(labels, m.malformed)
            for code, n in m.exceptions.items():
                exceptions.add_metric([*labels, str(code)], n)
            if m.latency_p50_s is not None and m.latency_p95_s is not None:
                p50.add_metric(labels, m.latency_p50_s)
                p95.add_metric(labels, m.latency_p95_s)
        yield from (requests, timeouts, crc, malformed, exceptions, p50, p95)
        yield from _polling(s.polling)


def _polling(buses: tuple[PollingHealth, ...]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Each bus's polls, those on time, and its last window's share (absent until a window has been judged)."""
    polls = CounterMetricFamily("campus_edge_polls", "Polls started.", labels=["bus"])
    on_time = CounterMetricFamily(
        "campus_edge_polls_on_time", "Polls started within max(10 ms, 10 % of the interval) of their slot.",
        labels=["bus"],
    )  # fmt: skip
    share = GaugeMetricFamily(
        "campus_edge_polls_on_time_share", "Share of the last window's polls started on time.", labels=["bus"]
    )
    late = GaugeMetricFamily(
        "campus_edge_polls_late_mean_seconds", "Mean lateness of the last window's late polls.", labels=["bus"]
    )
    behind = GaugeMetricFamily("campus_edge_polls_behind", "1 while the bus's polls_behind warning is raised.",
                               labels=["bus"])  # fmt: skip
    for p in buses:
        polls.add_metric([p.bus], p.polls)
        on_time.add_metric([p.bus], p.on_time)
        behind.add_metric([p.bus], p.behind)
        if p.on_time_share is not None:
            share.add_metric([p.bus], p.on_time_share)
        if p.late_mean_s is not None:
            late.add_metric([p.bus], p.late_mean_s)
    yield from (polls, on_time, share, late, behind)


class MetricsServer:
    """GET /metrics on a loopback address, served by the running event loop until cancelled."""

    def __init__(self, collector: HealthCollector, address: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.address = address
        self.port = port  # 0: any free port; the bound one once `bound` is set
        self.bound = asyncio.Event()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def run(self) -> None:
        """Listen and serve until cancelled."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            # Bound here rather than by aiohttp so that port 0 can be read back.
            family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
            host = "127.0.0.1" if self.address == "localhost" else self.address
            sock = socket.create_server((host, self.port), family=family, reuse_port=False)
            self.port = int(sock.getsockname()[1])
            site = web.SockSite(runner, sock)
            await site.start()
            log.info("metrics on http://%s:%d/metrics", self.address, self.port)
            self.bound.set()
            await asyncio.Event().wait()
        finally:
            self.bound.clear()
            await runner.cleanup()
