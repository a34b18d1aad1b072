"""The gate-house panel over HTTPS (issue 10): PINs hashed, sign-in locked out after wrong PINs, sessions that end,
CSRF refused, roles from the command roles, every action through the supervisor and audited with the guard's id.
A real gateway on the simulated demo site; a real HTTPS client that trusts only the test CA."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.base.errors import ConfigError
from gateway.config import HealthConfig, PanelConfig, parse_config
from gateway.panel.actions import NEEDS
from gateway.panel.auth import Gatekeeper, Lockout, Refusal, Session, SignInCounts, check_pin, hash_pin
from gateway.panel.bodies import ACTION_NAMES
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from tests.panel_site import PINS, PanelSite, panel_config, panel_site


def test_panel_pin_hash_checks_only_its_pin() -> None:
    """A hash is salted (two hashes of one PIN differ) and checks its own PIN only; a malformed one checks none."""
    first, second = hash_pin("2468"), hash_pin("2468")
    assert first != second
    assert first.startswith("scrypt$16384$8$1$")
    assert check_pin("2468", first)
    assert check_pin("2468", second)
    assert not check_pin("2469", first)
    assert not check_pin("2468", "scrypt$1$nonsense")


def test_panel_hash_pin_command_prints_a_hash_of_the_pin() -> None:
    """`campus-edge panel hash-pin` reads the PIN from standard input (no echo at a terminal) and prints a hash that
    checks it; a PIN under 4 digits is refused, in the asked language."""
    cmd = [sys.executable, "-m", "gateway.cli", "panel", "hash-pin"]
    done = subprocess.run(cmd, input="2468\n", capture_output=True, text=True, check=True, timeout=60)
    assert check_pin("2468", done.stdout.strip())
    short = subprocess.run(
        [*cmd, "--lang", "zh-CN"], input="12\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert (short.returncode, short.stderr.strip()) == (2, "campus-edge: PIN 码至少 4 位数字")


async def test_panel_sessions_end_and_lockout_lifts(tmp_path: Path) -> None:
    """A session is gone `session_s` after sign-in; a locked-out id is let in again after `lockout_s`."""
    import trustme  # noqa: PLC0415

    now = [100.0]
    gate = Gatekeeper(panel_config(tmp_path, trustme.CA(), session_s=60, lockout_s=30), lambda: now[0])
    session = await gate.sign_in("wang", PINS["wang"], "127.0.0.1")
    assert isinstance(session, Session)
    assert gate.session(session.token) is session
    now[0] += 60
    assert gate.session(session.token) is None
    for _ in range(3):
        assert isinstance(await gate.sign_in("wang", "0000", "127.0.0.2"), Refusal)
    assert gate.locked("id:wang") == 30
    now[0] += 30
    assert gate.locked("id:wang") == 0
    assert isinstance(await gate.sign_in("wang", PINS["wang"], "127.0.0.1"), Session)


async def test_panel_default_max_attempts_gives_five_tries(tmp_path: Path) -> None:
    """`max_attempts = 5`, the default and the guide's example: five wrong PINs are each answered as wrong, the fifth
    locks the id (one lock-out, counted), and from the sixth attempt on even the right PIN is refused as locked."""
    import trustme  # noqa: PLC0415

    cfg = panel_config(tmp_path, trustme.CA(), max_attempts=PanelConfig.model_fields["max_attempts"].default)
    assert (cfg.max_attempts, cfg.lockout_s) == (5, 600)
    gate = Gatekeeper(cfg, lambda: 100.0)
    results = [await gate.sign_in("wang", "0000", "127.0.0.1") for _ in range(5)]
    lockout = Lockout("guard_id", "wang", True, "127.0.0.1", 5, 600.0)
    assert results == [Refusal()] * 4 + [Refusal(lockouts=(lockout,))]
    assert await gate.sign_in("wang", PINS["wang"], "127.0.0.1") == Refusal(600.0)
    assert gate.counts == SignInCounts(refused=6, wrong_pins=5, lockouts=1)


async def test_panel_a_burst_of_wrong_pins_counts_only_until_the_lockout(tmp_path: Path) -> None:
    """Ten wrong PINs sent at once: the first three lock the id out and the other seven are refused as locked, not
    counted on (had they been checked side by side, the id would be locked again after two more once it lifts)."""
    import trustme  # noqa: PLC0415

    now = [100.0]
    gate = Gatekeeper(panel_config(tmp_path, trustme.CA(), lockout_s=30), lambda: now[0])
    results = await asyncio.gather(*(gate.sign_in("wang", "0000", f"127.0.0.{i}") for i in range(10)))
    lockout = Lockout("guard_id", "wang", True, "127.0.0.2", 3, 30.0)
    assert results == [Refusal(), Refusal(), Refusal(lockouts=(lockout,)), *[Refusal(30.0)] * 7]
    assert gate.locked("id:wang") == 30
    now[0] += 30
    for _ in range(2):
        assert await gate.sign_in("wang", "0000", "127.0.1.1") == Refusal()
    assert gate.locked("id:wang") == 0, "attempts refused as locked were counted"
    assert isinstance(await gate.sign_in("wang", "0000", "127.0.1.1"), Refusal)
    assert gate.locked("id:wang") == 30
    assert gate.counts == SignInCounts(refused=13, wrong_pins=6, lockouts=2)


async def test_panel_sign_in_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """The PIN's hash costs tens of milliseconds; other work of the gateway (a fire alarm) goes on meanwhile."""
    import trustme  # noqa: PLC0415

    gate = Gatekeeper(panel_config(tmp_path, trustme.CA()), lambda: 0.0)
    ticks = 0
    signing_in = asyncio.create_task(gate.sign_in("wang", PINS["wang"], "127.0.0.1"))
    while not signing_in.done():
        ticks += 1
        await asyncio.sleep(0)
    assert isinstance(await signing_in, Session)
    assert ticks >= 3, f"the loop ran {ticks} times while the PIN was checked"


