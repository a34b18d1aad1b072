"""The site configuration `campus-edge init` writes: the answers as TOML, each section explained in the installer's
language, and commented examples (buses, devices, doors, lanes, signed commands) to fill in by hand or with
`campus-edge scan`.

Prose comments start with "# "; an example line starts with "#" and no space, so removing that one "#" makes it
configuration (the examples are valid together: a test removes every one and loads the result).
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

from gateway.base.i18n import _, language
from gateway.cli.init.answers import SiteAnswers
from gateway.cli.init.tls_request import CA_NAME, CERT_NAME, KEY_NAME, REQUEST_NAME

TLS_DIR = "tls"
COMMAND_KEYS_DIR = "command-keys"
PASSWORD_NAME = "mqtt-password"  # noqa: S105 (a file name, not a password)
RS485_BUS = "rs485-1"
WIDTH = 118  # columns of the written file


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest (Chinese) as is."""
    out = []
    for c in value:
        if c in ('"', "\\"):
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _width(c: str) -> int:
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` columns (a Chinese character takes two), broken at a space or next to a Chinese
    character (Chinese has no spaces), never before closing punctuation."""
    lines: list[str] = []
    line = ""
    for c in text:
        line += c
        if sum(_width(x) for x in line) > width:
            cut = _cut(line)
            lines.append(line[:cut].rstrip())
            line = line[cut:].lstrip(" ")
    if line or not lines:
        lines.append(line)
    return lines


_NO_LINE_START = frozenset("，。；：、）！？”,.;:)!?")  # noqa: RUF001 (Chinese punctuation, on purpose)


def _cut(line: str) -> int:
    """Where to break an overlong line: the last place a line may end."""
    for i in range(len(line) - 1, 0, -1):
        c = line[i]
        if c == " " or ((_width(c) == 2 or _width(line[i - 1]) == 2) and c not in _NO_LINE_START):
            return i
    return len(line) - 1


def _strings(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        """A comment for people, wrapped to the file's width."""
        self.lines += [f"# {line}".rstrip() for line in wrap(text, WIDTH - 2)]

    def add(self, *lines: str) -> None:
        self.lines += lines

    def example(self, *lines: str) -> None:
        """Configuration left commented out: becomes active when its "#" is removed."""
        self.lines += [f"#{line}" for line in lines]

    def gap(self) -> None:
        self.lines.append("")


def render(answers: SiteAnswers, config_path: str, ca_file: str | None, password_file: str | None) -> str:
    """The configuration file's text. `ca_file` and `password_file` are as the file should name them (relative to
    the configuration's folder when they are inside it)."""
    a = answers
    t = _Lines()
    t.note(_("campus-edge: the configuration of site {site}, gateway {gateway}.", site=a.site_id, gateway=a.gateway_id))
    t.note(
        _(
            "Written by campus-edge init. After each change, check it with: campus-edge check-config {path}",
            path=config_path,
        )
    )
    t.note(
        _('Lines starting with "# " explain; a line starting with "#" alone is an example: remove the "#" to use it.')
    )
    t.note(_("Relative paths are taken from the folder of this file."))
    t.gap()
    t.note(
        _(
            "The site: the campus, or the part of it, that this gateway serves. The site id is in every MQTT topic: "
            "do not change it once the platform knows it."
        )
    )
    t.add(
        "[site]",
        f"id = {toml_string(a.site_id)}",
        f"name = {toml_string(a.site_name)}",
        f"language = {toml_string(language())}  # "
        + _("of the commands run on the gateway (guards, installers); --lang overrides it"),
    )
    t.gap()
    t.note(
        _(
            "This gateway: its id is unique within the site. The state dir holds the local store (outbox): alarms "
            "and readings wait there while the network is down, so it must be on persistent storage."
        )
    )
    t.add("[gateway]", f"id = {toml_string(a.gateway_id)}", f"state_dir = {toml_string(str(a.state_dir))}")
    t.gap()
    _mqtt(t, a, ca_file, password_file)
    t.gap()
    _buses(t, a)
    t.gap()
    _examples(t)
    t.gap()
    _schedule(t, a)
    t.gap()
    t.note(_("Hazard-check reports (daily at 07:00, weekly, monthly) follow this time zone."))
    t.add("[reports]", f"timezone = {toml_string(a.timezone)}")
    t.gap()
    _commands(t)
    return "\n".join(t.lines) + "\n"


def _mqtt(t: _Lines, a: SiteAnswers, ca_file: str | None, password_file: str | None) -> None:
    t.note(
        _("The link to the platform's broker, over TLS (mqtts://). With several URLs, the gateway tries them in turn.")
    )
    t.add("[mqtt]", f"urls = {_strings(a.broker_urls)}")
    if a.allow_plaintext:
        t.note(_("Plaintext MQTT (mqtt://) is allowed: for a test bench only, never on a school's network."))
        t.add("allow_plaintext = true")
    if ca_file is not None:
        t.note(_("The broker's CA certificate: the broker's own certificate is checked against it."))
        t.add(f"ca_file = {toml_string(ca_file)}")
    else:
        t.note(_("Without ca_file, the broker's certificate is checked against the system's trusted CAs."))
        t.example(f'ca_file = "{TLS_DIR}/{CA_NAME}"')
    if a.auth == "cert":
        t.note(
            _(
                "This gateway's certificate and private key (mutual TLS). The key was made on this gateway and never "
                "leaves it (mode 0600). The platform signs {request} and returns the certificate: put it at {cert}. "
                "Until it is there, the gateway does not start (check-config names the missing file).",
                request=f"{TLS_DIR}/{REQUEST_NAME}",
                cert=f"{TLS_DIR}/{CERT_NAME}",
            )
        )
        t.add(f'cert_file = "{TLS_DIR}/{CERT_NAME}"', f'key_file = "{TLS_DIR}/{KEY_NAME}"')
    else:
        t.note(_("The gateway's user name on the broker, and the file holding its password (mode 0600)."))
        t.add(f"username = {toml_string(a.username or '')}", f"password_file = {toml_string(password_file or '')}")


def _buses(t: _Lines, a: SiteAnswers) -> None:
    rs485 = (
        "[[buses]]",
        f'id = "{RS485_BUS}"',
        'type = "rtu"',
        f"port = {toml_string(a.rs485_port or '/dev/ttyUSB0')}",
        f"baud = {a.baud}",
    )
    t.note(
        _(
            "The RS-485 line (Modbus RTU, 8N1) to the fire alarm control panel and the smoke detectors. The devices "
            "on it go under [[devices]] below."
        )
    )
    if a.rs485_port is not None:
        t.add(*rs485)
    else:
        t.note(_("This gateway has no RS-485 line yet; the example shows one."))
        t.example(*rs485)


def _examples(t: _Lines) -> None:
    names = {
        "panel": _("Fire alarm control panel, building A"),
        "smoke": _("Smoke detector, classroom 101"),
        "bollards": _("Rising bollards, east gate"),
        "door": _("Main entrance door"),
        "lane": _("East gate"),
    }
    names = {key: toml_string(name) for key, name in names.items()}
    t.note("-" * 100)
    t.note(_("The devices. campus-edge scan fills these in; or remove the # of an example and set its values."))
    t.note(_("Each id is unique on the site; unit is the device's Modbus address (1-247) on its bus."))
    t.note("-" * 100)
    t.gap()
    t.note(_("A Modbus TCP device, or a Modbus TCP to RS-485 converter (host: its IP address):"))
    t.example("[[buses]]", 'id = "gate-tcp"', 'type = "tcp"', 'host = "192.0.2.10"', "port = 502")
    t.gap()
    t.note(_("The fire alarm control panel on the RS-485 line, read every 0.5 s:"))
    t.example(
        "[[devices]]", 'id = "facp-1"', f"name = {names['panel']}",
        f'bus = "{RS485_BUS}"', "unit = 1", 'profile = "fire_panel"', "poll_interval_s = 0.5",
    )  # fmt: skip
    t.gap()
    t.note(_("A smoke detector on the same line (one block for each):"))
    t.example(
        "[[devices]]", 'id = "smoke-101"', f"name = {names['smoke']}",
        f'bus = "{RS485_BUS}"', "unit = 11", 'profile = "smoke_detector"', "poll_interval_s = 1.0",
    )  # fmt: skip
    t.gap()
    t.note(_("The rising bollards' controller at the gate, on the Modbus TCP bus above:"))
    t.example(
        "[[devices]]", 'id = "bollard-east"', f"name = {names['bollards']}",
        'bus = "gate-tcp"', "unit = 1", 'profile = "bollard_controller"', "poll_interval_s = 0.25",
    )  # fmt: skip
    t.gap()
    t.note(_("Contacts on GPIO pins (BCM numbers). contact: NC (normally closed) or NO (normally open)."))
    t.note(
        _(
            'A door contact: forced-open and held-open alarms; armed = "always" at any hour, "schedule" during '
            "school hours only (needs [schedule])."
        )
    )
    t.example(
        "[[gpio.inputs]]", 'id = "door-main"', f"name = {names['door']}", "pin = 17",
        'kind = "door"', 'contact = "NC"', "debounce_ms = 50", 'armed = "always"', "held_open_s = 60",
    )  # fmt: skip
    t.gap()
    t.note(_("The fire alarm control panel's fault relay (energised when normal: open means a fault):"))
    t.example(
        "[[gpio.inputs]]", 'id = "panel-trouble"', "pin = 22", 'kind = "trouble_relay"', 'contact = "NC"',
        "debounce_ms = 100",
    )  # fmt: skip
    t.gap()
    t.note(
        _(
            "The fire alarm control panel's fire relay (closes on fire): the fire alarm arrives even when the RS-485 "
            "line is down."
        )
    )
    t.example(
        "[[gpio.inputs]]", 'id = "panel-fire-relay"', "pin = 23", 'kind = "fire_relay"', 'contact = "NO"',
        "debounce_ms = 20",
    )  # fmt: skip
    t.gap()
    t.note(
        _(
            "A bollard lane on the controller above. fire_lane = true: a fire alarm lowers it and keeps it down. "
            "power_loss: what the bollards do without power, auto_lower or stay (checked against the controller)."
        )
    )
    t.example(
        "[[lanes]]", 'id = "lane-east"', f"name = {names['lane']}", 'controller = "bollard-east"',
        "fire_lane = true", 'power_loss = "auto_lower"',
    )  # fmt: skip


def _schedule(t: _Lines, a: SiteAnswers) -> None:
    t.note(
        _(
            "School hours (closed campus management): scheduled lanes are raised, and doors armed by schedule report "
            "alarms, while the school is in session. Judged only on a synchronised clock. holidays: days without "
            "school; extra_days: make-up school days (on date, the hours of weekday as)."
        )
    )
    header = ("[schedule]", f"timezone = {toml_string(a.timezone)}")
    extras = ("holidays = [2026-10-01, 2026-10-02]", 'extra_days = [{ date = 2026-09-27, as = "mon" }]')
    if not a.school_hours:
        t.note(_("No school hours were given; the example shows the form."))
        t.example(*header, *extras, "[[schedule.periods]]", 'days = ["mon", "tue", "wed", "thu", "fri"]')
        t.example('start = "07:30"', 'end = "17:30"')
        return
    t.add(*header)
    t.example(*extras)
    for p in a.school_hours:
        t.add("[[schedule.periods]]", f"days = {_strings(p.days)}", f'start = "{p.start}"', f'end = "{p.end}"')


def _commands(t: _Lines) -> None:
    key = PurePosixPath(COMMAND_KEYS_DIR) / "platform-2026.pub"
    t.note(
        _(
            "Signed commands from the platform (docs/commands.md). Without [commands] the gateway takes no command "
            "from the network; the guard's local controls work all the same. To accept them: put the platform's "
            "public key file in {dir}/, remove the # of the lines below, and set the key id, issuer and roles the "
            "platform gives you (guard: bollard raise, lower, stop; operator and admin: also lockdown).",
            dir=COMMAND_KEYS_DIR,
        )
    )
    t.example("[commands]", "[[commands.keys]]", 'id = "platform-2026"', 'issuer = "platform"')
    t.example(f'public_key_file = "{key}"', 'roles = ["operator"]')
