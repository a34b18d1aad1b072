"""The `campus-edge` command as a separate process: run, its shutdown and last will, and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim
from simulators.modbus_server import SimServer
from tests.gateway_harness import config_text

PREFIX = "campus/v1/test-school/gw-1"
ROOT = Path(__file__).resolve().parent.parent


async def start_run(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


def status_of(boot_messages: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str | None]]:
    return [(p["state"], p.get("reason")) for t, p in boot_messages if t == f"{PREFIX}/status"]


async def test_cli_run_publishes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """`campus-edge run` polls the devices of its config file; SIGTERM ends it with exit 0 and an offline status."""
    panel = FirePanelSim()
    async with SimServer.tcp({1: panel}) as server:
        host, port = server.address
        config = tmp_path / "gateway.toml"
        config.write_text(
            config_text(
                tmp_path / "state",
                broker.url,
                [{"id": "tcp-1", "type": "tcp", "host": host, "port": port}],
                [{"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            )
        )
        sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
        proc = await start_run(config)
        try:
            _t, online = await sub.wait_for(lambda t, p: t == f"{PREFIX}/status" and p["state"] == "online")
            panel.alarm_point(4)
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/fire" and p["state"] == "raised")
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                code = await proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        assert code == 0
        _t, offline = await sub.wait_for(
            lambda t, p: t == f"{PREFIX}/status" and p["state"] == "offline" and p["boot_id"] == online["boot_id"]
        )
        assert offline["reason"] == "shutdown"


async def test_cli_run_killed_leaves_last_will(tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any) -> None:
    """A gateway that dies without a word (SIGKILL) is marked offline by its last will, retained."""
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path / "state", broker.url, [], []))
    sub = await subscriber_factory(broker.url, f"{PREFIX}/status")
    proc = await start_run(config)
    try:
        _t, online = await sub.wait_for(lambda t, p: p["state"] == "online")
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    _t, will = await sub.wait_for(lambda t, p: p["state"] == "offline" and p["boot_id"] == online["boot_id"])
    assert will["reason"] == "will"
    late = await subscriber_factory(broker.url, f"{PREFIX}/status")
    _t, retained = await late.wait_for(lambda t, p: True)
    assert (retained["state"], retained["boot_id"]) == ("offline", online["boot_id"])


async def test_cli_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    """A bad configuration stops `run` before anything starts, naming file and line."""
    config = tmp_path / "gateway.toml"
    config.write_text('[site]\nid = "x"\n[gateway]\nid = "g"\nsurprise = 1\n[mqtt]\nurls = ["mqtts://b"]\n')
    proc = await start_run(config)
    out, _ = await proc.communicate()
    assert proc.returncode == 2
    assert out.decode() == f"campus-edge: {config}:5: gateway.surprise: unknown key\n"


async def test_cli_run_without_the_metrics_extra_says_how_to_install_it(tmp_path: Path) -> None:
    """A configuration that asks for the metrics endpoint, on an install without its extra: `run` names the extra in
    English and zh-CN and stops before it opens anything (no state directory, no outbox)."""
    state = tmp_path / "state"
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(state, "mqtt://127.0.0.1:1", [], []) + "[health]\nmetrics_port = 0\n")
    probe = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # not installed, as in a runtime install\n"
        "from gateway.cli.main import main\n"
        f"sys.exit(main(['run', '--config', {str(config)!r}]))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode() == (
        "campus-edge: the metrics endpoint (metrics_port in [health]) needs prometheus_client, which is not installed "
        "here: pip install 'campus-edge[metrics]'\n"
        "监控指标接口 ([health] 中的 metrics_port) 需要 prometheus_client, 本机尚未安装: "
        "pip install 'campus-edge[metrics]'\n"
    )
    assert not state.exists()


async def run_demo(tmp_path: Path, scenario: Path, duration_s: float) -> str:
    """`campus-edge demo` on the example site with a scenario of the test's; its output (it must exit 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "demo", "--config", str(ROOT / "examples" / "demo-site.toml"),
        "--scenario", str(scenario), "--duration", str(duration_s), "--state-dir", str(tmp_path / "run"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    return text


async def test_cli_demo_shows_fire_reaching_platform(tmp_path: Path) -> None:
    """The demo with a short scenario prints the fire arriving and no missing sequence numbers."""
    scenario = tmp_path / "fast.toml"
    scenario.write_text(
        '[[step]]\nat_s = 0.5\ntarget = "door-north"\naction = "open"\n'
        '[[step]]\nat_s = 1.0\ntarget = "facp-1"\naction = "alarm_point"\nvalue = 7\nnote = "fire at point 7"\n'
    )
    text = await run_demo(tmp_path, scenario, 4)
    assert ">>> fire at point 7" in text
    assert "event       ALARM   fire 火警 raised: facp-1.fire = true" in text
    assert "door 门磁 raised: door-north.open = true" in text
    assert ", 0 missing, 0 duplicates" in text
    assert "fire alarm reached the platform as seq" in text


async def test_cli_demo_shows_bollard_blocked_then_lowered_by_fire(tmp_path: Path) -> None:
    """Issue 5's demo story in short: a van on the loop blocks the guard's raise; a fire lowers the fire lane."""
    scenario = tmp_path / "bollards.toml"
    scenario.write_text(
        '[[step]]\nat_s = 0.5\ntarget = "bollard-east"\naction = "input"\nvalue = "loop_a_occupied=true"\n'
        '[[step]]\nat_s = 0.8\ntarget = "lane-east"\naction = "guard_raise"\n'
        '[[step]]\nat_s = 1.0\ntarget = "bollard-east"\naction = "state"\nvalue = "up"\n'
        '[[step]]\nat_s = 1.5\ntarget = "facp-1"\naction = "alarm_point"\nvalue = 7\n'
    )
    text = await run_demo(tmp_path, scenario, 5)
    assert "lane-east: 升起 已拒绝 (地感线圈有车)  /  lane-east: raise refused (a vehicle is on the loop)" in text
    assert "lane-east: 降下 已执行  /  lane-east: lower done" in text
    assert 'bollard-east.state = "lowering"' in text


async def test_cli_demo_shows_a_warning_opened_and_restored_and_a_daily_report(tmp_path: Path) -> None:
    """Issue 6's demo story in short: a detector's battery runs low and is replaced; the daily report follows."""
    scenario = tmp_path / "warning.toml"
    scenario.write_text(
        '[[step]]\nat_s = 0.5\ntarget = "smoke-103"\naction = "flag"\nvalue = "low_battery=true"\n'
        '[[step]]\nat_s = 1.5\ntarget = "smoke-103"\naction = "flag"\nvalue = "low_battery=false"\n'
        '[[step]]\nat_s = 3.0\ntarget = "gw-east-gate"\naction = "report"\n'
    )
    text = await run_demo(tmp_path, scenario, 5)
    assert "维护报警 smoke-103.low_battery: 报警  /  maintenance alarm smoke-103.low_battery: raised" in text
    assert "维护报警 smoke-103.low_battery: 已恢复  /  maintenance alarm smoke-103.low_battery: cleared" in text
    assert "report      daily hazard check" in text
    assert "- 未关闭风险预警: smoke-103.low_battery" in text
    assert "- risk warnings open: smoke-103.low_battery" in text


async def test_cli_demo_serves_the_guards_panel(tmp_path: Path) -> None:
    """`campus-edge demo --panel 0`: the panel of the simulated site on loopback, with the certificate it made and
    the PIN it prints; the demo guard signs in and sees the site's lane."""
    import ssl  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415

    scenario = tmp_path / "quiet.toml"
    scenario.write_text('[[step]]\nat_s = 0.5\ntarget = "door-north"\naction = "open"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "demo", "--config", str(ROOT / "examples" / "demo-site.toml"),
        "--scenario", str(scenario), "--duration", "30", "--state-dir", str(tmp_path / "run"), "--panel", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while not (line := (await proc.stdout.readline()).decode()).startswith("guard panel: "):
                assert line, "the demo ended without a panel"
        url, pin = line.split()[2].rstrip("/"), line.split()[-1]
        context = ssl.create_default_context(cafile=str(tmp_path / "run" / "demo-panel.crt"))
        jar = aiohttp.CookieJar(unsafe=True)  # the session cookie of an address, not a host name
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), cookie_jar=jar) as http:
            async with http.post(f"{url}/api/login", json={"guard": "demo", "pin": pin, "lang": "en"}) as r:
                assert r.status == 200, await r.text()
                who = await r.json()
            assert (who["guard"], who["name"], who["role"]) == ("demo", "Demo guard", "operator")
            async with http.get(f"{url}/api/events") as r:
                first = (await r.content.readuntil(b"\n\n")).decode()
            assert "lane-east" in first
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await proc.wait()
