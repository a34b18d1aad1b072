"""`campus-edge check`: each commissioning check passing and failing, against real parts: a configuration file,
pseudo-terminals for serial ports, private mosquittos (plaintext, TLS with trustme certificates, passwords), the
state directory's disk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.base.i18n import set_language
from gateway.cli.check.checks import (
    Check,
    Verdict,
    check_broker,
    check_bus_load,
    check_clock,
    check_pin_factory,
    check_serial_ports,
    check_state_dir,
    passed,
    run_checks,
)
from gateway.config import Config, parse_config
from simulators.broker import PrivateBroker, free_port
from simulators.pty import PtyPair
from tests.gateway_harness import config_text
from tests.test_uplink import tls_files


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    set_language("en")
    yield
    set_language("en")


def write_config(tmp_path: Path, url: str, port: str = "/dev/null", mqtt_extra: str = "", **kw: Any) -> Path:
    """A site with one RS-485 line of two detectors on `port`, two doors, and its state in tmp_path/state."""
    text = config_text(
        kw.get("state_dir", tmp_path / "state"),
        url,
        [{"id": "rs485-1", "type": "rtu", "port": port, "baud": 9600}],
        [
            {"id": "smoke-1", "bus": "rs485-1", "unit": 1, "profile": "smoke_detector", "poll_interval_s": 1.0},
            {"id": "smoke-2", "bus": "rs485-1", "unit": 2, "profile": "smoke_detector", "poll_interval_s": 1.0},
        ],
        [
            {"id": "door-a", "pin": 17, "kind": "door", "armed": "always"},
            {"id": "door-b", "pin": kw.get("second_pin", 27), "kind": "door", "armed": "always"},
        ],
        mqtt_extra=mqtt_extra,
    ) + kw.get("extra", "")
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def verdicts(checks: list[Check]) -> list[tuple[str, Verdict]]:
    return [(c.name, c.verdict) for c in checks]


async def test_check_passes_on_a_ready_site(tmp_path: Path, broker: PrivateBroker) -> None:
    """Every check passes: the file loads, the port opens at 9600 8N1, no pin twice, the line has room, the broker
    takes a connection, the clock is synchronised, the state directory is writable with room for the outbox."""
    async with PtyPair(tmp_path / "gw-end", tmp_path / "dev-end") as pair:
        path = write_config(tmp_path, broker.url, port=str(pair.gateway_end))
        checks = await run_checks(path, synced=lambda: True)
    assert verdicts(checks) == [
        ("configuration", Verdict.PASS),
        ("serial port", Verdict.PASS),
        ("GPIO pins", Verdict.PASS),
        ("pin factory", Verdict.PASS),
        ("RS-485 load", Verdict.PASS),
        ("broker", Verdict.PASS),
        ("clock", Verdict.PASS),
        ("state directory", Verdict.PASS),
        ("outbox disk space", Verdict.PASS),
    ]
    whys = [c.why for c in checks]
    assert whys[0] == f"{path}: 1 buses, 2 devices, 2 GPIO inputs, 0 lanes"
    assert whys[1] == f"bus rs485-1: {pair.gateway_end} opens at 9600 8N1"
    assert whys[2] == "2 pins, none used twice"
    assert whys[3] == 'mock: simulated pins (pin_factory = "mock")'
    assert whys[5] == f"{broker.url}: connected (plaintext)"
    assert whys[7] == f"{tmp_path / 'state'} does not exist yet; the gateway can create it"
    assert passed(checks)


async def test_check_config_error_names_both_uses_of_a_pin(tmp_path: Path) -> None:
    """A pin wired twice is the configuration error, with the file, the line and both uses; nothing else is
    checked on a file the gateway would not start with."""
    path = write_config(tmp_path, "mqtt://127.0.0.1:1", second_pin="GPIO17")
    checks = await run_checks(path, synced=lambda: True)
    assert verdicts(checks) == [("configuration", Verdict.FAIL)]
    assert checks[0].why == f"{path}:45: gpio.inputs[1].pin: pin GPIO17 is already used by gpio.inputs[0] (door-a)"
    assert not passed(checks)


def test_check_serial_port_missing_or_not_a_serial_device(tmp_path: Path) -> None:
    """A port that does not exist fails naming the bus and the path; one that is not a serial device fails with
    the reason it cannot be opened."""
    missing = tmp_path / "ttyUSB7"
    cfg = parse_config(write_config(tmp_path, "mqtt://127.0.0.1:1", port=str(missing)).read_text(), "g.toml")
    [check] = check_serial_ports(cfg)
    assert check.verdict is Verdict.FAIL
    assert check.why == f"bus rs485-1: {missing} does not exist (is the RS-485 adapter plugged in?)"
    cfg = parse_config(write_config(tmp_path, "mqtt://127.0.0.1:1", port="/dev/null").read_text(), "g.toml")
    [check] = check_serial_ports(cfg)
    assert check.verdict is Verdict.FAIL
    assert check.why.startswith("bus rs485-1: cannot open /dev/null at 9600 8N1: ")


def _detectors(count: int, interval_s: float) -> str:
    return "".join(
        f'\n[[devices]]\nid = "extra-{i}"\nbus = "rs485-1"\nunit = {10 + i}\nprofile = "smoke_detector"\n'
        f"poll_interval_s = {interval_s}\n"
        for i in range(count)
    )


@pytest.mark.parametrize(
    ("interval_s", "verdict", "says"),
    [
        (1.0, Verdict.PASS, "bus rs485-1: polling needs 26% of the line (4 devices at 9600 baud)"),
        (0.18, Verdict.WARN, "bus rs485-1: near the limit, polling needs 84% of the line (heaviest: extra-0 64 ms "
                             "every 0.18 s"),
        (0.1, Verdict.FAIL, "bus rs485-1: bus overloaded, polling needs 140% of the line (heaviest: extra-0 64 ms "
                            "every 0.1 s, extra-1 64 ms every 0.1 s, smoke-1 64 ms every 1 s)"),
    ],
)  # fmt: skip
def test_check_bus_load(tmp_path: Path, interval_s: float, verdict: Verdict, says: str) -> None:
    """Two more detectors every `interval_s` beside two every second: the estimate of gateway/bus_load, a WARN
    above 80 %, a FAIL above 100 % naming the heaviest devices."""
    text = write_config(tmp_path, "mqtt://127.0.0.1:1", extra=_detectors(2, interval_s)).read_text()
    [check] = check_bus_load(parse_config(text, "g.toml"))
    assert check.verdict is verdict
    assert check.why.startswith(says)


@contextlib.contextmanager
def tls_broker(tmp_path: Path, passwords: dict[str, str] | None = None) -> Iterator[tuple[PrivateBroker, Path]]:
    """A mosquitto speaking TLS only, with a certificate from a CA made for the test, and its CA file."""
    ca = trustme.CA()
    ca_file, chain, key = tls_files(tmp_path, ca, "broker")
    with PrivateBroker(tmp_path / "tls", tls=(ca_file, chain, key), passwords=passwords) as b:
        yield b, ca_file


def _password_file(tmp_path: Path, secret: str) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


async def test_check_broker_plaintext_and_tls(tmp_path: Path, broker: PrivateBroker) -> None:
    """Plaintext where the config allows it, TLS with the config's CA file, user and password: both connect. The
    same TLS broker with the system's CAs only: the certificate cannot be verified, a FAIL saying so."""
    [plain] = await check_broker(parse_config(write_config(tmp_path, broker.url).read_text(), "g.toml"))
    assert (plain.verdict, plain.why) == (Verdict.PASS, f"{broker.url}: connected (plaintext)")
    with tls_broker(tmp_path, {"gw-1": "s3cret-for-gw-1"}) as (tls, ca_file):
        secret = _password_file(tmp_path, "s3cret-for-gw-1")
        extra = f'ca_file = "{ca_file}"\nusername = "gw-1"\npassword_file = "{secret}"\n'
        cfg = parse_config(write_config(tmp_path, tls.url, mqtt_extra=extra).read_text(), "g.toml")
        [ok] = await check_broker(cfg)
        assert (ok.verdict, ok.why) == (Verdict.PASS, f"{tls.url}: connected (TLS, user gw-1)")
        extra = f'username = "gw-1"\npassword_file = "{secret}"\n'
        cfg = parse_config(write_config(tmp_path, tls.url, mqtt_extra=extra).read_text(), "g.toml")
        [bad] = await check_broker(cfg, timeout_s=5)
    assert bad.verdict is Verdict.FAIL
    assert bad.why.startswith(f"{tls.url}: cannot connect: ")
    assert "certificate verify failed" in bad.why


