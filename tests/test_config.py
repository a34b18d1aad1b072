"""Site configuration: the demo file loads; every error names file, line and key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

import pytest

from gateway.base.errors import ConfigError
from gateway.base.i18n import set_language
from gateway.config import ContactPin, RtuBusConfig, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo-site.toml"

MINIMAL = """\
[site]
id = "s1"

[gateway]
id = "g1"

[mqtt]
urls = ["mqtts://broker.example:8883"]

[[buses]]
id = "rs485-1"
type = "rtu"
port = "/dev/ttyUSB0"

[[devices]]
id = "facp-1"
bus = "rs485-1"
unit = 1
profile = "fire_panel"

[[devices]]
id = "smoke-1"
bus = "rs485-1"
unit = 2
profile = "smoke_detector"
"""


def test_config_demo_site_loads() -> None:
    """The shipped demo campus is valid and complete: a panel, four detectors, a bollard, doors, a relay."""
    cfg = load_config(DEMO)
    assert [d.profile for d in cfg.devices].count("smoke_detector") == 4
    assert {d.profile for d in cfg.devices} == {"fire_panel", "smoke_detector", "bollard_controller"}
    assert {b.type for b in cfg.buses} == {"rtu", "tcp"}
    assert sorted(i.kind for i in cfg.gpio.inputs) == ["door", "door", "fire_relay", "trouble_relay"]
    assert cfg.digest.startswith("sha256:")
    assert isinstance(cfg.buses[0], RtuBusConfig)


def test_config_is_frozen() -> None:
    """Validated configuration cannot be changed behind the validator's back."""
    cfg = parse_config(MINIMAL, "g.toml")
    with pytest.raises(ValueError, match="frozen"):
        cfg.site.id = "other"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("unit = 2", "unit = 248", "g.toml:24: devices[1].unit: Input should be less than or equal to 247"),
        ("unit = 2", "unit = 1", "g.toml:24: devices[1].unit: unit 1 is already used on bus rs485-1"),
        (
            'bus = "rs485-1"\nunit = 2',
            'bus = "rs485-2"\nunit = 2',
            "g.toml:23: devices[1].bus: no bus 'rs485-2'; expected one of ['rs485-1']",
        ),
        ('id = "smoke-1"', 'id = "facp-1"', "g.toml:22: devices[1].id: id 'facp-1' is already used by a device"),
        (
            'profile = "smoke_detector"',
            'profile = "fog_machine"',
            "g.toml:25: devices[1].profile: no device profile named 'fog_machine'",
        ),
        ('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\nspeed = 9600', "g.toml:14: buses[0].speed: unknown key"),
        (
            'port = "/dev/ttyUSB0"',
            'prt = "/dev/ttyUSB0"',
            "g.toml:10: buses[0].port: required key is missing\ng.toml:13: buses[0].prt: unknown key",
        ),
        (
            'urls = ["mqtts://broker.example:8883"]',
            'urls = ["mqtt://broker.example:1883"]',
            "g.toml:7: mqtt: mqtt://broker.example:1883 is plaintext MQTT; use mqtts:// or set allow_plaintext = true",
        ),
        (
            'urls = ["mqtts://broker.example:8883"]',
            'urls = ["http://broker.example"]',
            "g.toml:8: mqtt.urls: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got 'http://broker.example'",
        ),
        ('id = "g1"', 'id = "G 1"', "g.toml:5: gateway.id: String should match pattern '^[a-z0-9][a-z0-9_-]{0,63}$'"),
    ],
)
def test_config_error_names_file_line_key(old: str, new: str, message: str) -> None:
    """Each invalid value is reported as file:line: key: what was expected."""
    assert old in MINIMAL
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL.replace(old, new, 1), "g.toml")
    assert str(err.value) == message


def three_errors() -> str:
    """MINIMAL with a wrong type (a number in quotes), an unknown key and a device id used twice."""
    text = MINIMAL.replace('profile = "fire_panel"', 'profile = "fire_panel"\npoll_interval_s = "1"')
    text = text.replace('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\nspeed = 9600')
    return text.replace('id = "smoke-1"', 'id = "facp-1"')


THREE_ERRORS_EN = (
    "g.toml:14: buses[0].speed: unknown key\n"
    "g.toml:21: devices[0].poll_interval_s: Input should be a valid number, not a string in quotes\n"
    "g.toml:24: devices[1].id: id 'facp-1' is already used by a device"
)
THREE_ERRORS_ZH = (
    "g.toml:14: buses[0].speed: 未知的配置项\n"
    "g.toml:21: devices[0].poll_interval_s: 应为数字, 而不是带引号的字符串\n"
    "g.toml:24: devices[1].id: 编号 'facp-1' 已被设备使用"
)