def test_panel_config_names_a_missing_certificate_and_a_bad_hash(tmp_path: Path) -> None:
    """`[panel]` is checked at load: its certificate must exist, a pin_hash must be one hash-pin made."""
    text = (
        '[site]\nid = "s"\n[gateway]\nid = "g"\n[mqtt]\nurls = ["mqtt://127.0.0.1:1"]\nallow_plaintext = true\n'
        '[panel]\ncert_file = "tls/gateway.crt"\nkey_file = "tls/gateway.key"\n'
        f'[[panel.guards]]\nid = "wang"\npin_hash = "{hash_pin("2468")}"\n'
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "site.toml", tmp_path)
    assert str(err.value) == (
        f"site.toml:9: panel.cert_file: no such file: {tmp_path}/tls/gateway.crt\n"
        f"site.toml:10: panel.key_file: no such file: {tmp_path}/tls/gateway.key"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace("scrypt$", "md5$"), "site.toml", tmp_path)
    assert str(err.value) == (
        "site.toml:13: panel.guards[0].pin_hash: expected the hash `campus-edge panel hash-pin` prints (scrypt$...), "
        "never the PIN"
    )


@pytest.fixture
async def running(tmp_path: Path, broker: PrivateBroker) -> AsyncIterator[PanelSite]:
    async with panel_site(tmp_path, broker.url) as ps:
        yield ps