async def test_check_broker_wrong_password_fails_naming_url_and_reason(tmp_path: Path) -> None:
    """A wrong password is refused by the broker: FAIL, with the broker's URL and its reason."""
    with tls_broker(tmp_path, {"gw-1": "the-right-one"}) as (tls, ca_file):
        secret = _password_file(tmp_path, "not-the-right-one")
        extra = f'ca_file = "{ca_file}"\nusername = "gw-1"\npassword_file = "{secret}"\n'
        cfg = parse_config(write_config(tmp_path, tls.url, mqtt_extra=extra).read_text(), "g.toml")
        [check] = await check_broker(cfg)
    assert check.verdict is Verdict.FAIL
    assert check.why.startswith(f"{tls.url}: cannot connect: ")
    assert "Not authorized" in check.why or "Bad user name or password" in check.why


async def test_check_broker_failover_url_down_is_a_warning(tmp_path: Path, broker: PrivateBroker) -> None:
    """One broker URL down while another answers: the gateway fails over, so a WARN; all down, a FAIL."""
    down = f"mqtt://127.0.0.1:{free_port()}"
    text = write_config(tmp_path, broker.url).read_text().replace(f'urls = ["{broker.url}"]',
                                                                  f'urls = ["{broker.url}", "{down}"]')  # fmt: skip
    checks = await check_broker(parse_config(text, "g.toml"), timeout_s=3)
    assert [c.verdict for c in checks] == [Verdict.PASS, Verdict.WARN]
    assert checks[1].why.startswith(f"{down}: cannot connect: ")
    text = write_config(tmp_path, down).read_text()
    [check] = await check_broker(parse_config(text, "g.toml"), timeout_s=3)
    assert check.verdict is Verdict.FAIL