def test_config_every_error_of_a_file_at_once() -> None:
    """A wrong type, an unknown key and an id used twice are reported together, a line each in the order of the
    file, in English and in Chinese; the first line is the error alone would have said."""
    with pytest.raises(ConfigError) as err:
        parse_config(three_errors(), "g.toml")
    assert (err.value.render("en"), err.value.render("zh-CN")) == (THREE_ERRORS_EN, THREE_ERRORS_ZH)
    assert (err.value.line, err.value.key) == (14, "buses[0].speed")
    assert err.value.args == (THREE_ERRORS_EN,)
    set_language("zh-CN")
    try:
        assert str(err.value) == THREE_ERRORS_ZH
    finally:
        set_language("en")


def test_config_cross_checks_and_files_reported_together_in_file_order(tmp_path: Path) -> None:
    """With valid tables, every cross-check and every file problem is said, ordered by line (a file named on line
    8 before an id on line 22), not cross-checks first."""
    text = MINIMAL.replace("[mqtt]\n", '[mqtt]\nca_file = "ca.pem"\n').replace('id = "smoke-1"', 'id = "facp-1"')
    text = text.replace("unit = 2", "unit = 1")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml", tmp_path)
    assert str(err.value) == (
        f"g.toml:8: mqtt.ca_file: cannot read {tmp_path}/ca.pem: No such file or directory\n"
        "g.toml:23: devices[1].id: id 'facp-1' is already used by a device\n"
        "g.toml:25: devices[1].unit: unit 1 is already used on bus rs485-1"
    )


def test_config_cross_checks_left_out_when_a_required_key_is_wrong() -> None:
    """A required key written wrong leaves its table unknown: the schema errors alone are said, never a
    cross-check about values the installer did not write."""
    text = MINIMAL.replace("unit = 2", 'unit = "2"').replace('id = "smoke-1"', 'id = "facp-1"')
    text = text.replace('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\nspeed = 9600')
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == (
        "g.toml:14: buses[0].speed: unknown key\n"
        "g.toml:25: devices[1].unit: Input should be a valid integer, not a string in quotes"
    )


def test_config_contact_table_error_said_once() -> None:
    """A contact written as a table with a wrong contact is one error, not also "not a pin number" and "not a pin
    name" for the other forms a contact may take."""
    text = MINIMAL + DRY_LANE.replace("limit_up = 20", 'limit_up = { pin = 20, contact = "X" }')
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == "g.toml:36: lanes[0].dry_contact.limit_up.contact: Input should be 'NC' or 'NO'"


TCP_BUS = '\n[[buses]]\nid = "tcp-1"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 1502\n'
SCHEDULE = """
[schedule]
holidays = [2026-10-01]
[[schedule.periods]]
days = ["mon", "tue"]
start = "07:30"
end = "17:30"
"""
DOOR = '\n[[gpio.inputs]]\nid = "door-a"\npin = "GPIO17"\nkind = "door"\n'


def typed_site() -> str:
    """A site with a value of each type family the schema has: integers, numbers, booleans, strings, paths, lists,
    choices, dates, pins and contacts."""
    text = MINIMAL.replace("[mqtt]\n", "[mqtt]\npublish_timeout_s = 5\nallow_plaintext = false\n")
    text = text.replace('id = "g1"\n', 'id = "g1"\nstate_dir = "state"\n')
    text = text.replace('type = "rtu"', 'type = "rtu"\nbaud = 19200\nparity = "E"')
    return text + TCP_BUS + SCHEDULE + DRY_LANE + DOOR


def test_config_types_as_toml_writes_them_are_accepted(tmp_path: Path) -> None:
    """An integer where a number is expected, a path as a string, a list, an unquoted date, a choice as a string, a
    pin as a number or a name: what TOML has for each type still loads."""
    cfg = parse_config(typed_site(), "g.toml", tmp_path)
    assert (cfg.mqtt.publish_timeout_s, type(cfg.mqtt.publish_timeout_s)) == (5.0, float)
    assert cfg.mqtt.urls == ("mqtts://broker.example:8883",)
    assert cfg.gateway.state_dir == tmp_path / "state"
    assert isinstance(cfg.buses[0], RtuBusConfig)
    assert (cfg.buses[0].baud, cfg.buses[0].parity) == (19200, "E")
    assert cfg.buses[1].port == 1502
    assert cfg.schedule is not None
    assert cfg.schedule.holidays == (date(2026, 10, 1),)
    assert cfg.schedule.periods[0].days == ("mon", "tue")
    assert cfg.gpio.inputs[0].pin == "GPIO17"
    dry = cfg.lanes[0].dry_contact
    assert dry is not None
    assert dry.limit_up == 20
    assert dry.photocell == ContactPin(pin=12, contact="NO")