def client(ps: PanelSite, source: str = "127.0.0.1") -> aiohttp.ClientSession:
    """An HTTPS client that trusts the test CA alone, keeping the panel's cookie (set for an IP address); it
    connects from the loopback address `source` (another tablet: 127.0.0.2)."""
    ctx = ssl.create_default_context()
    ps.ca.configure_trust(ctx)
    connector = aiohttp.TCPConnector(ssl=ctx, local_addr=(source, 0))
    return aiohttp.ClientSession(base_url=ps.url, connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(http: aiohttp.ClientSession, guard: str, pin: str, lang: str = "en") -> tuple[int, str]:
    """One sign-in attempt: the HTTP status and the text the page shows."""
    async with http.post("/api/login", json={"guard": guard, "pin": pin, "lang": lang}) as r:
        return r.status, str((await r.json()).get("text"))


async def sign_in(http: aiohttp.ClientSession, guard: str) -> str:
    async with http.post("/api/login", json={"guard": guard, "pin": PINS[guard], "lang": "zh-CN"}) as r:
        assert r.status == 200
        body = await r.json()
    return str(body["csrf"])


async def snapshot(
    http: aiohttp.ClientSession, lang: str = "zh-CN", until: Callable[[dict[str, Any]], bool] = lambda _s: True
) -> dict[str, Any]:
    """The first snapshot the live stream pushes for which `until` holds."""
    async with asyncio.timeout(20), http.get(f"/api/events?lang={lang}") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        async for line in r.content:
            if line.startswith(b"data: ") and until(snap := dict(json.loads(line[6:]))):
                return snap
    raise AssertionError("the stream ended")


async def test_panel_signs_in_and_locks_out(running: PanelSite) -> None:
    """`max_attempts` (3 here) wrong PINs are each answered as wrong; the id is locked from the next attempt on (the
    right PIN too, then), as docs/guard-panel.md says; the page and its API speak only HTTPS with the gateway's
    certificate."""
    async with client(running) as http:
        async with http.get("/") as r:
            assert r.status == 200
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get("/api/events") as r:
            assert r.status == 401
            # A refusal carries the security headers too (it is raised, not returned, by the session check).
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["Cache-Control"] == "no-store"
        async with http.get("/no-such-page") as r:
            assert r.status == 404
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        for _ in range(3):
            assert await login(http, "wang", "0000") == (401, "wrong guard ID or PIN")
        assert await login(http, "wang", "0000") == (429, "too many wrong PINs: locked for 600 s")
        assert await login(http, "wang", PINS["wang"], "zh-CN") == (429, "PIN 码错误次数过多: 锁定 600 秒")
    # The gate house's tablet is one address for every guard: another guard still signs in at it.
    async with (
        client(running) as http,
        http.post("/api/login", json={"guard": "li", "pin": PINS["li"], "lang": "en"}) as r,
    ):
        assert r.status == 200


async def test_panel_lockouts_reach_the_platform_once_each_and_health_counts_refusals(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A guard id locked out, then the address: each lock-out is one security event through the outbox, with the
    guard id, the address and the count of wrong PINs; no event per wrong PIN. Health (MQTT and metrics) counts the
    refused sign-ins, the wrong PINs and the lock-outs."""
    prefix = "campus/v1/demo-school/gw-east-gate"
    sub = await subscriber_factory(broker.url, f"{prefix}/#")
    async with panel_site(tmp_path, broker.url, HealthConfig(interval_s=1, metrics_port=0)) as ps:
        async with client(ps) as http:
            for _ in range(3):  # the id's three: locked
                assert await login(http, "wang", "0000") == (401, "wrong guard ID or PIN")
            assert await login(http, "wang", "0000") == (429, "too many wrong PINs: locked for 600 s")
            for n in range(9):  # the address's twelve (3 + 9, whatever the ids): locked
                assert await login(http, f"guess-{n}", "0000") == (401, "wrong guard ID or PIN")
            assert await login(http, "li", PINS["li"]) == (429, "too many wrong PINs: locked for 600 s")
        async with client(ps, "127.0.0.2") as http:  # another tablet; its action's event comes after the lock-outs
            csrf = await sign_in(http, "li")
            async with http.post(
                "/api/action", json={"action": "ack", "alarm_id": "none", "lang": "en"}, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert await r.json() == {"ok": False, "text": "no open alarm 'none'"}
        await sub.wait_for(lambda t, p: t == f"{prefix}/event/command" and p["point"] == "panel_ack")
        events = {p["seq"]: (t, p) for t, p in sub.messages if "/event/" in t and p["class"] == "command"}
        lockouts = [(t, p) for _seq, (t, p) in sorted(events.items()) if p["point"] == "panel_lockout"]
        for topic, payload in lockouts:
            validate_message(topic, payload)
        assert [(p["device"], p["severity"], p["value"], p["detail"]) for _t, p in lockouts] == [
            (
                "gw-east-gate",
                "warning",
                "guard_id",
                {
                    "issuer": "panel",
                    "security": True,
                    "guard_id": "wang",
                    "known_guard": True,
                    "address": "127.0.0.1",
                    "wrong_pins": 3,
                    "lockout_s": 600.0,
                    "text_en": "guard ID 'wang' locked out for 600 s after 3 wrong PINs (the last from 127.0.0.1)",
                    "text_zh": "保安编号 'wang' 连续 3 次 PIN 码错误, 锁定 600 秒 (最后一次来自 127.0.0.1)",
                },
            ),
            (
                "gw-east-gate",
                "warning",
                "address",
                {
                    "issuer": "panel",
                    "security": True,
                    "guard_id": "guess-8",
                    "known_guard": False,
                    "address": "127.0.0.1",
                    "wrong_pins": 12,
                    "lockout_s": 600.0,
                    "text_en": "address 127.0.0.1 locked out for 600 s after 12 wrong PINs (the last for guard ID "
                    "'guess-8')",
                    "text_zh": "地址 127.0.0.1 连续 12 次 PIN 码错误, 锁定 600 秒 (最后一次为保安编号 'guess-8')",
                },
            ),
        ]
        assert [p["point"] for _t, p in events.values()] == ["panel_lockout", "panel_lockout", "panel_ack"]
        want = {"sign_ins_refused": 14, "wrong_pins": 12, "lockouts": 2}
        topic, health = await sub.wait_for(
            lambda t, p: t == f"{prefix}/health" and p["boot_id"] == ps.gw.identity.boot_id and p.get("panel") == want
        )
        validate_message(topic, health)
        assert ps.gw.metrics is not None
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{ps.gw.metrics.port}/metrics") as r:
            metrics = {s.name: s.value for f in text_string_to_metric_families(await r.text()) for s in f.samples}
    assert {k: v for k, v in metrics.items() if k.startswith("campus_edge_panel_")} == {
        "campus_edge_panel_sign_ins_refused_total": 14,
        "campus_edge_panel_wrong_pins_total": 12,
        "campus_edge_panel_lockouts_total": 2,
    }


async def test_panel_an_address_trying_id_after_id_is_locked_out(tmp_path: Path) -> None:
    """Wrong PINs for many ids from one address lock the address after `address_attempts` (by default four times
    `max_attempts`): then even a right PIN from there waits; the same guard elsewhere does not."""
    import trustme  # noqa: PLC0415

    now = [100.0]
    cfg = panel_config(tmp_path, trustme.CA(), lockout_s=30)
    assert (cfg.max_attempts, cfg.address_limit) == (3, 12)
    gate = Gatekeeper(cfg, lambda: now[0])
    for n in range(11):
        assert await gate.sign_in(f"guess-{n}", "0000", "127.0.0.9") == Refusal()
    assert gate.locked("addr:127.0.0.9") == 0, "11 of 12"
    lockout = Lockout("address", "guess-11", False, "127.0.0.9", 12, 30.0)
    assert await gate.sign_in("guess-11", "0000", "127.0.0.9") == Refusal(lockouts=(lockout,))
    assert gate.locked("addr:127.0.0.9") == 30
    assert await gate.sign_in("li", PINS["li"], "127.0.0.9") == Refusal(30.0)
    assert isinstance(await gate.sign_in("li", PINS["li"], "127.0.0.10"), Session)


async def test_panel_raise_refused_for_a_vehicle_shows_why_and_audits_the_guard(running: PanelSite) -> None:
    """A van on the loop: the lane shows the inhibit by name, a raise from the panel goes to the supervisor and
    comes back refused with its reason, and the audit names the guard; without the page's CSRF token nothing is
    decided."""
    running.bollard.set_input("loop_a_occupied", True)
    async with client(running) as http:
        csrf = await sign_in(http, "wang")
        for token in (None, csrf + "x"):  # without the page's CSRF token, or a wrong one: refused, nothing decided
            headers = {"X-CSRF-Token": token} if token else {}
            async with http.post("/api/action", json={"action": "raise", "lane": "lane-east"}, headers=headers) as r:
                assert r.status == 403
        assert running.audit("raise") == []
        snap = await snapshot(http, until=lambda s: "loop_occupied" in s["lanes"][0]["inhibits"])
        lane = snap["lanes"][0]
        assert lane["reasons"][0] == "地感线圈有车"
        assert snap["mode"] == "normal"
        assert "lockdown_on" not in snap["allowed"]  # a guard's role may not; an operator's may
        async with http.post(
            "/api/action", json={"action": "raise", "lane": "lane-east"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            body = await r.json()
        assert body == {"ok": False, "text": "lane-east: 升起 已拒绝 (地感线圈有车)"}
        async with http.post(
            "/api/action", json={"action": "lockdown_on", "lang": "en"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 403
            assert (await r.json())["text"] == "your role (guard) may not do this"
    assert running.gw.bollards.lockdown is None
    (audit,) = running.audit("raise")
    assert (audit.device, audit.value, audit.severity) == ("lane-east", "refused", "warning")
    assert audit.detail is not None
    assert (audit.detail["operator"], audit.detail["operator_name"], audit.detail["reason"]) == (
        "wang",
        "王师傅",
        "interlock",
    )
    (forbidden,) = running.audit("lockdown_on")
    assert forbidden.detail is not None
    assert forbidden.detail["reason"] == "forbidden"


async def test_panel_operator_declares_and_ends_a_lockdown(
    running: PanelSite, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """An operator's role may declare a lockdown: the site's mode says so, and it ends from the panel too. The audit
    reaches the platform as the contract says a `command` event is."""
    sub = await subscriber_factory(broker.url, "campus/v1/demo-school/gw-east-gate/event/command")
    async with client(running) as http:
        csrf = await sign_in(http, "li")
        async with http.post(
            "/api/action", json={"action": "lockdown_on", "lang": "en"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert await r.json() == {"ok": True, "text": "lockdown declared: gates closed"}
        snap = await snapshot(http)
        assert (snap["mode"], snap["lockdown"]) == ("lockdown", True)
        async with http.post(
            "/api/action", json={"action": "lockdown_off", "lang": "en"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert (await r.json())["ok"] is True
    assert running.gw.bollards.lockdown is None
    assert [e.value for e in running.audit("lockdown_on") + running.audit("lockdown_off")] == ["done", "done"]
    topic, payload = await sub.wait_for(lambda _t, p: p["point"] == "panel_lockdown_off")
    validate_message(topic, payload)
    assert (payload["device"], payload["detail"]["operator"], payload["detail"]["operator_name"]) == (
        "gw-east-gate",
        "li",
        "李队长",
    )


async def test_panel_a_request_with_a_key_given_twice_decides_nothing(
    running: PanelSite, caplog: pytest.LogCaptureFixture
) -> None:
    """A body that names a key twice is refused, named in the answer and the log: no sign-in as the second guard,
    no lockdown from the second action."""
    as_json = {"Content-Type": "application/json"}
    async with client(running) as http:
        twice = f'{{"guard": "wang", "guard": "li", "pin": "{PINS["li"]}", "lang": "en"}}'
        async with http.post("/api/login", data=twice, headers=as_json) as r:
            assert r.status == 400
            assert await r.json() == {"ok": False, "error": 'duplicate key "guard" in request'}
        csrf = await sign_in(http, "li")
        twice = '{"action": "lockdown_off", "action": "lockdown_on", "lang": "en"}'
        async with http.post("/api/action", data=twice, headers={"X-CSRF-Token": csrf} | as_json) as r:
            assert r.status == 400
            assert await r.json() == {"ok": False, "error": 'duplicate key "action" in request'}
    assert running.gw.bollards.lockdown is None
    assert running.audit("lockdown_on") == []
    assert 'panel: POST /api/action from 127.0.0.1 refused: duplicate key "action" in request' in caplog.messages


async def test_panel_a_sign_in_body_the_model_refuses_is_not_understood(
    running: PanelSite, caplog: pytest.LogCaptureFixture
) -> None:
    """A sign-in body without its PIN, with a number for the guard id, or with a key the page never sends is
    answered 400 "not understood" in the body's language (zh-CN when it names none), signs no one in, counts as a
    refused sign-in, and the log names what is wrong."""
    bodies: list[tuple[dict[str, Any], str, str]] = [
        ({"guard": "wang", "lang": "en"}, "the request was not understood", "request.pin: Field required"),
        ({"guard": 7, "pin": PINS["wang"]}, "无法理解该请求", "request.guard: Input should be a valid string"),
        (
            {"guard": "li", "pin": PINS["li"], "lang": "en", "remember": True},
            "the request was not understood",
            "request.remember: Extra inputs are not permitted",
        ),
    ]
    assert running.gw.panel is not None
    async with client(running) as http:
        for body, text, why in bodies:
            async with http.post("/api/login", json=body) as r:
                assert r.status == 400
                assert await r.json() == {"ok": False, "text": text}
            assert f"panel: POST /api/login from 127.0.0.1 refused: {why}" in caplog.messages
        async with http.get("/api/session") as r:
            assert r.status == 401
    assert running.gw.panel.gate.counts == SignInCounts(refused=3)


async def test_panel_an_action_body_the_model_refuses_decides_nothing(
    running: PanelSite, caplog: pytest.LogCaptureFixture
) -> None:
    """An action body without its action or its lane, with a number for the alarm id or the language, or with a key
    its action does not take is answered 400 "not understood" (in the session's language when the body names none it
    can use); nothing is decided or audited, and the log names what is wrong."""
    bodies: list[tuple[dict[str, Any], str, str]] = [
        ({"lang": "en"}, "the request was not understood", "request.action: Field required"),
        ({"action": "raise", "lang": "en"}, "the request was not understood", "request.lane: Field required"),
        (
            {"action": "ack", "alarm_id": 5, "lang": "en"},
            "the request was not understood",
            "request.alarm_id: Input should be a valid string",
        ),
        (
            {"action": "lockdown_on", "lane": "lane-east", "lang": "en"},
            "the request was not understood",
            "request.lane: Extra inputs are not permitted",
        ),
        ({"action": "lockdown_on", "lang": 1}, "无法理解该请求", "request.lang: Input should be a valid string"),
        (
            {"action": "dance"},
            "无法理解该请求",
            "request.action: Input tag 'dance' found using 'action' does not match any of the expected tags: "
            "'raise', 'lower', 'stop', 'release', 'ack', 'lockdown_on', 'lockdown_off'",
        ),
    ]
    async with client(running) as http:
        csrf = await sign_in(http, "li")  # an operator: each of these actions would be allowed
        for body, text, why in bodies:
            async with http.post("/api/action", json=body, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 400
                assert await r.json() == {"ok": False, "text": text}
            assert f"panel: POST /api/action from 127.0.0.1 refused: {why}" in caplog.messages
    assert running.gw.bollards.lockdown is None
    assert [e for e in running.events if e.cls == "command" and e.point.startswith("panel_")] == []


def test_panel_every_action_a_body_may_name_needs_a_role_permission() -> None:
    """The actions the body model takes are those the roles table knows: none is allowed or refused by default."""
    assert set(NEEDS) == ACTION_NAMES


async def test_panel_works_with_the_platform_down_and_greys_a_lost_controller(tmp_path: Path) -> None:
    """No broker at all: the panel serves, says the link is down, and the guard's commands are decided locally. A
    controller that stops answering makes its lane stale, with the age of its last data, and a raise is refused."""
    import socket  # noqa: PLC0415

    with socket.create_server(("127.0.0.1", 0)) as s:
        closed_port = s.getsockname()[1]  # nothing listens there once closed: the platform is unreachable
    async with panel_site(tmp_path, f"mqtt://127.0.0.1:{closed_port}") as ps, client(ps) as http:
        csrf = await sign_in(http, "wang")
        snap = await snapshot(http, "en")
        assert snap["link_up"] is False
        async with http.post(
            "/api/action", json={"action": "lower", "lane": "lane-east", "lang": "en"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert await r.json() == {"ok": True, "text": "lane-east: lower done"}
        ps.bollard.faults.silent = True
        lane = (await snapshot(http, "en", lambda s: bool(s["lanes"][0]["stale"])))["lanes"][0]
        assert lane["age_s"] > 1.0  # older than the lane's max_staleness_s
        assert "the controller's data is too old" in lane["reasons"]
        async with http.post(
            "/api/action", json={"action": "raise", "lane": "lane-east", "lang": "en"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            body = await r.json()
        assert body["ok"] is False
        assert "the controller's data is too old" in body["text"]