PI_4 = "Raspberry Pi 4 Model B Rev 1.4"


def pin_site(tmp_path: Path, factory: str = "default", inputs: bool = True) -> Config:
    """The check's site with its two doors on GPIO (or none), its pins from `factory`."""
    text = write_config(tmp_path, "mqtt://127.0.0.1:1").read_text().replace('pin_factory = "mock"',
                                                                           f'pin_factory = "{factory}"')  # fmt: skip
    cfg = parse_config(text, "g.toml")
    return cfg if inputs else cfg.model_copy(update={"gpio": cfg.gpio.model_copy(update={"inputs": ()})})


def model_file(tmp_path: Path, model: str) -> list[Path]:
    """A device tree's model file as Linux gives it (NUL-terminated), and a second place that does not exist."""
    path = tmp_path / "model"
    path.write_bytes(model.encode() + b"\0")
    return [tmp_path / "no-such-model", path]


@pytest.fixture
def empty_lgpio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lgpio 0.0.0.2 as pip installs it where no lgpio 0.2 wheel fits (Python 3.13): an empty lgpio.py."""
    lib = tmp_path / "site-packages"
    lib.mkdir()
    (lib / "lgpio.py").write_text("")
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.delitem(sys.modules, "lgpio", raising=False)


def test_check_pin_factory_fails_on_a_pi_with_only_mock_pins(tmp_path: Path) -> None:
    """On a Raspberry Pi whose doors are on GPIO, no pin library (none on this machine) leaves only gpiozero's mock
    pins: FAIL, naming the board and the way out."""
    check = check_pin_factory(pin_site(tmp_path), model_file(tmp_path, PI_4))
    assert check.verdict is Verdict.FAIL
    assert check.why == (
        f"{PI_4}: no library for real pins (lgpio, RPi.GPIO or pigpio), only gpiozero's mock pins: the GPIO inputs "
        "and relays cannot work (install lgpio, see the installer guide)"
    )


def test_check_pin_factory_fails_on_a_pi_with_an_empty_lgpio(tmp_path: Path, empty_lgpio: None) -> None:
    """lgpio 0.0.0.2's empty module is no pin library: FAIL, saying which lgpio it is."""
    check = check_pin_factory(pin_site(tmp_path), model_file(tmp_path, PI_4))
    assert check.verdict is Verdict.FAIL
    assert check.why == (
        f"{PI_4}: lgpio is installed but empty (lgpio 0.0.0.2, which pip takes where no lgpio 0.2 fits, as on Python "
        "3.13), so only gpiozero's mock pins are left: the GPIO inputs and relays cannot work (see the installer "
        "guide)"
    )


