"""Signed commands through a real broker to a running gateway and a simulated bollard controller (issue 7): a
valid raise is replied accepted, in progress and done with the limit switches read; a redelivery returns the
stored result and moves nothing; forged and expired commands move nothing and are audited as such."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.base.keys import load_private
from gateway.safety.commands.envelope import b64decode, seal, sign
from gateway.uplink.contract_check import validate_message, validator
from simulators.bollard import BollardSim, BollardState
from simulators.broker import PrivateBroker
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"
EXAMPLE_ACL = (Path(__file__).resolve().parent.parent / "docs" / "examples" / "mosquitto-acl.conf").read_text()
LANE = '\n[[lanes]]\nid = "lane-east"\ncontroller = "bollard-east"\npower_loss = "stay"\nloop_clear_delay_s = 0.2\n'


def commands_toml(public: Path) -> str:
    return (
        f'\n[commands]\n[[commands.keys]]\nid = "platform-1"\nissuer = "platform"\npublic_key_file = "{public}"\n'
        'roles = ["operator"]\n'
    )


async def cli(*args: str) -> tuple[int, str]:
    """`campus-edge ...` in a process of its own, as an integrator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


class Platform:
    """The platform's side: publishes commands with a response topic and correlation data, collects replies."""

    def __init__(self, client: aiomqtt.Client, reply_topic: str = "platform/replies") -> None:
        self.client = client
        self.reply_topic = reply_topic
        self.replies: list[tuple[bytes | None, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def listen(self) -> None:
        async for msg in self.client.messages:
            corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
            assert isinstance(msg.payload, bytes)
            self.replies.append((corr, json.loads(msg.payload)))
            self.arrived.set()

    async def send(self, target: str, payload: bytes, correlation: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = correlation
        await self.client.publish(f"{PREFIX}/cmd/{target}", payload, qos=1, properties=props)

    async def until(self, correlation: bytes, status: str, timeout_s: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for corr, reply in self.replies:
                    if corr == correlation and reply["status"] == status:
                        return reply
                self.arrived.clear()
                await self.arrived.wait()

    def statuses(self, correlation: bytes) -> list[str]:
        return [r["status"] for c, r in self.replies if c == correlation]


async def test_commands_end_to_end(tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any) -> None:
    code, out = await cli("keys", "new", "platform-1", "--dir", str(tmp_path / "keys"))
    assert code == 0, out
    private, public = tmp_path / "keys" / "platform-1.key", tmp_path / "keys" / "platform-1.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert 'id = "platform-1"' in out
    key = load_private(private)
    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[102] = 100
    sim.holding[103] = 200  # the controller's own loop clear delay, as the lane's
    events = await subscriber_factory(broker.url, f"{PREFIX}/event/command")
    host, port = broker.url.removeprefix("mqtt://").split(":")

    def cmd(seq: int, action: str = "bollard.raise", **kw: Any) -> bytes:
        args: dict[str, Any] = {"kid": "platform-1", "issuer": "platform", "audience": "test-school/gw-1",
                                "target": "lane-east", "action": action, "seq": seq, "operator": "ops.li"}  # fmt: skip
        args.update(kw)
        return sign(kw.pop("key", key), **{k: v for k, v in args.items() if k != "key"})

    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "gate", **endpoint}],
            [{"id": "bollard-east", "bus": "gate", "unit": 2, "profile": "bollard_controller",
              "poll_interval_s": 0.1}],
        ) + LANE + commands_toml(public)  # fmt: skip
        client = await stack.enter_async_context(
            aiomqtt.Client(host, int(port), identifier="platform-test", protocol=aiomqtt.ProtocolVersion.V5)
        )
        await client.subscribe("platform/replies", qos=1)
        platform = Platform(client)
        listener = asyncio.create_task(platform.listen())
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            lane = gw.bollards.supervisors["lane-east"]
            await signal.until(lambda: lane.sensors.view(False).state == "down")
            async with asyncio.timeout(10):
                await gw.uplink.listening.wait()

            raise_cmd = cmd(1)
            await platform.send("lane-east", raise_cmd, b"c-1")
            done = await platform.until(b"c-1", "done")
            assert (done["state"], done["limit_up"], done["limit_down"]) == ("up", True, False)
            assert platform.statuses(b"c-1")[:2] == ["accepted", "in_progress"]
            assert sim.table(4)[1] == BollardState.UP

            # Lowered at the gate; the same raise redelivered: its stored result, and nothing moves.
            sim.command("cmd_lower")
            await signal.until(lambda: sim.state is BollardState.DOWN)
            await platform.send("lane-east", raise_cmd, b"c-1-again")
            again = await platform.until(b"c-1-again", "done")
            assert again["duplicate"] is True
            await asyncio.sleep(0.5)
            assert sim.state is BollardState.DOWN

            # Forged: signed by a key the gateway does not know under a known id.
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

            await platform.send("lane-east", cmd(2, key=Ed25519PrivateKey.generate()), b"c-forged")
            forged = await platform.until(b"c-forged", "rejected")
            assert forged["reason"] == "bad_signature"
            assert "签名验证失败" in forged["text_zh"]

            # Validly signed, but with two actions: read as a lower by one parser and a raise by another.
            body = b64decode(json.loads(cmd(2))["body"]).replace(b'"action":', b'"action":"bollard.lower","action":')
            await platform.send("lane-east", seal(key, "platform-1", body), b"c-twice")
            twice = await platform.until(b"c-twice", "rejected")
            assert twice["reason"] == "malformed"
            _, audit = await events.wait_for(lambda _t, p: p["detail"].get("reason") == "malformed")
            assert audit["detail"]["message"] == 'duplicate key "action" in body'
            assert sim.state is BollardState.DOWN

            # A raise into a car: valid, accepted by the pipeline, refused by the interlock.
            sim.set_input("loop_a_occupied", True)
            await signal.until(lambda: lane.sensors.view(False).loop_occupied is True)
            await platform.send("lane-east", cmd(3), b"c-car")
            car = await platform.until(b"c-car", "rejected")
            assert (car["reason"], car["reasons"]) == ("interlock", ["loop_occupied"])

            # Lockdown from the platform, with the operator role.
            sim.set_input("loop_a_occupied", False)
            await platform.send("gw-1", cmd(4, "site.lockdown", target="gw-1", params={"on": True}), b"c-lock")
            await platform.until(b"c-lock", "done")
            assert gw.bollards.lockdown is not None
            await signal.until(lambda: sim.state is BollardState.UP, 10)

            # The integrator's command line: sign and send, print the replies, exit 0 when done.
            code, out = await cli(
                "command", "send", "bollard.lower", "lane-east", "--key", str(private), "--issuer", "platform",
                "--site", "test-school", "--gateway", "gw-1", "--operator", "ops.li", "--broker", broker.url,
                "--seq", "10",
            )  # fmt: skip
            assert code == 0, out  # the platform declared the lockdown: the platform may lower the lane
            assert '"status": "done"' in out
            assert sim.table(4)[1] == BollardState.DOWN
            code, out = await cli(
                "command", "send", "site.lockdown", "gw-1", "--on", "false", "--key", str(private), "--issuer",
                "platform", "--site", "test-school", "--gateway", "gw-1", "--operator", "ops.li", "--broker",
                broker.url,
            )  # fmt: skip
            assert code == 0, out
            assert gw.bollards.lockdown is None

            _, audit = await events.wait_for(lambda _t, p: p["detail"].get("reason") == "bad_signature")
            assert audit["detail"]["security"] is True
            assert audit["class"] == "command"
            assert sim.requests > 0
        listener.cancel()
    for topic, payload in events.messages:
        validate_message(topic, payload)
    # What the platform sent and received is what the contract documents.
    replies = validator("reply")
    for _corr, reply in platform.replies:
        replies.validate(reply)
    envelope, body = validator("command"), validator("command-body")
    for payload in (raise_cmd, cmd(9, "site.lockdown", target="gw-1", params={"on": False})):
        envelope.validate(json.loads(payload))
        body.validate(json.loads(b64decode(json.loads(payload)["body"])))


async def test_commands_over_mutual_tls_with_the_example_acl(tmp_path: Path) -> None:
    """The gateway and the platform each prove themselves to the broker with a certificate (mutual TLS); the
    broker's ACL is docs/examples/mosquitto-acl.conf for this site. A signed command goes through and is replied;
    a gateway without a client certificate is not let in at all."""
    import trustme  # noqa: PLC0415

    from tests.test_uplink import tls_files  # noqa: PLC0415

    ca = trustme.CA()
    ca_file, server_chain, server_key = tls_files(tmp_path, ca, "broker")
    acl = EXAMPLE_ACL.replace("demo-school", "test-school").replace("gw-east-gate", "gw-1")

    def client_cert(name: str) -> tuple[Path, Path]:
        cert = ca.issue_cert(common_name=name)
        chain, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(chain))
        cert.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        return chain, key

    gw_chain, gw_key = client_cert("gw-1.test-school")
    pf_chain, pf_key = client_cert("platform")
    private, public = tmp_path / "platform-1.key", tmp_path / "platform-1.pub"
    from gateway.base.keys import new_keypair  # noqa: PLC0415

    new_keypair(tmp_path, "platform-1")
    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[102] = 100
    with PrivateBroker(tmp_path / "mtls", tls=(ca_file, server_chain, server_key), acl=acl,
                       require_client_cert=True) as broker:  # fmt: skip
        host, port = broker.url.removeprefix("mqtts://").split(":")
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            base = config_text(
                tmp_path / "state", broker.url, [{"id": "gate", **endpoint}],
                [{"id": "bollard-east", "bus": "gate", "unit": 2, "profile": "bollard_controller",
                  "poll_interval_s": 0.1}],
                mqtt_extra=f'ca_file = "{ca_file}"\n',
            ) + LANE + commands_toml(public)  # fmt: skip
            text = base.replace("allow_plaintext = true\n", f'allow_plaintext = true\ncert_file = "{gw_chain}"\n'
                                f'key_file = "{gw_key}"\n')  # fmt: skip
            tls = ssl.create_default_context(cafile=str(ca_file))
            tls.load_cert_chain(str(pf_chain), str(pf_key))
            client = await stack.enter_async_context(
                aiomqtt.Client(
                    host, int(port), identifier="platform-mtls", protocol=aiomqtt.ProtocolVersion.V5, tls_context=tls
                )
            )
            await client.subscribe(f"{PREFIX}/reply/#", qos=1)
            platform = Platform(client, reply_topic=f"{PREFIX}/reply/platform")
            listener = asyncio.create_task(platform.listen())
            async with running_gateway(make_config(text)) as gw:
                async with asyncio.timeout(10):
                    await gw.uplink.listening.wait()
                payload = sign(load_private(private), kid="platform-1", issuer="platform",
                               audience="test-school/gw-1", target="lane-east", action="bollard.raise", seq=1,
                               operator="ops.li")  # fmt: skip
                await platform.send("lane-east", payload, b"m-1")
                done = await platform.until(b"m-1", "done")
                assert done["state"] == "up"
            listener.cancel()

            # The same gateway without its client certificate: the broker does not let it in.
            async with running_gateway(make_config(base)) as gw:
                await watch_gateway(gw).until(lambda: gw.uplink.failures >= 2)
                assert gw.uplink.connections == 0