INTEGER = "Input should be a valid integer, not "
PIN = "expected a pin like 17, 'GPIO17', 'BOARD11' or 'J8:11', not "


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("port = 1502", 'port = "1502"', f"g.toml:36: buses[1].port: {INTEGER}a string in quotes"),
        ("port = 1502", "port = 1502.0", f"g.toml:36: buses[1].port: {INTEGER}a number with a decimal point"),
        ("port = 1502", "port = true", f"g.toml:36: buses[1].port: {INTEGER}a boolean"),
        ("unit = 2", "unit = true", f"g.toml:29: devices[1].unit: {INTEGER}a boolean"),
        ('urls = ["mqtts://broker.example:8883"]', 'urls = ["mqtt://broker.example:1883"]',
         "g.toml:8: mqtt: mqtt://broker.example:1883 is plaintext MQTT; use mqtts:// or set allow_plaintext = true"),
        ("allow_plaintext = false", 'allow_plaintext = "yes"',
         "g.toml:10: mqtt.allow_plaintext: Input should be a valid boolean, not a string in quotes"),
        ("allow_plaintext = false", "allow_plaintext = 1",
         "g.toml:10: mqtt.allow_plaintext: Input should be a valid boolean, not an integer"),
        ("allow_plaintext = false", 'allow_plaintext = "true"',
         "g.toml:10: mqtt.allow_plaintext: Input should be a valid boolean, not a string in quotes"),
        ("publish_timeout_s = 5", 'publish_timeout_s = "5"',
         "g.toml:9: mqtt.publish_timeout_s: Input should be a valid number, not a string in quotes"),
        ("publish_timeout_s = 5", "publish_timeout_s = true",
         "g.toml:9: mqtt.publish_timeout_s: Input should be a valid number, not a boolean"),
        ('id = "s1"', "id = 1", "g.toml:2: site.id: Input should be a valid string, not an integer"),
        ('state_dir = "state"', "state_dir = 5",
         "g.toml:6: gateway.state_dir: Input should be a valid path, not an integer"),
        ('state_dir = "state"', "state_dir = false",
         "g.toml:6: gateway.state_dir: Input should be a valid path, not a boolean"),
        ('urls = ["mqtts://broker.example:8883"]', 'urls = "mqtts://broker.example:8883"',
         "g.toml:11: mqtt.urls: Input should be a list, not a string in quotes"),
        ('days = ["mon", "tue"]', 'days = "mon"',
         "g.toml:41: schedule.periods[0].days: Input should be a list, not a string in quotes"),
        ("baud = 19200", "baud = 19200.0", f"g.toml:16: buses[0].baud: {INTEGER}a number with a decimal point"),
        ('type = "rtu"', 'type = "rtu"\nstopbits = true', f"g.toml:16: buses[0].stopbits: {INTEGER}a boolean"),
        ('parity = "E"', "parity = 0", "g.toml:17: buses[0].parity: Input should be 'N', 'E' or 'O'"),
        ("holidays = [2026-10-01]", 'holidays = ["2026-10-01"]',
         "g.toml:39: schedule.holidays[0]: Input should be a valid date (YYYY-MM-DD), not a string in quotes"),
        ('start = "07:30"', "start = 07:30:00",
         "g.toml:42: schedule.periods[0].start: Input should be a valid string, not a time of day"),
        ('pin = "GPIO17"', "pin = true", f"g.toml:61: gpio.inputs[0].pin: {PIN}a boolean"),
        ('pin = "GPIO17"', "pin = 17.0", f"g.toml:61: gpio.inputs[0].pin: {PIN}a number with a decimal point"),
        ("limit_up = 20", "limit_up = true", "g.toml:54: lanes[0].dry_contact.limit_up: expected a pin like 17 or "
         "'GPIO17', or a table with its pin and contact, not a boolean"),
        ("{ pin = 12,", "{ pin = [12],", f"g.toml:57: lanes[0].dry_contact.photocell.pin: {PIN}a list"),
        ('[site]\nid = "s1"', 'site = "s1"', "g.toml:1: site: Input should be a table, not a string in quotes"),
    ],
)  # fmt: skip
def test_config_types_are_strict(old: str, new: str, message: str) -> None:
    """A value of the wrong type is refused at its line, saying the type expected and the one written: no string
    is a number or consents to plaintext, no boolean or number with a decimal point is an integer."""
    text = typed_site()
    assert old in text
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace(old, new, 1), "g.toml")
    assert str(err.value) == message


