"""Doors on a field node's supervised loops (`[[devices.doors]]`): forced-open and held-open alarms as a GPIO door
has, from the node's polled loop states, with a simulated door node over Modbus TCP and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.profile import decode, load_profile
from gateway.base.errors import ConfigError
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.contacts import SimContact, contact_pin_factory
from simulators.door_node import DoorNodeSim
from simulators.modbus_server import SimServer
from simulators.scenario import ScenarioError, Step, parse_scenario
from simulators.site import SimulatedSite
from tests.gateway_harness import config_text, make_config, running_gateway

PREFIX = "campus/v1/test-school/gw-1"
REX_PIN = 18


def node_site(tmp_path: Path, broker_url: str, host: str, port: int, doors: str) -> str:
    rex = {"id": "rex-lab", "pin": REX_PIN, "kind": "rex", "door": "door-lab", "contact": "NO", "debounce_ms": 10}
    return config_text(tmp_path / "state", broker_url, [], [], [rex]) + (
        f'[[buses]]\nid = "field"\ntype = "tcp"\nhost = "{host}"\nport = {port}\n'
        '[[devices]]\nid = "node-b"\nbus = "field"\nunit = 5\nprofile = "door_node"\nname = "Block B"\n'
        "poll_interval_s = 0.1\n" + doors
    )


DOORS = """
[[devices.doors]]
loop = 1
id = "door-lab"
name = "Lab door"
armed = "always"
rex_window_s = 0.5
held_open_s = 0.8
held_prewarn_s = 0.4

[[devices.doors]]
loop = 2
id = "door-store"
armed = "always"
held_open_s = 0.6
"""


@contextlib.asynccontextmanager
async def node_gateway(
    tmp_path: Path, broker_url: str, node: DoorNodeSim, pin_factory: Any = None
) -> AsyncIterator[Any]:
    """The node on Modbus TCP, a gateway with DOORS on it, running once it has read the node's loops."""
    async with SimServer.tcp({5: node}) as server:
        cfg = make_config(node_site(tmp_path, broker_url, *server.address, DOORS))
        async with running_gateway(cfg, pin_factory=pin_factory or contact_pin_factory()) as gw:
            await node_read(gw)
            yield gw


async def node_read(gw: Any) -> None:
    """Until the gateway has read the node's loops once: a door open before that is where it stood at start."""
    read = asyncio.Event()
    gw.recorder.on_readings.append(lambda rs: read.set() if any(r.point == "door1_state" for r in rs) else None)
    if (state := gw.board.devices.get("node-b")) is None or "door1_state" not in state.points:
        async with asyncio.timeout(10):
            await read.wait()


def door_event(door: str, point: str, state: str) -> Any:
    def match(topic: str, p: dict[str, Any]) -> bool:
        return topic == f"{PREFIX}/event/door" and (p["device"], p["point"], p["state"]) == (door, point, state)

    return match


def test_door_node_simulator_reads_as_the_profile_decodes_it() -> None:
    """The simulator answers the register map the gateway's profile reads: states, open and tamper bits, the
    counters and levels."""
    node = DoorNodeSim(points=3)
    node.open_door(2)
    node.set_loop(3, "cut")
    words = {"inputs": node.read(2, 0, 10), "registers": node.read(4, 0, 28)}
    assert all(isinstance(w, list) for w in words.values())
    v = decode(load_profile("door_node"), words)  # type: ignore[arg-type]
    assert [v[f"door{n}_state"].value for n in range(1, 5)] == ["normal", "open", "cut", "unused"]
    assert [v[f"door{n}_open"].value for n in range(1, 5)] == [False, True, False, False]
    assert [v[f"door{n}_tamper"].value for n in range(1, 5)] == [False, False, True, False]
    assert (v["tamper"].value, v["door2_level"].value, v["event_counter"].value) == (True, 66.67, 2)
    assert node.read(3, 100, 8) == [247, 192, 50, 2500, 5830, 8330, 150, 3]
    with pytest.raises(ValueError, match="door 4: this node has doors 1-3"):
        node.open_door(4)


