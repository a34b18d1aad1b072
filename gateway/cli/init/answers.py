"""What `campus-edge init` asks, and the check of each answer, shared by the dialogue and the command-line flags.

Each check takes the text an installer typed and returns the value, or raises `Invalid` with the reason in the
installer's language, so that a wrong answer is asked again on the spot rather than found by the gateway later.
Where the configuration loader has the rule (ids, URLs, baud rates, time zones), the check asks the loader's own
model, so the two cannot drift apart.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509
from pydantic import TypeAdapter, ValidationError

from gateway.base.i18n import _
from gateway.config import DEFAULT_PASSWORDS, UNIX_PATH_MAX, Id, MqttConfig, PeriodConfig, RtuBusConfig

Auth = Literal["cert", "password"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ZH_DAYS = {"周一": "mon", "周二": "tue", "周三": "wed", "周四": "thu", "周五": "fri", "周六": "sat", "周日": "sun"}
BAUDS: tuple[int, ...] = get_args(RtuBusConfig.model_fields["baud"].annotation)
NONE_WORDS = frozenset({"none", "no", "-", "无", "没有", "不"})
_ID = TypeAdapter(Id)


class Invalid(ValueError):
    """An answer that cannot be used; the message says why, in the installer's language."""


@dataclass(frozen=True)
class SchoolPeriod:
    """School hours on some days, local time ("HH:MM"; an end before the start runs past midnight)."""

    days: tuple[str, ...]
    start: str
    end: str


@dataclass(frozen=True)
class SiteAnswers:
    """Everything init needs to write a site's configuration."""

    site_id: str
    gateway_id: str
    broker_urls: tuple[str, ...]
    site_name: str = ""
    allow_plaintext: bool = False
    ca_file: Path | None = None  # the broker's CA as given; copied into the tls dir
    auth: Auth = "cert"
    username: str | None = None
    password_file: Path | None = None  # an existing file to use, or where `password` is to be written
    password: str | None = field(default=None, repr=False)  # typed in the dialogue; written to password_file
    rs485_port: str | None = "/dev/ttyUSB0"
    baud: int = 9600
    state_dir: Path = Path("/var/lib/campus-edge")
    timezone: str = "Asia/Shanghai"
    school_hours: tuple[SchoolPeriod, ...] = ()


def check_id(text: str) -> str:
    """A site, gateway or device id as the configuration accepts it."""
    value = text.strip()
    try:
        return _ID.validate_python(value)
    except ValidationError as exc:
        raise Invalid(
            _(
                "“{value}” cannot be an id: use 1 to 64 lowercase letters, digits, - or _, starting with a letter "
                "or a digit (e.g. no-1-middle-school)",
                value=value,
            )
        ) from exc


def check_name(text: str) -> str:
    """A name people read (any language); one line."""
    value = text.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise Invalid(_("a name is one line of text, without control characters"))
    return value


def check_urls(text: str, allow_plaintext: bool) -> tuple[str, ...]:
    """Broker URLs, separated by commas or spaces; a bare `host[:port]` means mqtts://."""
    urls = []
    for word in re.split(r"[\s,，]+", text.strip()):  # noqa: RUF001 (a Chinese comma typed by habit)
        if not word:
            continue
        url = word if "://" in word else f"mqtts://{word}"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == -1 or parts.path not in ("", "/"):
            raise Invalid(_("“{url}” is not a broker URL: expected mqtts://HOST or mqtts://HOST:PORT", url=word))
        if parts.scheme == "mqtt" and not allow_plaintext:
            raise Invalid(
                _(
                    "“{url}” is plaintext MQTT: use mqtts:// (plaintext only on a test bench, with "
                    "campus-edge init --allow-plaintext)",
                    url=word,
                )
            )
        urls.append(url)
    if not urls:
        raise Invalid(_("at least one broker URL is needed, e.g. mqtts://broker.example.cn:8883"))
    MqttConfig(urls=tuple(urls), allow_plaintext=allow_plaintext)  # the loader's own rule; passes by now
    return tuple(urls)


