"""The walk test (issue 8, point 4): the simulated demo site walked end to end by the CLI with its report in both
languages; the report published to the platform and checked against the contract; points left untested fail;
the installer's prompt raises and lowers a lane through the interlocks; the walk test will not start beside a
running gateway service."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.base.clock import Clock
from gateway.cli.walktest.checklist import ALARM, CLOSED, LOWERED, NORMAL, OPEN, Checklist
from gateway.cli.walktest.command import WalkTest, walk
from gateway.service.app import Gateway
from gateway.uplink.contract_check import validate_message
from simulators.bollard import BollardSim
from simulators.broker import PrivateBroker
from simulators.contacts import SimContact, contact_pin_factory
from simulators.devices import SimDevice, SmokeDetectorSim
from simulators.modbus_server import SimServer
from tests.gateway_harness import config_text, make_config, running_gateway

PREFIX = "campus/v1/test-school/gw-1"
REPO = Path(__file__).resolve().parent.parent
LANE = '\n[[lanes]]\nid = "lane-1"\ncontroller = "bollard-1"\npower_loss = "auto_lower"\n'


def _site(tmp_path: Path, broker_url: str, host: str, port: int, doors: bool = True) -> str:
    inputs = [
        {"id": f"door-{n}", "pin": 16 + n, "kind": "door", "contact": "NC", "debounce_ms": 10, "armed": "never"}
        for n in (1, 2)
    ]
    return (
        config_text(
            tmp_path / "state", broker_url,
            [{"id": "gate", "type": "tcp", "host": host, "port": port}],
            [{"id": "smoke-1", "bus": "gate", "unit": 1, "profile": "smoke_detector", "poll_interval_s": 0.1},
             {"id": "bollard-1", "bus": "gate", "unit": 2, "profile": "bollard_controller", "poll_interval_s": 0.1}],
            inputs if doors else None,
        ).replace("[gateway]\n", f'[gateway]\ncontrol_socket = "/tmp/ce-wt-{tmp_path.name[-12:]}.sock"\n')
        + LANE
    )  # fmt: skip


async def _cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_walktest_the_simulated_demo_site_passes_with_a_report_in_both_languages(tmp_path: Path) -> None:
    """`campus-edge walktest --simulate`: a simulated installer walks every point of the demo site (the lane, two
    doors, both panel relays, four detectors, a panel zone); every point passes and the report is written as JSON
    and as HTML in zh-CN and English."""
    code, out, err = await _cli(
        "walktest", "--config", "examples/demo-site.toml", "--simulate", "--out", str(tmp_path / "out"),
        "--lang", "zh-CN", "--by", "installer-li", "--timeout-s", "120",
    )  # fmt: skip
    assert code == 0, out + err[-3000:]
    assert "10 个点位中 10 个合格" in out
    assert "报告已上报平台" in out
    (report_file,) = (tmp_path / "out").glob("walktest-demo-school-gw-east-gate-*.json")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert (report["result"], report["aborted"], report["by"]) == ("pass", False, "installer-li")
    assert report["summary"] == {"points": 10, "passed": 10, "failed": []}
    by_id = {p["id"]: p for p in report["points"]}
    assert set(by_id["lane-east"]["seen"]) == {"raised", "lowered", "warning lights and buzzer", "upper limit",
                                               "lower limit"}  # fmt: skip
    assert by_id["lane-east"]["versions"]["map_version"] == 0x0100
    assert by_id["smoke-103"]["versions"].keys() >= {"model_code", "fw_version"}
    assert by_id["facp-1"]["required"] == ["online", "fire", "reset"]
    zh = report_file.with_suffix(".zh-CN.html").read_text(encoding="utf-8")
    en = report_file.with_suffix(".en.html").read_text(encoding="utf-8")
    assert "调试验收报告" in zh
    assert "上限位" in zh
    assert "合格" in zh
    assert "Commissioning report (walk test)" in en
    assert "upper limit" in en
    assert "10 of 10 points passed" in en


async def test_walktest_report_reaches_the_platform_and_untested_points_fail(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """An installer tests a detector, one door and the lane, then ends: the other door fails (a door closed at start
    was never seen opened), the report is published on `commissioning` and matches the contract."""
    detector, controller = SmokeDetectorSim(), BollardSim(rise_s=0.5, lower_s=0.5)
    devices: dict[int, SimDevice] = {1: detector, 2: controller}
    factory = contact_pin_factory()
    door1 = SimContact(factory, 17, "NC")
    SimContact(factory, 18, "NC")  # door-2: closed, and left alone
    sub = await subscriber_factory(broker.url, f"{PREFIX}/commissioning")
    events = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    status = await subscriber_factory(broker.url, f"{PREFIX}/status")
    alarm_list = await subscriber_factory(broker.url, f"{PREFIX}/alarms")
    async with SimServer.tcp(devices) as server:
        host, port = server.address
        cfg = make_config(_site(tmp_path, broker.url, host, port))
        state_dir = cfg.gateway.state_dir
        state_dir.mkdir(parents=True)
        (state_dir / "alarms.json").write_text("{}", encoding="utf-8")  # the service's book, left as it was
        gw = Gateway(cfg, pin_factory=factory, clock=Clock(assume_synced=True), walk_test=True)
        transcript = io.StringIO()

        async def installer(wt: WalkTest) -> None:
            check = wt.checklist.checks
            progress = asyncio.Event()
            wt.checklist.on_progress.append(lambda _check, _state: progress.set())

            async def until(point: str, state: str) -> None:
                async with asyncio.timeout(20):
                    while state not in check[point].seen:
                        progress.clear()
                        await progress.wait()

            assert check["door-2"].seen == {}, "closed at start is not 'closed': it was never seen opened"
            door1.set(True)
            await until("door-1", OPEN)
            door1.set(False)
            await until("door-1", CLOSED)
            detector.set_smoke(5.0)
            await until("smoke-1", ALARM)
            detector.set_smoke(0.0)
            detector.reset()
            await until("smoke-1", NORMAL)
            assert wt.command("raise lane-1")
            assert wt.command("raise nowhere")
            for arrived in ("raised", "upper limit", "warning lights and buzzer"):
                await until("lane-1", arrived)  # limits and lights may come a poll after the state
            assert wt.command("lower lane-1")
            await until("lane-1", LOWERED)
            await until("lane-1", "lower limit")
            assert not wt.command("done")

        report = await walk(gw, lang="en", out=transcript, by="wang", out_dir=tmp_path / "out", timeout_s=60,
                            installer=installer)  # fmt: skip
    assert (report["result"], report["aborted"]) == ("fail", True)
    assert report["summary"]["failed"] == ["door-2"]
    door2 = next(p for p in report["points"] if p["id"] == "door-2")
    assert (door2["seen"], door2["missing"]) == ({}, ["open", "closed"])
    said = transcript.getvalue()
    assert "Which lane? Type raise LANE; lanes: lane-1" in said
    assert "lane-1: raise done" in said
    _, published = await sub.wait_for(lambda _t, _p: True)
    assert published["schema"] == "campus-edge/commissioning/1"
    assert published["summary"]["failed"] == ["door-2"]
    validate_message(f"{PREFIX}/commissioning", published)
    # The events of points under test say so: the smoke detector's fire and its alarm, the lane's motions. Once a
    # point passed, its events are the site's again (the detector's alarm closed after its test); the outbox's own
    # events never are a test. The service's own state is as it was: its alarm book, the hazard reports.
    _, fire = await events.wait_for(lambda topic, p: topic.endswith("/event/fire") and p["device"] == "smoke-1")
    assert fire["test"] is True
    _, raised = await events.wait_for(lambda t, p: t.endswith("/event/alarm") and p["detail"]["alarm_id"] ==
                                      "smoke-1.fire_alarm" and p["value"] == "raised")  # fmt: skip
    assert raised["test"] is True
    marked = {(p["device"], p.get("test", False)) for t, p in events.messages if not t.endswith(("/store", "/gap"))}
    assert ("bollard-1", True) in marked
    assert not any(p.get("test") for t, p in events.messages if t.endswith(("/store", "/gap")))
    for topic, payload in events.messages:
        validate_message(topic, payload)
    # The broker is shared by the tests: an earlier test's retained list may come first; this one's says test.
    _, retained = await alarm_list.wait_for(lambda _t, p: bool(p["alarms"]) and p.get("test") is True)
    validate_message(f"{PREFIX}/alarms", retained)
    assert (state_dir / "alarms.json").read_text(encoding="utf-8") == "{}"
    _, online = await status.wait_for(lambda _t, p: p["state"] == "online" and p["boot_id"] == gw.identity.boot_id)
    assert online["walk_test"] is True
    assert not (state_dir / "report-history.json").exists()


async def test_walktest_the_installers_prompt_raises_and_lowers_a_lane(tmp_path: Path, broker: PrivateBroker) -> None:
    """The walk test as an installer runs it, in a process of its own with commands typed at its prompt: the lane
    rises and lowers through the supervisor; once every point passed the walk test ends by itself with exit 0."""
    detector, controller = SmokeDetectorSim(), BollardSim(rise_s=0.5, lower_s=0.5)
    async with SimServer.tcp({1: detector, 2: controller}) as server:
        host, port = server.address
        config = tmp_path / "site.toml"
        config.write_text(_site(tmp_path, broker.url, host, port, doors=False), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "walktest", "--config", str(config), "--lang", "en",
            "--out", str(tmp_path / "out"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=REPO,
        )  # fmt: skip
        assert proc.stdin is not None
        assert proc.stdout is not None
        lines: list[str] = []

        async def read_until(text: str) -> None:
            assert proc.stdout is not None
            async with asyncio.timeout(30):
                while not any(text in line for line in lines):
                    raw = await proc.stdout.readline()
                    assert raw, "the walk test ended early:\n" + "".join(lines)
                    lines.append(raw.decode())

        try:
            await read_until("0 of 2 points passed")
            proc.stdin.write(b"list\n")
            await read_until("smoke-1: online")
            while not any("lane-1: raise done" in line for line in lines):
                # Until the controller's state has been read, a raise is refused (state unknown): asked again.
                proc.stdin.write(b"raise lane-1\n")
                await proc.stdin.drain()
                await read_until("lane-1: raise")
                lines[:] = [line.replace("lane-1: raise refused", "(refused)") for line in lines]
            await read_until("lane-1: upper limit")
            detector.set_smoke(5.0)
            await read_until("smoke-1: alarm")
            detector.set_smoke(0.0)
            detector.reset()
            proc.stdin.write(b"lower lane-1\n")
            await proc.stdin.drain()
            async with asyncio.timeout(30):
                rest, err = await proc.communicate()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    out = "".join(lines) + rest.decode()
    assert proc.returncode == 0, out + err.decode()[-3000:]
    assert "2 of 2 points passed" in out
    assert "Result: PASS" in out
    assert len(list((tmp_path / "out").glob("walktest-*.html"))) == 2


async def test_walktest_refuses_to_start_beside_a_running_gateway(tmp_path: Path, broker: PrivateBroker) -> None:
    config = tmp_path / "site.toml"
    text = config_text(tmp_path / "state", broker.url, [], []).replace(
        "[gateway]\n", f'[gateway]\ncontrol_socket = "/tmp/ce-wt-run-{tmp_path.name[-10:]}.sock"\n'
    )
    config.write_text(text, encoding="utf-8")
    async with running_gateway(make_config(text)):
        code, _out, err = await _cli("walktest", "--config", str(config), "--lang", "zh-CN")
    assert code == 2
    assert "网关服务正在运行" in err


def test_walktest_a_lane_standing_down_at_start_is_not_lowered(tmp_path: Path) -> None:
    """Only motions count: a lane reported down at start has not been seen lowering."""
    from drivers.profile import Quality  # noqa: PLC0415
    from gateway.store.records import Reading, Stamp  # noqa: PLC0415

    cfg = make_config(_site(tmp_path, "mqtt://127.0.0.1:1", "127.0.0.1", 1))
    checklist = Checklist(cfg, lambda: 0)
    at = Stamp(0, 0.0, True)
    checklist.on_readings([Reading("bollard-1", "state", "down", Quality.GOOD, at),
                           Reading("bollard-1", "limit_down", True, Quality.GOOD, at)])  # fmt: skip
    assert checklist.checks["lane-1"].seen == {}
    checklist.on_readings([Reading("bollard-1", "state", "lowering", Quality.GOOD, at),
                           Reading("bollard-1", "state", "down", Quality.GOOD, at),
                           Reading("bollard-1", "limit_down", True, Quality.GOOD, at)])  # fmt: skip
    assert set(checklist.checks["lane-1"].seen) == {"lowered", "lower limit"}


def test_walktest_a_field_nodes_wired_loops_are_points_with_a_tamper_test(tmp_path: Path) -> None:
    """A door node's loops that are wired become points of their own: each passes once seen open, closed again,
    and shorted or cut (its end-of-line supervision); an unused loop is no point."""
    from drivers.profile import Quality  # noqa: PLC0415
    from gateway.store.records import Reading, Stamp  # noqa: PLC0415

    text = config_text(
        tmp_path / "state", "mqtt://127.0.0.1:1",
        [{"id": "field", "type": "rtu", "port": "/dev/ttyUSB9"}],
        [{"id": "node-1", "bus": "field", "unit": 5, "profile": "door_node", "name": "Block B"}],
    )  # fmt: skip
    checklist = Checklist(make_config(text), lambda: 0)
    at = Stamp(0, 0.0, True)

    def read(point: str, value: Any) -> None:
        checklist.on_readings([Reading("node-1", point, value, Quality.GOOD, at)])

    checklist.on_readings([Reading("node-1", "door1_state", "normal", Quality.GOOD, at),
                           Reading("node-1", "door2_state", "unused", Quality.GOOD, at),
                           Reading("node-1", "model_code", 0x4401, Quality.GOOD, at)])  # fmt: skip
    assert set(checklist.checks) == {"node-1", "node-1.door1"}
    assert checklist.checks["node-1"].passed, "the node itself: online"
    door = checklist.checks["node-1.door1"]
    assert (door.kind, door.name, door.seen) == ("supervised_door", "Block B 1", {}), "normal at start is not closed"
    read("door1_state", "open")
    read("door1_state", "normal")
    assert not door.passed
    read("door1_state", "cut")
    assert door.passed
    assert checklist.done


def test_walktest_a_loop_configured_as_a_door_is_named_by_the_door(tmp_path: Path) -> None:
    """A loop with a `[[devices.doors]]` table is the point of that door: its id and name, as the guard knows it."""
    from drivers.profile import Quality  # noqa: PLC0415
    from gateway.store.records import Reading, Stamp  # noqa: PLC0415

    text = config_text(
        tmp_path / "state", "mqtt://127.0.0.1:1",
        [{"id": "field", "type": "rtu", "port": "/dev/ttyUSB9"}],
        [{"id": "node-1", "bus": "field", "unit": 5, "profile": "door_node", "name": "Block B"}],
    ) + '[[devices.doors]]\nloop = 2\nid = "door-lab"\nname = "Lab door"\narmed = "always"\n'  # fmt: skip
    checklist = Checklist(make_config(text), lambda: 0)
    at = Stamp(0, 0.0, True)
    checklist.on_readings([Reading("node-1", "door1_state", "normal", Quality.GOOD, at),
                           Reading("node-1", "door2_state", "normal", Quality.GOOD, at)])  # fmt: skip
    assert set(checklist.checks) == {"node-1", "node-1.door1", "door-lab"}
    assert (checklist.checks["door-lab"].kind, checklist.checks["door-lab"].name) == ("supervised_door", "Lab door")