async def test_field_node_door_forced_and_held_open(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A door on a node's loop, armed always: opened without the exit button it is forced open at once, then held
    open; shut, both clear. With the button pressed just before, only held open. A shorted loop is tamper, not a
    shut door: the held-open alarm stays until the loop reads shut."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    node = DoorNodeSim(points=2)
    factory = contact_pin_factory()
    rex = SimContact(factory, REX_PIN, "NO")
    async with node_gateway(tmp_path, broker.url, node, factory):
        node.open_door(1)
        _, forced = await sub.wait_for(door_event("door-lab", "forced_open", "raised"))
        assert (forced["severity"], forced["detail"]["rex_window_s"]) == ("alarm", 0.5)
        await sub.wait_for(door_event("door-lab", "held_open_prewarn", "raised"))
        _, held = await sub.wait_for(door_event("door-lab", "held_open", "raised"))
        assert held["detail"]["open_s"] >= 0.8
        node.set_loop(1, "short")
        await sub.wait_for(lambda t, p: t.endswith("/event/tamper") and p["point"] == "door1_tamper")
        await asyncio.sleep(0.3)
        assert not any(door_event("door-lab", "held_open", "cleared")(t, p) for t, p in sub.messages)
        node.open_door(1, False)
        for point in ("forced_open", "held_open", "held_open_prewarn"):
            await sub.wait_for(door_event("door-lab", point, "cleared"))

        # The guard presses the exit button and opens the door within a poll: a normal exit.
        rex.set(True)
        await asyncio.sleep(0.05)
        rex.set(False)
        await asyncio.sleep(0.2)  # opened within the 0.5 s window, seen at the next read: up to 0.1 s later
        node.open_door(1)
        await sub.wait_for(door_event("door-lab", "held_open", "raised"))
        node.open_door(1, False)
        await sub.wait_for(door_event("door-lab", "held_open", "cleared"))
        lab_forced = [p for t, p in sub.messages if door_event("door-lab", "forced_open", "raised")(t, p)]
        assert len(lab_forced) == 1, "the exit was taken for a forced door"

        # The store room has no exit button.
        node.open_door(2)
        await sub.wait_for(door_event("door-store", "forced_open", "raised"))
        node.open_door(2, False)
        await sub.wait_for(door_event("door-store", "forced_open", "cleared"))
    for topic, payload in sub.messages:
        validate_message(topic, payload)
        assert "test" not in payload, "only a walk test's events say test"


async def test_field_node_door_open_at_start_is_held_not_forced(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A door already open when the gateway starts was not seen being forced; it is timed as held open."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/door")
    node = DoorNodeSim(points=2)
    node.open_door(2)
    async with SimServer.tcp({5: node}) as server:
        cfg = make_config(node_site(tmp_path, broker.url, *server.address, DOORS))
        async with running_gateway(cfg, pin_factory=contact_pin_factory()):
            await sub.wait_for(door_event("door-store", "held_open", "raised"))
            node.open_door(2, False)
            await sub.wait_for(door_event("door-store", "held_open", "cleared"))
    assert not any(p["point"] == "forced_open" for _, p in sub.messages)


async def test_field_node_door_moved_unseen_is_still_reported(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """What the gateway could not watch: a door opened and shut between two reads shows in the loop's change
    counter (forced open, raised and cleared), while a counter back at 0 (the node restarted) is no movement; a
    door opened while the node could not be reached, found open when it answers again, was opened unseen (forced,
    not a start); a tamper blip seen as it happened is not a door."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    node = DoorNodeSim(points=2)
    async with node_gateway(tmp_path, broker.url, node):
        node.open_door(2)
        node.open_door(2, False)  # within one poll
        _, forced = await sub.wait_for(door_event("door-store", "forced_open", "raised"))
        assert forced["detail"]["seen_within_s"] > 0
        await sub.wait_for(door_event("door-store", "forced_open", "cleared"))

        node.set_loop(2, "cut")
        await sub.wait_for(lambda t, p: t.endswith("/event/tamper") and p["point"] == "door2_tamper")
        node.set_loop(2, "normal")
        await sub.wait_for(lambda t, p: t.endswith("/event/tamper") and p["state"] == "cleared")

        node.changes = [0] * 4  # the node restarted: its counters begin again, nothing moved
        await asyncio.sleep(0.3)
        node.faults.silent = True
        await sub.wait_for(lambda t, p: t.endswith("/event/offline") and p["device"] == "node-b")
        node.open_door(2)
        node.faults.silent = False
        before = len(sub.messages)
        _, unseen = await sub.wait_for(
            lambda t, p: (
                door_event("door-store", "forced_open", "raised")(t, p) and sub.messages.index((t, p)) >= before
            )
        )
        assert unseen["detail"]["seen_within_s"] > 1.0, "the outage is part of when it may have opened"
        node.open_door(2, False)
        await sub.wait_for(door_event("door-store", "forced_open", "cleared"))
    forced_raised = [p for t, p in sub.messages if door_event("door-store", "forced_open", "raised")(t, p)]
    assert len(forced_raised) == 2, "a tamper blip or the node's restart was taken for a door"


async def test_a_door_alarm_raised_before_a_restart_clears_when_the_door_is_found_shut(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """Forced open, then the gateway stops; the door is shut meanwhile. The next start finds it shut and clears
    the alarm (it would otherwise stay raised at the platform and in the alarm book for good)."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    node = DoorNodeSim(points=2)
    async with SimServer.tcp({5: node}) as server:
        cfg = make_config(node_site(tmp_path, broker.url, *server.address, DOORS))
        async with running_gateway(cfg, pin_factory=contact_pin_factory()) as gw:
            await node_read(gw)
            node.open_door(2)
            await sub.wait_for(door_event("door-store", "forced_open", "raised"))
            await sub.wait_for(lambda t, p: t.endswith("/event/alarm") and p["device"] == "door-store")
        node.open_door(2, False)
        async with running_gateway(cfg, pin_factory=contact_pin_factory()):
            await sub.wait_for(door_event("door-store", "forced_open", "cleared"))
            _, book = await sub.wait_for(lambda t, p: t.endswith("/event/alarm") and p["value"] == "cleared")
            assert book["detail"]["alarm_id"] == "door-store.forced_open"


@pytest.mark.parametrize(
    ("doors", "where", "problem"),
    [
        ('[[devices.doors]]\nloop = 4\nid = "d4"\narmed = "always"\n', "test.toml:37: devices[0].doors[0].loop",
         "profile 'smoke_detector' has no door loop 4"),
        ('[[devices.doors]]\nloop = 1\nid = "d1"\narmed = "always"\n[[devices.doors]]\nloop = 1\nid = "d2"\n'
         'armed = "always"\n', "test.toml:41: devices[0].doors[1].loop", "loop 1 is used twice"),
        ('[[devices.doors]]\nloop = 1\nid = "rex-lab"\narmed = "always"\n', "test.toml:18: gpio.inputs[0].id",
         "id 'rex-lab' is already used by a field node door"),
        ('[[devices.doors]]\nloop = 1\nid = "door-lab"\narmed = "schedule"\n',
         "test.toml:39: devices[0].doors[0].armed", "needs a [schedule]"),
        ('[[devices.doors]]\nloop = 1\nid = "door-lab"\nheld_open_s = 5\nheld_prewarn_s = 5\n',
         "test.toml:40: devices[0].doors[0].held_prewarn_s", "expected less than held_open_s"),
    ],
)  # fmt: skip
def test_field_node_door_config_errors_name_the_line(tmp_path: Path, doors: str, where: str, problem: str) -> None:
    text = node_site(tmp_path, "mqtt://127.0.0.1:1", "127.0.0.1", 1502, "")
    if "loop = 4" in doors:
        text = text.replace('profile = "door_node"', 'profile = "smoke_detector"')
    with pytest.raises(ConfigError) as exc:
        make_config(text + doors)
    said = str(exc.value)
    assert where in said, said
    assert problem in said, said


def test_scenario_steps_move_a_door_nodes_loops() -> None:
    """Scenario files drive a simulated node's loops; a wrong value names the step."""
    site = SimulatedSite()
    site.add_tcp_bus("field")
    node = site.add_device("node-b", "field", 5, "door_node")
    assert isinstance(node, DoorNodeSim)
    steps = "".join(f'[[step]]\nat_s = {n}\ntarget = "node-b"\naction = "loop"\nvalue = "{v}"\n'
                    for n, v in ((1, "2=open"), (2, "3=cut")))  # fmt: skip
    for step in parse_scenario(steps):
        site.apply(step)
    assert node.loops == ["normal", "open", "cut", "unused"]
    with pytest.raises(ScenarioError, match=r'step at 3 s: expected value = "DOOR=normal\|open\|short\|cut"'):
        site.apply(Step(3.0, "node-b", "loop", "2=ajar"))
    with pytest.raises(ScenarioError, match="step at 4 s: door node: door 4: this node has doors 1-3"):
        site.apply(Step(4.0, "node-b", "loop", "4=open"))


async def test_field_node_loop_flipping_faster_than_the_poll_is_unstable(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A loop whose change counter moves by a dozen between two polls flips faster than the poll can follow: one
    warning with the count, the loop's points bad meanwhile and no forced-open alarm made of the flips; once the
    counter has stood still for a window, cleared with the total and the points good again."""
    node = DoorNodeSim(points=2)
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with SimServer.tcp({5: node}) as server:
        text = node_site(tmp_path, broker.url, *server.address, DOORS).replace(
            "poll_interval_s = 0.1\n", "poll_interval_s = 0.1\nchatter_count = 5\nchatter_window_s = 0.6\n"
        )
        async with running_gateway(make_config(text), pin_factory=contact_pin_factory()) as gw:
            await node_read(gw)
            toggles = 0
            for _burst in range(6):
                for _ in range(12):  # between two polls, as the node's debounce passed them: counted, never seen
                    node.open_door(1, toggles % 2 == 0)
                    toggles += 1
                await asyncio.sleep(0.15)

            def unstable(state: str) -> Any:
                return lambda t, p: t == f"{PREFIX}/event/maintenance" and p["state"] == state

            _, raised = await sub.wait_for(unstable("raised"))
            assert (raised["device"], raised["point"], raised["detail"]["changes"]) == (
                "node-b", "door1_open_unstable", 12,
            )  # fmt: skip
            assert raised["detail"]["text_en"] == "point unstable: changing faster than the poll can follow"
            assert raised["detail"]["text_zh"] == "点位不稳定: 变化快于轮询"
            bad = await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/node-b" and all(
                p["points"][n]["quality"] == "bad" for n in ("door1_open", "door1_state", "door1_tamper")))  # fmt: skip
            assert bad[1]["points"]["door2_open"]["quality"] == "good", "the other loop is not touched"
            _, cleared = await sub.wait_for(unstable("cleared"), timeout_s=5.0)
            assert cleared["detail"]["changes"] == toggles == 72
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/node-b" and p["points"]["door1_open"] == {
                **p["points"]["door1_open"], "quality": "good", "value": False})  # fmt: skip
    assert [p["state"] for t, p in sub.messages if t.endswith("/event/maintenance")] == ["raised", "cleared"]
    assert not any(t.endswith("/event/door") and p["point"] == "forced_open" for t, p in sub.messages)
    for topic, payload in [*sub.messages, bad]:
        validate_message(topic, payload)