def check_ca_file(text: str) -> Path | None:
    """The broker's CA certificate (PEM), or none: then the system's trusted CAs check the broker."""
    value = text.strip()
    if not value or value.lower() in NONE_WORDS:
        return None
    path = Path(value).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Invalid(_("cannot read {path}: {error}", path=path, error=exc.strerror)) from exc
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise Invalid(_("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path=path)) from exc
    return path.absolute()


def check_auth(text: str) -> Auth:
    """1 or cert: a client certificate; 2 or password: a user name and password."""
    value = text.strip().lower()
    if value in ("1", "cert", "certificate", "证书"):
        return "cert"
    if value in ("2", "password", "密码"):
        return "password"
    raise Invalid(_("answer 1 (client certificate) or 2 (user name and password)"))


def check_username(text: str) -> str:
    """A broker user name: one word."""
    value = text.strip()
    if not value or any(c.isspace() or ord(c) < 0x20 for c in value):
        raise Invalid(_("a user name is one word, without spaces"))
    return value


def check_password(text: str) -> str:
    """A password the gateway would accept: not empty, not a well-known default."""
    value = text.strip()
    if value.encode().lower() in DEFAULT_PASSWORDS:
        raise Invalid(_("an empty or default password is refused; set a real one on the broker"))
    return value


def check_password_file(text: str) -> Path:
    """An existing password file: readable by its owner alone, holding no default password."""
    path = Path(text.strip()).expanduser().absolute()
    try:
        content = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise Invalid(_("cannot read {path}: {error}", path=path, error=exc.strerror)) from exc
    if mode & 0o077:
        raise Invalid(_("{path}: others may read it (mode {mode}); chmod 600 {path}", path=path, mode=f"{mode:04o}"))
    check_password(content.decode(errors="replace"))
    return path


def check_port(text: str) -> str | None:
    """The RS-485 adapter's serial device, or none (no RS-485 line on this gateway)."""
    value = text.strip()
    if value.lower() in NONE_WORDS:
        return None
    if not value.startswith("/dev/"):
        raise Invalid(
            _("“{port}” is not a serial device: expected e.g. /dev/ttyUSB0, /dev/ttyAMA0, or none", port=value)
        )
    return value


def check_baud(text: str) -> int:
    """A baud rate the Modbus RTU bus supports."""
    value = text.strip()
    if not value.isdigit() or int(value) not in BAUDS:
        raise Invalid(_("expected one of {bauds}", bauds=", ".join(str(b) for b in BAUDS)))
    return int(value)


def check_state_dir(text: str) -> Path:
    """Where the gateway keeps its store: an absolute path, short enough for the control socket inside it."""
    path = Path(text.strip())
    if not path.is_absolute():
        raise Invalid(_("expected an absolute path, e.g. /var/lib/campus-edge"))
    if len(str(path / "control.sock").encode()) > UNIX_PATH_MAX:
        raise Invalid(
            _(
                "the path is too long: the guard's control socket in it must stay under {limit} bytes",
                limit=UNIX_PATH_MAX,
            )
        )
    return path


def check_timezone(text: str) -> str:
    """An IANA time zone name."""
    value = text.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(_("unknown time zone “{zone}”: expected e.g. Asia/Shanghai", zone=value)) from exc
    return value


def _days(text: str) -> tuple[str, ...]:
    days: list[str] = []
    for part in text.split(","):
        ends = [_ZH_DAYS.get(e.strip(), e.strip().lower()) for e in re.split(r"[-~至到]", part)]
        if not all(e in DAYS for e in ends) or len(ends) > 2:
            raise ValueError(part)
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        if last < first:
            raise ValueError(part)
        days += [d for d in DAYS[first : last + 1] if d not in days]
    return tuple(days)


def check_school_hours(text: str) -> tuple[SchoolPeriod, ...]:
    """School hours as `DAYS HH:MM-HH:MM`, several separated by `;`: e.g. `mon-fri 07:30-17:30; sat 08:00-12:00`.
    Empty or none: no school hours (no closed-campus schedule)."""
    value = text.strip()
    if not value or value.lower() in NONE_WORDS:
        return ()
    periods = []
    for part in re.split(r"[;；]", value):  # noqa: RUF001 (a Chinese semicolon typed by habit)
        m = re.fullmatch(r"\s*(\S+)\s+(\d{1,2}:\d{2})\s*[-~至到]\s*(\d{1,2}:\d{2})\s*", part)
        try:
            days = _days(m.group(1) if m else "")
            start, end = (t.zfill(5) for t in (m.group(2), m.group(3))) if m else ("", "")
            PeriodConfig(days=days, start=start, end=end)  # type: ignore[arg-type]  # checked by the model
        except ValueError as exc:
            raise Invalid(
                _(
                    "“{period}” is not school hours: expected days and times like mon-fri 07:30-17:30 "
                    "(days mon tue wed thu fri sat sun; several periods separated by ;)",
                    period=part.strip(),
                )
            ) from exc
        periods.append(SchoolPeriod(days, start, end))
    return tuple(periods)