def test_config_bad_toml_names_line() -> None:
    """A syntax error names the line."""
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL.replace("unit = 1", "unit = = 1"), "g.toml")
    assert str(err.value).startswith("g.toml:18: not valid TOML: ")


def test_config_missing_file_is_named(tmp_path: Path) -> None:
    """A missing file says which file."""
    with pytest.raises(ConfigError, match=r"nothing\.toml: cannot read: No such file or directory"):
        load_config(tmp_path / "nothing.toml")


def test_config_duplicate_gpio_pin() -> None:
    """One pin cannot serve two inputs."""
    text = MINIMAL + (
        '\n[[gpio.inputs]]\nid = "door-a"\npin = 17\nkind = "door"\n'
        '\n[[gpio.inputs]]\nid = "door-b"\npin = 17\nkind = "door"\n'
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == "g.toml:34: gpio.inputs[1].pin: pin 17 is already used by gpio.inputs[0] (door-a)"


def test_config_duplicate_gpio_pin_under_another_name() -> None:
    """GPIO17 and 17 are one pin; the error names both uses."""
    text = MINIMAL + (
        '\n[[gpio.inputs]]\nid = "door-a"\npin = 17\nkind = "door"\n'
        '\n[[gpio.inputs]]\nid = "door-b"\npin = "GPIO17"\nkind = "door"\n'
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == "g.toml:34: gpio.inputs[1].pin: pin GPIO17 is already used by gpio.inputs[0] (door-a)"


def test_config_relative_state_dir_is_taken_from_the_file(tmp_path: Path) -> None:
    """A relative state_dir is relative to the configuration file, not to the working directory."""
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL.replace('id = "g1"', 'id = "g1"\nstate_dir = "state"'))
    assert load_config(path).gateway.state_dir == tmp_path / "state"


def test_config_cli_check_exit_codes(tmp_path: Path) -> None:
    """`campus-edge check-config` exits 0 on a good file and 2 with the error on stderr on a bad one."""
    ok = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(DEMO)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.endswith("ok (2 buses, 6 devices, 4 inputs)\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace("unit = 2", "unit = 0"))
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(bad)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 2
    assert res.stderr == f"campus-edge: {bad}:24: devices[1].unit: Input should be greater than or equal to 1\n"


def test_config_cli_check_prints_every_error(tmp_path: Path) -> None:
    """`campus-edge check-config` prints every error of the file, a line each, and exits 2; in Chinese too."""
    bad = tmp_path / "g.toml"
    bad.write_text(three_errors())
    for lang, said in (("en", THREE_ERRORS_EN), ("zh-CN", THREE_ERRORS_ZH)):
        res = check_config_process(bad, "--lang", lang)
        expected = "".join(f"campus-edge: {tmp_path}/{line}\n" for line in said.splitlines())
        assert (res.returncode, res.stdout, res.stderr) == (2, "", expected)


def test_config_credential_files_are_checked_at_load(tmp_path: Path) -> None:
    """A CA, certificate, key or password file that is missing or empty stops the start, naming line and key."""
    site = tmp_path / "site.toml"
    site.write_text(MINIMAL.replace("[mqtt]\n", '[mqtt]\nca_file = "certs/ca.pem"\n'))
    with pytest.raises(ConfigError) as err:
        load_config(site)
    assert str(err.value) == f"{site}:8: mqtt.ca_file: cannot read {tmp_path}/certs/ca.pem: No such file or directory"
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("")
    with pytest.raises(ConfigError, match=r"site\.toml:8: mqtt\.ca_file: .*ca\.pem is empty"):
        load_config(site)
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_config(site).mqtt.ca_file == tmp_path / "certs" / "ca.pem"  # relative to the file, resolved


def test_config_key_without_certificate(tmp_path: Path) -> None:
    """A client key alone is a mistake, not a silent plain connection."""
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    text = MINIMAL.replace("[mqtt]\n", f'[mqtt]\nkey_file = "{key}"\n')
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == "g.toml:8: mqtt.key_file: a key_file needs its cert_file"


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("40", "expected a BCM GPIO number 0..27, got 40"),
        ('"GPIO 17"', "expected a pin like 17, 'GPIO17', 'BOARD11' or 'J8:11', got 'GPIO 17'"),
    ],
)
def test_config_gpio_pin_must_exist(pin: str, message: str) -> None:
    """A pin the Pi does not have is refused at load, not when the input is claimed."""
    text = MINIMAL + f'\n[[gpio.inputs]]\nid = "door-a"\npin = {pin}\nkind = "door"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == f"g.toml:29: gpio.inputs[0].pin: {message}"