async def test_commands_cli_sets_aside_a_reply_with_a_key_given_twice(tmp_path: Path, broker: PrivateBroker) -> None:
    """`command send` given a reply that says "status" twice (rejected, then done) sets it aside on stderr with its
    topic, and the next well-formed reply decides the exit: not "done" by the last of two."""
    from gateway.base.keys import new_keypair  # noqa: PLC0415

    private, _public = new_keypair(tmp_path, "platform-1")
    host, port = broker.url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port), identifier="fake-gw", protocol=aiomqtt.ProtocolVersion.V5) as gw:
        await gw.subscribe("campus/v1/s1/g1/cmd/#", qos=1)

        async def reply_twice() -> str:
            async for msg in gw.messages:
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.CorrelationData = getattr(msg.properties, "CorrelationData", None)
                topic = str(getattr(msg.properties, "ResponseTopic", None))
                await gw.publish(topic, b'{"status": "rejected", "status": "done"}', qos=1, properties=props)
                await gw.publish(topic, b'{"status": "rejected", "reason": "forbidden"}', qos=1, properties=props)
                return topic
            raise AssertionError("no command came")

        replier = asyncio.create_task(reply_twice())
        code, out = await cli(
            "command", "send", "bollard.raise", "lane-east", "--key", str(private), "--issuer", "platform",
            "--site", "s1", "--gateway", "g1", "--operator", "ops.li", "--broker", broker.url, "--wait", "10",
        )  # fmt: skip
        topic = await replier
    assert code == 1, out
    assert sorted(out.splitlines()) == [  # stdout and stderr, in either order
        f'{topic}: reply ignored: duplicate key "status" in reply',
        '{"status": "rejected", "reason": "forbidden"}',
    ]
