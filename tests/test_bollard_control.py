"""The gate house's local control: `campus-edge bollard` over the control socket, in zh-CN and English."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.panel.control import ask
from gateway.safety.authority import Authority
from gateway.safety.schedule import schedule_from
from simulators.bollard import BollardSim, BollardState
from simulators.broker import PrivateBroker, free_port
from simulators.contacts import SimContact
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

LANE = (
    '\n[[lanes]]\nid = "lane-east"\ncontroller = "bollard-east"\npower_loss = "auto_lower"\nloop_clear_delay_s = 0.2\n'
)


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """A short path: Unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="ce-") as d:
        yield Path(d) / "control.sock"


def lane_site(
    tmp_path: Path, broker_url: str, endpoint: dict[str, Any], sock: Path, inputs: list[dict[str, Any]] | None = None
) -> str:
    """One bollard controller (unit 2) as lane-east, the control socket at `sock`."""
    device = {"id": "bollard-east", "bus": "gate", "unit": 2, "profile": "bollard_controller", "poll_interval_s": 0.1}
    text = config_text(tmp_path / "state", broker_url, [{"id": "gate", **endpoint}], [device], inputs)
    return text.replace("[gateway]\n", f'[gateway]\ncontrol_socket = "{sock}"\n') + LANE


async def cli(sock: Path, *args: str, lang: str = "en") -> tuple[int, str]:
    """`campus-edge bollard ...` as a guard would type it, in a process of its own."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "bollard", "--socket", str(sock), "--lang", lang, *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_bollard_cli_through_the_control_socket(tmp_path: Path, broker: PrivateBroker, socket_path: Path) -> None:
    """A vehicle on the loop: raise refused with the reason in Chinese (exit 1); loop clear: raised (exit 0)."""
    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[102] = 100
    sim.holding[103] = 200
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = lane_site(tmp_path, broker.url, endpoint, socket_path)
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            lane = gw.bollards.supervisors["lane-east"]
            await signal.until(lambda: socket_path.exists() and lane.sensors.view(False).state == "down")
            assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o660

            sim.set_input("loop_a_occupied", True)
            await signal.until(lambda: lane.sensors.view(False).loop_occupied is True)
            code, out = await cli(socket_path, "raise", "lane-east", lang="zh-CN")
            assert code == 1
            assert "升起 已拒绝" in out
            assert "地感线圈有车" in out
            code, out = await cli(socket_path, "status")
            assert code == 0
            assert out.startswith("lane-east: down - a vehicle is on the loop")

            sim.set_input("loop_a_occupied", False)
            await signal.until(lambda: not lane.sensors.view(False).loop_occupied)
            await signal.until(lambda: gw.clock.mono() - (lane.sensors.view(False).loop_cleared_mono or 0) > 0.3)
            code, out = await cli(socket_path, "raise", "lane-east")
            assert (code, out.strip()) == (0, "lane-east: raise done")
            await signal.until(lambda: sim.state is BollardState.UP, 10)

            code, out = await cli(socket_path, "raise", "lane-west")
            assert code == 1
            assert "no lane 'lane-west'; lanes: lane-east" in out
            bad: Any = await asyncio.to_thread(ask, socket_path, {"cmd": "fly", "lane": "lane-east"})
            assert bad == {
                "ok": False,
                "text": "unknown command 'fly'; expected status, lockdown, raise, lower, stop, release",
            }
            twice = b'{"cmd": "raise", "lane": "lane-east", "cmd": "lower"}\n'
            assert await asyncio.to_thread(ask_line, socket_path, twice) == {
                "ok": False,
                "text": 'expected one JSON object per line with cmd and lane: duplicate key "cmd" in request',
            }
            assert sim.state is BollardState.UP
        assert not await asyncio.to_thread(socket_path.exists)  # removed when the gateway stops
    code, out = await cli(socket_path, "status", lang="zh-CN")
    assert code == 2
    assert "无法连接网关" in out


def ask_line(path: Path, line: bytes) -> Any:
    """One line as it is (not made by `ask`) over the control socket, and the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(line)
        return json.loads(s.makefile("rb").readline())