def test_config_lane_needs_a_bollard_controller() -> None:
    """A lane names a device of profile bollard_controller; anything else is refused at its line."""
    text = MINIMAL + '\n[[lanes]]\nid = "lane-east"\ncontroller = "facp-1"\npower_loss = "stay"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert str(err.value) == "g.toml:29: lanes[0].controller: no bollard_controller device 'facp-1'; expected one of []"


def test_config_control_socket_path_too_long() -> None:
    """Unix sockets cannot bind paths over 107 bytes: said at load, not as a restart loop later."""
    long_dir = "/var/lib/" + "x" * 100
    text = MINIMAL.replace('id = "g1"\n', f'id = "g1"\nstate_dir = "{long_dir}"\n') + (
        '\n[[buses]]\nid = "gate"\ntype = "tcp"\nhost = "127.0.0.1"\n'
        '\n[[devices]]\nid = "b1"\nbus = "gate"\nunit = 1\nprofile = "bollard_controller"\n'
        '\n[[lanes]]\nid = "lane-east"\ncontroller = "b1"\npower_loss = "stay"\n'
    )
    with pytest.raises(ConfigError, match=r"g\.toml:6: gateway\.state_dir: control socket path .* is longer than 107"):
        parse_config(text, "g.toml")


DRY_LANE = """
[[lanes]]
id = "lane-west"
power_loss = "stay"
pre_warn_ms = 1500
[lanes.dry_contact]
raise_relay = 5
lower_relay = 6
stop_relay = 13
warning_relay = 19
limit_up = 20
limit_down = 21
loop_a = 16
photocell = { pin = 12, contact = "NO" }
"""


def test_config_dry_contact_lane() -> None:
    """Pins alone take the usual contact (limits NO, safety devices NC); a table says otherwise."""
    cfg = parse_config(MINIMAL + DRY_LANE, "g.toml")
    dry = cfg.lanes[0].dry_contact
    assert dry is not None
    assert dry.relays() == {"raise": 5, "lower": 6, "stop": 13, "warning": 19}
    inputs = {name: (c.pin, c.contact) for name, c in dry.inputs().items()}
    assert inputs == {
        "limit_up": (20, "NO"),
        "limit_down": (21, "NO"),
        "loop_a_occupied": (16, "NC"),
        "photocell_blocked": (12, "NO"),
    }
    assert cfg.lanes[0].pre_warn_ms == 1500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("loop_a = 16", "loop_a = 5"),
            r"g\.toml:\d+: lanes\[0\]\.dry_contact\.loop_a: pin 5 is already used by lanes\[0\]\.dry_contact\.\w+ \(",
        ),
        (("limit_up = 20", "limit_up = 40"), r"lanes\[0\]\.dry_contact\.limit_up: expected a BCM GPIO number 0\.\.27"),
        (('power_loss = "stay"\n', ""), r"lanes\[0\]\.power_loss: .*required|missing"),
        (('power_loss = "stay"', 'power_loss = "down"'), r"lanes\[0\]\.power_loss: .*'stay' or 'auto_lower'"),
        (("pre_warn_ms = 1500", "pre_warn_ms = 500"), r"lanes\[0\]\.pre_warn_ms: .*1000"),
        (("photocell = { pin = 12", "photocell = { pin = 17"), r"gpio\.inputs\[0\]\.pin: pin 17 is already used"),
        (("[lanes.dry_contact]", 'controller = "facp-1"\n[lanes.dry_contact]'), r"lanes\[0\]\.id: a lane needs either"),
    ],
)
def test_config_dry_contact_lane_errors(change: tuple[str, str], message: str) -> None:
    text = MINIMAL + DRY_LANE.replace(*change)
    if "17" in change[1]:
        text += '\n[[gpio.inputs]]\nid = "door-1"\npin = 17\nkind = "door"\n'
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "g.toml")


@pytest.mark.parametrize(
    ("name", "content", "mode", "message"),
    [
        ("key_file", "-----BEGIN PRIVATE KEY-----\n", 0o644, r"mode 0644 lets others read it; expected 0600"),
        ("password_file", "s3cret-for-gw1\n", 0o640, r"mode 0640 lets others read it"),
        ("password_file", "changeme\n", 0o600, r"holds a default password"),
        ("password_file", "", 0o600, r"is empty"),
    ],
)
def test_config_secrets_must_be_private_and_real(
    tmp_path: Path, name: str, content: str, mode: int, message: str
) -> None:
    """The gateway refuses to start on a secret others can read, or an empty or default password."""
    secret = tmp_path / "secret"
    secret.write_text(content)
    secret.chmod(mode)
    extra = f'{name} = "{secret}"\n'
    if name == "key_file":
        extra += f'cert_file = "{__file__}"\n'
    else:
        extra += 'username = "gw1"\n'
    with pytest.raises(ConfigError, match=rf"g\.toml:\d+: mqtt\.{name}: .*{message}"):
        parse_config(MINIMAL.replace("[mqtt]\n", "[mqtt]\n" + extra), "g.toml")