@pytest.mark.parametrize(
    ("factory", "inputs", "model", "verdict", "why"),
    [
        ("mock", True, "", Verdict.PASS, 'mock: simulated pins (pin_factory = "mock")'),
        ("mock", True, "Generic DT based system", Verdict.PASS, 'mock: simulated pins (pin_factory = "mock")'),
        ("mock", True, PI_4, Verdict.WARN,
         f'mock: simulated pins (pin_factory = "mock") on this {PI_4}: nothing wired to the pins is read or driven'),
        ("mock", False, PI_4, Verdict.PASS, 'mock: simulated pins (pin_factory = "mock")'),
        ("default", False, PI_4, Verdict.PASS, "none needed: no GPIO inputs and no dry-contact lanes"),
        ("default", True, "", Verdict.WARN,
         'none: not a Raspberry Pi, and no library for real pins; the GPIO inputs and relays need pin_factory = '
         '"mock" here'),
    ],
    ids=["mock", "mock-other-board", "mock-on-a-pi", "mock-unused-on-a-pi", "no-gpio-on-a-pi", "not-a-pi"],
)  # fmt: skip
def test_check_pin_factory_names_the_factory(
    tmp_path: Path, factory: str, inputs: bool, model: str, verdict: Verdict, why: str
) -> None:
    """Everywhere else the line names the factory the pins will get; mock pins on a Pi that uses them is a WARN."""
    files = model_file(tmp_path, model) if model else [tmp_path / "no-such-model"]
    check = check_pin_factory(pin_site(tmp_path, factory, inputs), files)
    assert (check.name, check.verdict, check.why) == ("pin factory", verdict, why)


def test_check_pin_factory_passes_on_a_pi_with_lgpio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An lgpio that has its API (a stand-in here: this machine has no gpiochip) is what the default factory loads
    first: PASS, naming it and the board."""
    lib = tmp_path / "site-packages"
    lib.mkdir()
    (lib / "lgpio.py").write_text("def gpiochip_open(chip: int) -> int:\n    return chip\n")
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.delitem(sys.modules, "lgpio", raising=False)
    check = check_pin_factory(pin_site(tmp_path), model_file(tmp_path, PI_4))
    assert (check.verdict, check.why) == (Verdict.PASS, f"lgpio: real pins on this {PI_4}")
    check = check_pin_factory(pin_site(tmp_path), [tmp_path / "no-such-model"])
    assert (check.verdict, check.why) == (Verdict.PASS, "lgpio: real pins")


def test_check_clock() -> None:
    """Synchronised: PASS; not: WARN saying what is suspended. The kernel's own flag gives one or the other."""
    assert check_clock(lambda: True) == Check("clock", Verdict.PASS, "synchronised")
    unsynced = check_clock(lambda: False)
    assert unsynced.verdict is Verdict.WARN
    assert unsynced.why.startswith("not synchronised: the closed-campus schedule, the hazard reports and signed")
    assert check_clock().verdict in (Verdict.PASS, Verdict.WARN)


def test_check_state_dir(tmp_path: Path) -> None:
    """An existing directory is writable; a state_dir that is a file fails; an outbox bigger than the free disk
    fails, one bigger than its share of it warns."""
    state = tmp_path / "state"
    state.mkdir()
    cfg = parse_config(write_config(tmp_path, "mqtt://127.0.0.1:1", state_dir=state).read_text(), "g.toml")
    writable, space = check_state_dir(cfg)
    assert (writable.verdict, writable.why) == (Verdict.PASS, f"{state} is writable")
    assert space.verdict is Verdict.PASS
    not_dir = tmp_path / "a-file"
    not_dir.write_text("")
    cfg = parse_config(write_config(tmp_path, "mqtt://127.0.0.1:1", state_dir=not_dir).read_text(), "g.toml")
    assert check_state_dir(cfg) == [Check("state directory", Verdict.FAIL, f"{not_dir}: {not_dir} is not a directory")]
    st = os.statvfs(state)
    free = st.f_bavail * st.f_frsize
    for max_bytes, verdict in ((10**15, Verdict.FAIL), (int(free * 0.75), Verdict.WARN)):
        extra = f"\n[outbox]\nmax_bytes = {max_bytes}\n"
        cfg = parse_config(write_config(tmp_path, "mqtt://127.0.0.1:1", state_dir=state, extra=extra).read_text(),
                           "g.toml")  # fmt: skip
        _writable, space = check_state_dir(cfg)
        assert space.verdict is verdict, space.why
    assert "it cannot fit" not in space.why
    assert "the outbox will keep to 50% of it" in space.why


