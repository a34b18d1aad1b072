"""`campus-edge keys new` and `campus-edge command sign|send`: the integrator's tools for signed commands.

The same as a library: `gateway.safety.commands.envelope.sign()` makes a payload, `gateway.base.keys.new_keypair()`
makes a key pair.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.base import strict_json
from gateway.base.contract import ACTIONS
from gateway.base.errors import GatewayError
from gateway.base.keys import KeyFileError, load_private, new_keypair
from gateway.safety.commands.envelope import sign


def add_parsers(sub: Any) -> None:
    """The `keys` and `command` subcommands."""
    keys = sub.add_parser("keys", help="make an Ed25519 key pair for signing commands")
    keys_sub = keys.add_subparsers(dest="keys_action", required=True)
    new = keys_sub.add_parser("new", help="write NAME.key (private, 0600) and NAME.pub")
    new.add_argument("name", help="the key id, e.g. platform-2026")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to write them (default: here)")
    new.add_argument("--issuer", default="platform", help="for the configuration snippet printed")

    cmd = sub.add_parser("command", help="sign a command, or sign and send it to a gateway")
    cmd_sub = cmd.add_subparsers(dest="command_action", required=True)
    for name, text in (("sign", "print a signed command"), ("send", "sign, publish, and print the replies")):
        p = cmd_sub.add_parser(name, help=text)
        p.add_argument("action", choices=ACTIONS)
        p.add_argument("target", help="a lane id, or the gateway id for site.lockdown")
        p.add_argument("--key", type=Path, required=True, help="the private key file (mode 0600)")
        p.add_argument("--kid", help="key id (default: the key file's name)")
        p.add_argument("--issuer", required=True)
        p.add_argument("--site", required=True)
        p.add_argument("--gateway", required=True)
        p.add_argument("--operator", required=True, help="who asks (kept in the audit)")
        p.add_argument("--reason", default="")
        p.add_argument("--on", choices=["true", "false"], help="site.lockdown: on or off")
        p.add_argument("--seq", type=int, help="default: milliseconds since the epoch (rises by itself)")
        p.add_argument("--ttl", type=float, default=10.0, help="seconds until it expires (at most 10)")
        if name == "send":
            p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
            p.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the final reply")


def run_keys(args: argparse.Namespace) -> int:
    """`keys new`: print where the files went and the configuration that accepts the key."""
    try:
        private, public = new_keypair(args.dir, args.name)
    except KeyFileError as exc:
        raise GatewayError(str(exc)) from exc
    print(f"private key: {private} (keep it secret: mode 0600, on the signing machine only)")
    print(f"public key:  {public}")
    print("add to the gateway's configuration:")
    print(f'[[commands.keys]]\nid = "{args.name}"\nissuer = "{args.issuer}"\npublic_key_file = "{public}"')
    print('roles = ["operator"]')
    return 0


def _payload(args: argparse.Namespace) -> bytes:
    try:
        key = load_private(args.key)
    except KeyFileError as exc:
        raise GatewayError(str(exc)) from exc
    params: dict[str, Any] = {}
    if args.action == "site.lockdown":
        if args.on is None:
            raise GatewayError("site.lockdown needs --on true or --on false")
        params = {"on": args.on == "true"}
    return sign(
        key,
        kid=args.kid or args.key.stem,
        issuer=args.issuer,
        audience=f"{args.site}/{args.gateway}",
        target=args.target,
        action=args.action,
        params=params,
        seq=args.seq if args.seq is not None else time.time_ns() // 1_000_000,
        operator=args.operator,
        reason=args.reason,
        ttl_s=args.ttl,
    )


def run_command(args: argparse.Namespace) -> int:
    """`command sign` prints the payload; `command send` publishes it and prints each reply, exit 0 if done."""
    payload = _payload(args)
    if args.command_action == "sign":
        sys.stdout.write(payload.decode() + "\n")
        return 0
    return asyncio.run(_send(args, payload))


async def _send(args: argparse.Namespace, payload: bytes) -> int:
    url = urlsplit(args.broker)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise GatewayError(f"--broker: expected mqtt://host:port or mqtts://host:port, got {args.broker!r}")
    tls = None
    if url.scheme == "mqtts":
        import ssl  # noqa: PLC0415

        tls = ssl.create_default_context()
    correlation = uuid.uuid4().bytes
    reply_topic = f"campus/v1/{args.site}/{args.gateway}/reply/{uuid.uuid4().hex}"
    async with aiomqtt.Client(
        url.hostname,
        url.port or (8883 if tls else 1883),
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        username=url.username,
        password=url.password,
    ) as client:
        await client.subscribe(reply_topic, qos=1)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        await client.publish(
            f"campus/v1/{args.site}/{args.gateway}/cmd/{args.target}", payload, qos=1, properties=props
        )
        try:
            async with asyncio.timeout(args.wait):
                async for msg in client.messages:
                    if getattr(msg.properties, "CorrelationData", None) != correlation:
                        continue
                    assert isinstance(msg.payload, bytes)
                    try:
                        reply = strict_json.loads(msg.payload, "reply")
                    except ValueError as exc:  # e.g. two "status"es: whether it was done is not ours to guess
                        print(f"{msg.topic}: reply ignored: {exc}", file=sys.stderr)
                        continue
                    print(json.dumps(reply, ensure_ascii=False))
                    if reply.get("status") in ("done", "failed", "rejected", "expired"):
                        return 0 if reply["status"] == "done" else 1
        except TimeoutError:
            print(f"no final reply within {args.wait:g} s", file=sys.stderr)
            return 2
    return 2