def test_config_a_door_armed_by_a_schedule_that_does_not_exist(tmp_path: Path) -> None:
    """Said explicitly, it is an error at its line; left to the default, the gateway warns at start."""
    door = '\n[[gpio.inputs]]\nid = "door-1"\npin = 17\nkind = "door"\narmed = "schedule"\n'
    with pytest.raises(ConfigError, match=r'g\.toml:\d+: gpio\.inputs\[0\]\.armed: armed = "schedule" needs a'):
        parse_config(MINIMAL + door, "g.toml")
    assert parse_config(MINIMAL + door.replace('armed = "schedule"\n', ""), "g.toml").gpio.inputs[0].armed == "schedule"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('targets = ["lane-9"]\n', r"commands\.keys\[0\]\.targets: no target 'lane-9'"),
        ("", ""),
        ('targets = ["g1"]\n', ""),
    ],
)
def test_config_command_keys(tmp_path: Path, extra: str, message: str) -> None:
    """Keys are Ed25519 public key files; a key limited to targets names ones that exist."""
    from gateway.base.keys import new_keypair  # noqa: PLC0415

    _private, public = new_keypair(tmp_path, "platform-1")
    text = MINIMAL + (
        f'\n[commands]\n[[commands.keys]]\nid = "platform-1"\nissuer = "platform"\npublic_key_file = "{public}"\n'
        f'roles = ["operator"]\n{extra}'
    )
    if message:
        with pytest.raises(ConfigError, match=message):
            parse_config(text, "g.toml")
    else:
        assert parse_config(text, "g.toml").commands is not None


def test_config_command_key_files_are_checked(tmp_path: Path) -> None:
    key = tmp_path / "not-a-key.pub"
    key.write_text("hello\n")
    text = MINIMAL + (
        f'\n[commands]\n[[commands.keys]]\nid = "platform-1"\nissuer = "platform"\npublic_key_file = "{key}"\n'
        'roles = ["operator"]\n[commands.roles]\nguard = ["bollard.efo"]\n'
    )
    with pytest.raises(ConfigError, match=r"commands\.keys\[0\]\.public_key_file: .*not a readable PEM public key"):
        parse_config(text, "g.toml")


GPIO_TWICE = (
    '\n[[gpio.inputs]]\nid = "door-a"\npin = 17\nkind = "door"\n'
    '\n[[gpio.inputs]]\nid = "door-b"\npin = "GPIO17"\nkind = "door"\n'
)