async def test_bollard_cli_refuses_an_answer_with_a_key_given_twice(socket_path: Path) -> None:
    """An answer saying "ok" twice (refused, then done) is no answer: the guard is told, in the guard's language,
    and the exit is 2, not "done"."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"ok": false, "ok": true, "text": "lane-east: raise done"}\n')
        await writer.drain()
        writer.close()

    async with await asyncio.start_unix_server(answer, path=str(socket_path)):
        en = await cli(socket_path, "raise", "lane-east")
        zh = await cli(socket_path, "raise", "lane-east", lang="zh-CN")
    error = 'duplicate key "ok" in answer'
    assert en == (2, f"campus-edge: the gateway's answer on {socket_path} is not valid: {error}\n")
    assert zh == (2, f"campus-edge: 网关在 {socket_path} 的应答无效: {error}\n")


def test_bollard_control_rejects_what_is_not_a_request(tmp_path: Path) -> None:
    """Garbage on the socket gets an answer naming what was expected, not a dropped gateway."""
    from gateway.base.clock import Clock  # noqa: PLC0415
    from gateway.base.contract import Topics  # noqa: PLC0415
    from gateway.panel.control import ControlSocket  # noqa: PLC0415
    from gateway.safety.bollards.service import BollardService  # noqa: PLC0415
    from gateway.safety.site_mode import SiteMode  # noqa: PLC0415
    from gateway.store.outbox import Outbox  # noqa: PLC0415
    from gateway.store.recorder import Recorder  # noqa: PLC0415
    from gateway.store.stateboard import StateBoard  # noqa: PLC0415

    topics = Topics("s", "g")
    recorder = Recorder(Outbox(tmp_path / "o.db"), topics, StateBoard(topics))
    site = SiteMode(recorder, Clock())
    control = ControlSocket(BollardService((), {}, recorder, Clock(), site), site, tmp_path / "c.sock")
    assert control.answer(b"not json")["text"].startswith("expected one JSON object per line")
    assert control.answer(b"[1, 2]") == {
        "ok": False,
        "text": "expected one JSON object per line with cmd and lane: got list",
    }
    assert (
        json.dumps(control.answer(b'{"cmd": "status"}'))
        == '{"ok": true, "lockdown": null, "closed_campus": null, "lanes": []}'
    )


async def test_bollard_gate_house_buttons_work_without_the_network(
    tmp_path: Path, socket_path: Path, pin_factory: Any
) -> None:
    """No broker at all: the raise button raises, the stop button stops; the EFO key rises at EFO speed."""
    sim = BollardSim(rise_s=0.6, lower_s=0.3)
    sim.holding[102] = 100
    sim.set_efo_key(True)
    raise_button = SimContact(pin_factory, 5, "NO")
    stop_button = SimContact(pin_factory, 6, "NO")
    lower_button = SimContact(pin_factory, 13, "NO")
    efo_key = SimContact(pin_factory, 19, "NO")
    buttons = [
        {"id": "btn-raise", "pin": 5, "kind": "bollard_raise", "contact": "NO", "lane": "lane-east"},
        {"id": "btn-stop", "pin": 6, "kind": "bollard_stop", "contact": "NO", "lane": "lane-east"},
        {"id": "btn-lower", "pin": 13, "kind": "bollard_lower", "contact": "NO", "lane": "lane-east"},
        {"id": "key-efo", "pin": 19, "kind": "efo_key", "contact": "NO", "lane": "lane-east"},
    ]
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        # Nothing listens on the broker's address: the network is down.
        text = lane_site(tmp_path, f"mqtt://127.0.0.1:{free_port()}", endpoint, socket_path, buttons)
        async with running_gateway(make_config(text), pin_factory) as gw:
            signal = watch_gateway(gw)
            lane = gw.bollards.supervisors["lane-east"]
            await signal.until(lambda: lane.sensors.view(False).state == "down")
            # A press is held longer than the debounce (50 ms), as a finger does.
            raise_button.set(True)
            await signal.until(lambda: sim.state is BollardState.RISING and sim.position > 0)
            raise_button.set(False)
            stop_button.set(True)
            await signal.until(lambda: sim.state is BollardState.STOPPED_MID)
            stop_button.set(False)
            lower_button.set(True)
            await signal.until(lambda: sim.state is BollardState.DOWN, 10)
            lower_button.set(False)
            efo_key.set(True)
            await signal.until(lambda: sim.state is BollardState.EFO_RISING)
            await signal.until(lambda: sim.state is BollardState.UP, 10)
            assert gw.uplink.connections == 0


async def test_bollard_fire_hold_survives_a_restart(tmp_path: Path) -> None:
    """A gateway restarted during a fire hold keeps the fire lane held; only the guard's release ends it (R17).
    An unreadable hold file holds every fire lane."""
    from drivers.modbus import ModbusBus  # noqa: PLC0415
    from drivers.profile import Quality  # noqa: PLC0415
    from gateway.base.clock import Clock  # noqa: PLC0415
    from gateway.base.contract import Topics  # noqa: PLC0415
    from gateway.config import LaneConfig  # noqa: PLC0415
    from gateway.safety.authority import Authority  # noqa: PLC0415
    from gateway.safety.bollards.service import BollardService  # noqa: PLC0415
    from gateway.safety.bollards.supervisor import Command, Rule  # noqa: PLC0415
    from gateway.safety.site_mode import SiteMode  # noqa: PLC0415
    from gateway.store.outbox import Outbox  # noqa: PLC0415
    from gateway.store.recorder import Recorder  # noqa: PLC0415
    from gateway.store.records import Event, Stamp  # noqa: PLC0415
    from gateway.store.stateboard import StateBoard  # noqa: PLC0415

    lanes = (LaneConfig(id="lane-east", controller="b1", fire_lane=True, power_loss="auto_lower"),)
    controllers = {"b1": (ModbusBus.tcp("gate", "127.0.0.1", free_port()), 1)}  # never connected here
    hold = tmp_path / "fire-hold.json"
    topics = Topics("s", "g")

    def service() -> BollardService:
        recorder = Recorder(Outbox(tmp_path / "o.db"), topics, StateBoard(topics))
        site = SiteMode(recorder, Clock(), sources_file=tmp_path / "fire-sources.json")
        return BollardService(lanes, controllers, recorder, Clock(), site, hold)

    first = service()
    fire = Event("fire", "alarm", "raised", "facp-1", "fire", True, Quality.GOOD, Stamp(0, 0.0, True))
    first.recorder.record([], [fire])
    assert first.supervisors["lane-east"].fire_hold
    first.recorder.record([], [Event("fire", "alarm", "cleared", "facp-1", "fire", False, Quality.GOOD, fire.at)])

    second = service()  # the gateway restarted
    assert second.request("lane-east", Command.RAISE, Authority.PLATFORM).rule is Rule.OUTRANKED
    assert second.request("lane-east", Command.RELEASE_FIRE_HOLD, Authority.GUARD).accepted
    assert not service().supervisors["lane-east"].fire_hold  # the release is kept too

    hold.write_text("{garbage")
    assert service().supervisors["lane-east"].fire_hold


async def test_bollard_fire_from_two_detectors_lasts_until_both_clear(tmp_path: Path) -> None:
    """Two detectors confirm a fire; one alone does not; the fire ends only when the last one clears."""
    from drivers.modbus import ModbusBus  # noqa: PLC0415
    from drivers.profile import Quality  # noqa: PLC0415
    from gateway.base.clock import Clock  # noqa: PLC0415
    from gateway.base.contract import Topics  # noqa: PLC0415
    from gateway.config import LaneConfig  # noqa: PLC0415
    from gateway.safety.bollards.service import BollardService  # noqa: PLC0415
    from gateway.safety.site_mode import SiteMode  # noqa: PLC0415
    from gateway.store.outbox import Outbox  # noqa: PLC0415
    from gateway.store.recorder import Recorder  # noqa: PLC0415
    from gateway.store.records import Event, EventState, Stamp  # noqa: PLC0415
    from gateway.store.stateboard import StateBoard  # noqa: PLC0415

    topics = Topics("s", "g")
    recorder = Recorder(Outbox(tmp_path / "o.db"), topics, StateBoard(topics))
    lanes = (LaneConfig(id="lane-east", controller="b1", fire_lane=True, power_loss="auto_lower"),)
    controllers = {"b1": (ModbusBus.tcp("gate", "127.0.0.1", free_port()), 1)}
    service = BollardService(lanes, controllers, recorder, Clock(), SiteMode(recorder, Clock()))

    def detector(device: str, raised: bool) -> None:
        state: EventState = "raised" if raised else "cleared"
        recorder.record([], [Event("fire", "alarm", state, device, "fire_alarm", raised, Quality.GOOD,
                                   Stamp(0, 0.0, True))])  # fmt: skip

    detector("smoke-1", True)
    assert not service.fire
    detector("smoke-2", True)
    assert service.fire
    detector("smoke-1", False)
    assert service.fire
    detector("smoke-2", False)
    assert not service.fire


async def test_bollard_lockdown_from_the_cli_and_the_key_outlives_a_restart(
    tmp_path: Path, socket_path: Path, pin_factory: Any
) -> None:
    """`campus-edge bollard lockdown on` raises the lane (interlocks respected), survives a gateway restart, and
    `off` ends it leaving the lane up. The lockdown key switch declares it too, by its position."""
    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[102] = 100
    key = SimContact(pin_factory, 26, "NO")
    inputs = [{"id": "key-lockdown", "pin": 26, "kind": "lockdown_key", "contact": "NO", "debounce_ms": 10}]
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = lane_site(tmp_path, f"mqtt://127.0.0.1:{free_port()}", endpoint, socket_path, inputs)
        async with running_gateway(make_config(text), pin_factory) as gw:
            signal = watch_gateway(gw)
            lane = gw.bollards.supervisors["lane-east"]
            await signal.until(lambda: lane.sensors.view(False).state == "down")
            sim.set_input("photocell_blocked", True)
            await signal.until(lambda: lane.sensors.view(False).photocell_blocked is True)
            code, out = await cli(socket_path, "lockdown", "on", lang="zh-CN")
            assert code == 0
            assert "封闭管理已启动" in out
            assert "红外对射被遮挡" in out, "the lane's refusal is shown with its reason"
            sim.set_input("photocell_blocked", False)
            await signal.until(lambda: sim.state is BollardState.UP, 10)
            code, out = await cli(socket_path, "status")
            assert out.startswith("LOCKDOWN in force (guard)")
        async with running_gateway(make_config(text), pin_factory) as gw:
            assert gw.bollards.lockdown is not None, "restored from state_dir/modes.json"
            code, out = await cli(socket_path, "lockdown", "off")
            assert (code, out.strip()) == (0, "lockdown ended; the lanes stay as they are")
            assert sim.state is BollardState.UP
            sim.command("cmd_lower")
            key.set(True)
            signal = watch_gateway(gw)
            await signal.until(lambda: gw.bollards.lockdown is not None)
            await signal.until(lambda: sim.state is BollardState.UP, 10)
            key.set(False)
            await signal.until(lambda: gw.bollards.lockdown is None)


ALWAYS_IN_SESSION = """
[schedule]
timezone = "Asia/Shanghai"
[[schedule.periods]]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "00:00"
"""


async def test_bollard_schedule_raises_in_school_hours_on_a_synchronised_clock(
    tmp_path: Path, socket_path: Path
) -> None:
    """A schedule in session all day: the scheduled lane is raised at start at the lowest authority. On a clock
    that is not synchronised the schedule judges nothing: the campus is 'unknown' and nothing moves."""
    from gateway.base.clock import Clock  # noqa: PLC0415
    from gateway.base.contract import Topics  # noqa: PLC0415
    from gateway.safety.site_mode import SiteMode  # noqa: PLC0415
    from gateway.store.outbox import Outbox  # noqa: PLC0415
    from gateway.store.recorder import Recorder  # noqa: PLC0415
    from gateway.store.stateboard import StateBoard  # noqa: PLC0415

    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[102] = 100
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = lane_site(tmp_path, f"mqtt://127.0.0.1:{free_port()}", endpoint, socket_path) + ALWAYS_IN_SESSION
        cfg = make_config(text)
        async with running_gateway(cfg) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: sim.state is BollardState.UP, 10)
            assert gw.bollards.closed_campus is True
            assert gw.bollards.supervisors["lane-east"].last_decision is not None
            assert gw.bollards.supervisors["lane-east"].last_decision.source is Authority.SCHEDULE
            code, out = await cli(socket_path, "status")
            assert code == 0
            assert out.startswith("school hours: closed campus")

    topics = Topics("s", "g")
    recorder = Recorder(Outbox(tmp_path / "o.db"), topics, StateBoard(topics))
    assert cfg.schedule is not None
    unsynced = SiteMode(recorder, Clock(assume_synced=False), schedule=schedule_from(cfg.schedule))
    follow = asyncio.create_task(unsynced.follow_schedule())
    await asyncio.sleep(0.1)
    follow.cancel()
    assert unsynced.closed_campus is None


@pytest.mark.parametrize(
    ("args", "english", "chinese"),
    [
        (("bollard", "raise"), "campus-edge bollard raise: which lane?",
         "campus-edge bollard raise: 哪个车道? 请给出车道编号"),
        (("bollard", "lockdown", "maybe"), "campus-edge bollard lockdown: expected on or off",
         "campus-edge bollard lockdown: 请给出 on (开启) 或 off (解除)"),
        (("alarm", "ack"), "campus-edge alarm ack: which alarm?",
         "campus-edge alarm ack: 确认哪条报警? 请给出报警编号"),
    ],
)  # fmt: skip
def test_bollard_and_alarm_cli_mistakes_in_the_guards_language(
    tmp_path: Path, args: tuple[str, ...], english: str, chinese: str
) -> None:
    """A guard's mistake on the command line is said in the locale's language (or --lang's), exit 2, before the
    gateway is asked anything."""
    argv = [sys.executable, "-m", "gateway.cli", *args, "--socket", str(tmp_path / "none.sock")]
    env = {**os.environ, "LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    zh = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    en = subprocess.run([*argv, "--lang", "en"], capture_output=True, text=True, check=False, env=env)
    assert (zh.returncode, zh.stderr) == (2, f"campus-edge: {chinese}\n")
    assert (en.returncode, en.stderr) == (2, f"campus-edge: {english}\n")


def test_bollard_cli_finds_the_socket_without_reading_the_rest_of_the_config(tmp_path: Path) -> None:
    """A guard's `campus-edge bollard` takes the control socket's place from the config without validating it: the
    guard may read neither the key files it names nor (once it holds PIN hashes) the whole of it. Here the key file
    is missing: the command still goes to the socket, and says it cannot reach the gateway there."""
    from gateway.config import configured_control_socket  # noqa: PLC0415

    config = tmp_path / "gateway.toml"
    config.write_text(
        '[site]\nid = "s"\n[gateway]\nid = "g"\nstate_dir = "state"\n'
        '[mqtt]\nurls = ["mqtts://127.0.0.1:8883"]\nkey_file = "missing.key"\ncert_file = "missing.crt"\n'
    )
    assert configured_control_socket(config) == tmp_path / "state" / "control.sock"
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "bollard", "status", "--config", str(config), "--lang", "en"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout.startswith(f"cannot reach the gateway at {tmp_path / 'state' / 'control.sock'}:")