async def cli(*args: str) -> tuple[int, str]:
    """`campus-edge ...` in a process of its own, as an installer runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_check_command_exit_codes_and_languages(tmp_path: Path, broker: PrivateBroker) -> None:
    """Exit 0 with no FAIL, 1 with one (a missing serial port), a line per check; the same in zh-CN; check-config
    still validates alone."""
    async with PtyPair(tmp_path / "gw-end", tmp_path / "dev-end") as pair:
        path = write_config(tmp_path, broker.url, port=str(pair.gateway_end))
        code, out = await cli("check", "--config", str(path), "--lang", "en")
        assert code == 0, out
        assert f"PASS  serial port: bus rs485-1: {pair.gateway_end} opens at 9600 8N1" in out
        assert out.rstrip().splitlines()[-1].startswith("0 failed, ")
    code, out = await cli("check", "--config", str(path), "--lang", "en")
    assert code == 1
    assert f"FAIL  serial port: bus rs485-1: {pair.gateway_end} does not exist" in out
    code, out = await cli("check", "--config", str(path), "--lang", "zh-CN")
    assert code == 1
    assert f"失败    串口: 总线 rs485-1: {pair.gateway_end} 不存在" in out
    assert "1 项失败" in out
    code, out = await cli("check-config", str(path))
    assert code == 0
    assert out.startswith(f"{path}: ok (1 buses, 2 devices, 2 inputs)")


@pytest.mark.parametrize(("env_lang", "args"), [("zh_CN.UTF-8", ()), ("C.UTF-8", ("--lang", "zh-CN"))])
def test_check_config_error_in_chinese(tmp_path: Path, env_lang: str, args: tuple[str, ...]) -> None:
    """An installer on a Chinese system (or with --lang zh-CN) reads the configuration's FAIL line in Chinese, the
    file, line and key as written; --lang en overrides the locale."""
    path = write_config(tmp_path, "mqtt://127.0.0.1:1", second_pin="GPIO17")
    env = {**os.environ, "LANG": env_lang, "LC_ALL": "", "LC_MESSAGES": ""}
    argv = [sys.executable, "-m", "gateway.cli", "check", "--config", str(path)]
    res = subprocess.run([*argv, *args], capture_output=True, text=True, check=False, env=env)
    assert res.returncode == 1, res.stderr
    assert res.stdout == (
        f"失败    配置: {path}:45: gpio.inputs[1].pin: 引脚 GPIO17 已被 gpio.inputs[0] (door-a) 使用\n"
        "1 项失败, 0 项警告, 0 项通过\n"
    )
    res = subprocess.run([*argv, "--lang", "en"], capture_output=True, text=True, check=False, env=env)
    assert res.stdout.splitlines()[0] == (
        f"FAIL  configuration: {path}:45: gpio.inputs[1].pin: pin GPIO17 is already used by gpio.inputs[0] (door-a)"
    )


def test_check_report_indents_every_error_of_a_configuration_under_its_line() -> None:
    """A configuration with several errors: each of its lines stands under the FAIL line, indented, not at the
    margin where it would read as a check of its own."""
    from gateway.cli.check.command import render  # noqa: PLC0415

    why = "site.toml:3: mqtt.port: expected an integer\nsite.toml:9: devices[0].id: 'a' is already used"
    report = render([Check("configuration", Verdict.FAIL, why)])
    assert report.splitlines()[:2] == [
        "FAIL  configuration: site.toml:3: mqtt.port: expected an integer",
        "      site.toml:9: devices[0].id: 'a' is already used",
    ]