@pytest.mark.parametrize(
    ("old", "new", "english", "chinese"),
    [
        ('port = "/dev/ttyUSB0"', 'prt = "/dev/ttyUSB0"',
         "g.toml:10: buses[0].port: required key is missing\ng.toml:13: buses[0].prt: unknown key",
         "g.toml:10: buses[0].port: 缺少必填项\ng.toml:13: buses[0].prt: 未知的配置项"),
        ('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\nspeed = 9600', "g.toml:14: buses[0].speed: unknown key",
         "g.toml:14: buses[0].speed: 未知的配置项"),
        ('type = "rtu"', 'type = "rtu"\nparity = "X"', "g.toml:13: buses[0].parity: Input should be 'N', 'E' or 'O'",
         "g.toml:13: buses[0].parity: 应为 'N', 'E' 或 'O'"),
        ("unit = 2", "unit = 248", "g.toml:24: devices[1].unit: Input should be less than or equal to 247",
         "g.toml:24: devices[1].unit: 应小于或等于 247"),
        ("unit = 2", 'unit = "two"', "g.toml:24: devices[1].unit: Input should be a valid integer, not a string in "
         "quotes", "g.toml:24: devices[1].unit: 应为整数, 而不是带引号的字符串"),
        ('urls = ["mqtts://broker.example:8883"]', 'urls = ["mqtt://broker.example:1883"]\nallow_plaintext = "yes"',
         "g.toml:9: mqtt.allow_plaintext: Input should be a valid boolean, not a string in quotes",
         "g.toml:9: mqtt.allow_plaintext: 应为布尔值 true 或 false, 而不是带引号的字符串"),
        ("[[buses]]", '[[gpio.inputs]]\nid = "door-a"\npin = true\nkind = "door"\n\n[[buses]]',
         "g.toml:12: gpio.inputs[0].pin: expected a pin like 17, 'GPIO17', 'BOARD11' or 'J8:11', not a boolean",
         "g.toml:12: gpio.inputs[0].pin: 需要引脚编号, 例如 17, 'GPIO17', 'BOARD11' 或 'J8:11', 而不是布尔值"),
        ('id = "g1"', 'id = "G 1"', "g.toml:5: gateway.id: String should match pattern '^[a-z0-9][a-z0-9_-]{0,63}$'",
         "g.toml:5: gateway.id: 字符串应符合格式 '^[a-z0-9][a-z0-9_-]{0,63}$'"),
        ('type = "rtu"', 'type = "rs232"', "g.toml:12: buses[0].type: Input should be one of 'rtu', 'tcp', not 'rs232'",
         "g.toml:12: buses[0].type: 应为 'rtu', 'tcp' 之一, 实际为 'rs232'"),
        ('profile = "smoke_detector"', 'profile = "fog_machine"',
         "g.toml:25: devices[1].profile: no device profile named 'fog_machine'",
         "g.toml:25: devices[1].profile: 没有名为 'fog_machine' 的设备型号文件 (profile)"),
        ("unit = 1", "unit = = 1", "g.toml:18: not valid TOML: Invalid value (at line 18, column 8)",
         "g.toml:18: 不是有效的 TOML: Invalid value (at line 18, column 8)"),
        ("[[buses]]", GPIO_TWICE + "\n[[buses]]",
         "g.toml:18: gpio.inputs[1].pin: pin GPIO17 is already used by gpio.inputs[0] (door-a)",
         "g.toml:18: gpio.inputs[1].pin: 引脚 GPIO17 已被 gpio.inputs[0] (door-a) 使用"),
        ('id = "smoke-1"', 'id = "facp-1"', "g.toml:22: devices[1].id: id 'facp-1' is already used by a device",
         "g.toml:22: devices[1].id: 编号 'facp-1' 已被设备使用"),
    ],
)  # fmt: skip
def test_config_error_in_the_installers_language(old: str, new: str, english: str, chinese: str) -> None:
    """The same error in either language: file, line and key as written, the problem translated; str() follows
    the active language, English unless a command set another."""
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL.replace(old, new, 1), "g.toml")
    assert (err.value.render("en"), err.value.render("zh-CN")) == (english, chinese)
    assert str(err.value) == english
    set_language("zh-CN")
    try:
        assert str(err.value) == chinese
        assert err.value.args == (english,)  # what a traceback or a log shows
    finally:
        set_language("en")


def test_config_secret_others_can_read_in_chinese(tmp_path: Path) -> None:
    """The key file's own error (KeyFileError) inside the configuration error is translated too."""
    secret = tmp_path / "client.key"
    secret.write_text("-----BEGIN PRIVATE KEY-----\n")
    secret.chmod(0o644)
    extra = f'key_file = "{secret}"\ncert_file = "{__file__}"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL.replace("[mqtt]\n", "[mqtt]\n" + extra), "g.toml")
    assert err.value.render("en") == (
        f"g.toml:8: mqtt.key_file: {secret}: mode 0644 lets others read it; expected 0600 (chmod 600 {secret})"
    )
    assert err.value.render("zh-CN") == (
        f"g.toml:8: mqtt.key_file: {secret}: 权限为 0644, 其他用户可以读取; 应为 0600 (请执行 chmod 600 {secret})"
    )


def test_config_unreadable_file_reason_in_chinese(tmp_path: Path) -> None:
    """The operating system's reason is translated for the usual ones, and stays the C library's English in
    English."""
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nothing.toml")
    assert err.value.render("en") == f"{tmp_path}/nothing.toml: cannot read: No such file or directory"
    assert err.value.render("zh-CN") == f"{tmp_path}/nothing.toml: 无法读取: 文件或目录不存在"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("unit = 2", "unit = 0"),
        ("unit = 2", "unit = 248"),
        ("unit = 2", 'unit = "two"'),
        ("unit = 2", "unit = 2.5"),
        ('id = "g1"', 'id = "G 1"'),
        ('type = "rtu"', 'type = "rtu"\nparity = "X"'),
        ('type = "rtu"', 'type = "rtu"\nbaud = 1234'),
        ('type = "rtu"', 'type = "rtu"\nstopbits = 3'),
        ("[mqtt]\n", "[mqtt]\nallow_plaintext = 3\n"),
        ("[mqtt]\n", "[mqtt]\npublish_timeout_s = 0\n"),
        ("[mqtt]\n", "[mqtt]\nkeepalive_s = 1.5\n"),
        ("[mqtt]\n", '[mqtt]\nusername = ["a"]\n'),
    ],
)
def test_config_pydantic_wording_kept_in_english(old: str, new: str) -> None:
    """Where the catalogue keeps pydantic's words, the English is pydantic's own, limits and choices filled in
    from the error (and, for a wrong type, what was written instead): a template whose fields do not match
    pydantic's would show here."""
    from pydantic import ValidationError  # noqa: PLC0415

    from gateway.config import Config  # noqa: PLC0415

    text = MINIMAL.replace(old, new, 1)
    with pytest.raises(ValidationError) as raw:
        Config.model_validate(tomllib.loads(text))
    with pytest.raises(ConfigError) as err:
        parse_config(text, "g.toml")
    assert re.search(": " + re.escape(raw.value.errors()[0]["msg"]) + "(, not [a-z ]+)?$", err.value.render("en"))
    assert err.value.render("zh-CN") != err.value.render("en")


def check_config_process(path: Path, *args: str, lang: str = "zh_CN.UTF-8") -> subprocess.CompletedProcess[str]:
    """`campus-edge check-config`, as an installer on a Chinese system runs it."""
    env = {**os.environ, "LANG": lang, "LC_ALL": "", "LC_MESSAGES": ""}
    argv = [sys.executable, "-m", "gateway.cli", "check-config", str(path), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=env)


def test_config_cli_check_in_chinese_from_the_locale_or_lang(tmp_path: Path) -> None:
    """LANG=zh_CN: the answer and the error in Chinese, the key as written; --lang says otherwise."""
    ok = check_config_process(DEMO)
    assert (ok.returncode, ok.stdout) == (0, f"{DEMO}: 正确 (2 条总线, 6 个设备, 4 个输入)\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\nspeed = 9600'))
    res = check_config_process(bad)
    assert (res.returncode, res.stderr) == (2, f"campus-edge: {bad}:14: buses[0].speed: 未知的配置项\n")
    res = check_config_process(bad, "--lang", "en")
    assert (res.returncode, res.stderr) == (2, f"campus-edge: {bad}:14: buses[0].speed: unknown key\n")
    res = check_config_process(bad, "--lang", "zh-CN", lang="C.UTF-8")
    assert res.stderr == f"campus-edge: {bad}:14: buses[0].speed: 未知的配置项\n"
    bad.write_text(MINIMAL.replace('type = "rtu"', 'type = "rtu"\nbaud = 1234'))
    res = check_config_process(bad)
    assert res.stderr == (
        f"campus-edge: {bad}:13: buses[0].baud: 应为 2400, 4800, 9600, 19200, 38400, 57600 或 115200\n"
    )


def test_config_error_of_the_running_gateway_stays_english(tmp_path: Path) -> None:
    """`campus-edge run` on a Chinese system: the service's log (its stderr) stays English."""
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace("unit = 2", "unit = 0"))
    env = {**os.environ, "LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    res = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(bad)], capture_output=True,
                         text=True, check=False, env=env)  # fmt: skip
    assert (res.returncode, res.stderr) == (
        2,
        f"campus-edge: {bad}:24: devices[1].unit: Input should be greater than or equal to 1\n",
    )


def test_config_site_language_sets_the_command_lines_language(tmp_path: Path) -> None:
    """`[site] language`: the gateway's command lines answer in it on a machine whose locale says otherwise;
    `--lang` still wins; a broken or absent value falls back to the locale."""
    from gateway.config import configured_language  # noqa: PLC0415

    chinese = tmp_path / "zh.toml"
    chinese.write_text(MINIMAL.replace('id = "s1"', 'id = "s1"\nlanguage = "zh-CN"'), encoding="utf-8")
    assert configured_language(chinese) == "zh-CN"
    assert load_config(chinese).site.language == "zh-CN"
    ok = check_config_process(chinese, lang="C.UTF-8")
    assert (ok.returncode, ok.stdout) == (0, f"{chinese}: 正确 (1 条总线, 2 个设备, 0 个输入)\n")
    assert check_config_process(chinese, "--lang", "en", lang="C.UTF-8").stdout.startswith(f"{chinese}: ok (")
    assert configured_language(tmp_path / "absent.toml") is None
    klingon = tmp_path / "tlh.toml"
    klingon.write_text(MINIMAL.replace('id = "s1"', 'id = "s1"\nlanguage = "tlh"'), encoding="utf-8")
    assert configured_language(klingon) is None
    res = check_config_process(klingon, lang="C.UTF-8")
    assert res.returncode == 2
    assert "site.language" in res.stderr
