"""`campus-edge init`: commission a gateway on site, by a dialogue in zh-CN or English, or from flags alone
(`--non-interactive`, for scripted installs and images).

The dialogue asks one thing at a time with the default in brackets; an answer that fails its check is asked again
with the reason. Flags given with the dialogue become its defaults. Exit codes: 0 written, 1 stopped by the
installer (nothing written), 2 refused (nothing written).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.base.errors import GatewayError
from gateway.base.i18n import N_, _, from_environment, set_language, tr
from gateway.cli.init.answers import (
    BAUDS,
    Invalid,
    SiteAnswers,
    check_auth,
    check_baud,
    check_ca_file,
    check_id,
    check_name,
    check_password,
    check_password_file,
    check_port,
    check_school_hours,
    check_state_dir,
    check_timezone,
    check_urls,
    check_username,
)
from gateway.cli.init.site import DEFAULT_DIR, SiteLayout, WrittenSite, refuse_overwrite, write_site
from gateway.cli.init.tls_request import CERT_NAME

T = TypeVar("T")


class Stopped(Exception):
    """The installer ended the dialogue (end of input, Ctrl-C, or no at the end)."""


def add_parser(sub: Any) -> None:
    """The `init` subcommand."""
    lang = from_environment()  # help is printed while the arguments (--lang among them) are still being read

    def h(msgid: str, **fields: object) -> str:
        return tr(msgid, lang, **fields)

    p = sub.add_parser("init", help=h(N_("commission this gateway: write its configuration, TLS key and request")))
    p.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=h(N_("where everything goes (default {dir})"), dir=DEFAULT_DIR)
    )
    p.add_argument("--force", action="store_true", help=h(N_("replace an existing configuration (never the TLS key)")))
    p.add_argument("--lang", help=h(N_("zh-CN or en (default: from the locale)")))
    p.add_argument(
        "--non-interactive", action="store_true", help=h(N_("ask nothing: take every answer from the flags"))
    )
    p.add_argument("--site-id", help=h(N_("the site id, e.g. no-1-middle-school")))
    p.add_argument("--site-name", help=h(N_("the site's name, for people")))
    p.add_argument("--gateway-id", help=h(N_("this gateway's id, unique within the site (default gw-1)")))
    p.add_argument("--broker", action="append", metavar="URL", help=h(N_("mqtts://HOST[:PORT]; repeat for failover")))
    p.add_argument("--allow-plaintext", action="store_true", help=h(N_("accept mqtt:// (a test bench only)")))
    p.add_argument("--ca-file", help=h(N_("the broker's CA certificate (PEM), copied into DIR/tls")))
    p.add_argument(
        "--auth", choices=["cert", "password"], help=h(N_("client certificate (default) or user name and password"))
    )
    p.add_argument("--username", help=h(N_("the user name on the broker (default: the gateway id)")))
    p.add_argument("--password-file", help=h(N_("an existing file holding the broker password (mode 0600)")))
    p.add_argument("--rs485-port", help=h(N_("the RS-485 adapter, e.g. /dev/ttyUSB0, or none")))
    p.add_argument("--baud", help=h(N_("one of {bauds} (default 9600)"), bauds=", ".join(str(b) for b in BAUDS)))
    p.add_argument("--state-dir", help=h(N_("the local store's folder (default /var/lib/campus-edge)")))
    p.add_argument("--timezone", help=h(N_("default Asia/Shanghai")))
    p.add_argument(
        "--school-hours", help=h(N_('school hours, e.g. "mon-fri 07:30-17:30; sat 08:00-12:00" (default: none)'))
    )


class Dialogue:
    """Questions on standard output, answers from standard input, one line each."""

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def _line(self, prompt: str, secret: bool = False) -> str:
        try:
            if secret and sys.stdin.isatty():
                return getpass.getpass(prompt)
            print(prompt, end="", flush=True)
            line = sys.stdin.readline()
        except KeyboardInterrupt as exc:
            raise Stopped from exc
        if not line:
            raise Stopped
        return line.rstrip("\r\n")

    def ask(self, question: str, check: Callable[[str], T], default: str | None = None, secret: bool = False) -> T:
        """Ask until `check` accepts the answer; an empty answer takes `default` (None: an answer is needed)."""
        prompt = f"{question} [{default}]: " if default else f"{question}: "
        while True:
            text = self._line(prompt, secret)
            if not text.strip():
                if default is None:
                    self.say("  " + _("an answer is needed"))
                    continue
                text = default
            try:
                return check(text)
            except Invalid as exc:
                self.say("  " + str(exc))

    def confirm(self, question: str) -> bool:
        """A yes or no; Enter is yes."""
        return self.ask(question, _yes_no, default="y")


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("y", "yes", "是", "好", "确认"):
        return True
    if value in ("n", "no", "否", "不"):
        return False
    raise Invalid(_("answer y (yes) or n (no)"))


def _interview(d: Dialogue, args: argparse.Namespace, layout: SiteLayout) -> SiteAnswers:
    """The questions, in the order an installer has the answers at hand."""
    d.say(
        _(
            "campus-edge init: commissioning a gateway. Press Enter to take the [default]; Ctrl-C stops, "
            "writing nothing."
        )
    )
    d.say(_("Everything is written under {dir}.", dir=layout.directory))
    d.say()
    d.say(_("The site is the campus, or the part of it, that this gateway serves; its id is in every MQTT topic."))
    site_id = d.ask(_("Site id (e.g. no-1-middle-school)"), check_id, args.site_id)
    site_name = d.ask(_("Site name (e.g. No. 1 Middle School, east campus)"), check_name, args.site_name or "-")
    site_name = "" if site_name == "-" else site_name
    gateway_id = d.ask(_("Gateway id, unique within the site"), check_id, args.gateway_id or "gw-1")
    d.say()
    d.say(_("The platform's MQTT broker: mqtts://HOST:PORT; several, for failover, separated by commas."))
    broker = ",".join(args.broker) if args.broker else None
    urls = d.ask(_("Broker URL(s)"), lambda s: check_urls(s, args.allow_plaintext), broker)
    ca_file = d.ask(
        _("The broker's CA certificate file (none: the system's trusted CAs)"), check_ca_file, args.ca_file or "none"
    )
    d.say(_("How the gateway proves who it is to the broker:"))
    d.say("  1 " + _("client certificate: a key and a certificate request are made here, the platform signs it"))
    d.say("  2 " + _("user name and password"))
    auth = d.ask(_("1 or 2"), check_auth, "2" if args.auth == "password" else "1")
    username = password_file = password = None
    if auth == "password":
        username = d.ask(_("User name on the broker"), check_username, args.username or gateway_id)
        given = Path(args.password_file) if args.password_file else layout.password_file
        if given.exists():
            password_file = d.ask(_("Password file"), check_password_file, str(given))
        else:
            password_file = given
            while True:
                password = d.ask(
                    _("Password (not shown; kept in {path}, mode 0600)", path=given), check_password, secret=True
                )
                if d.ask(_("The password again"), str, secret=True) == password:
                    break
                d.say("  " + _("the two passwords differ; once more"))
    d.say()
    d.say(_("The RS-485 line to the fire alarm control panel and the detectors (a USB adapter, usually)."))
    port = d.ask(_("Serial device (none: no RS-485 line)"), check_port, args.rs485_port or "/dev/ttyUSB0")
    baud = 9600
    if port is not None:
        baud = d.ask(_("Baud rate ({bauds})", bauds=", ".join(str(b) for b in BAUDS)), check_baud, args.baud or "9600")
        if not Path(port).exists():
            d.say("  " + _("{port} is not there now; that is fine if the adapter is not plugged in yet", port=port))
    state_dir = d.ask(
        _("State dir (the local store: keep it on persistent storage)"),
        check_state_dir,
        args.state_dir or str(layout.default_state_dir()),
    )
    d.say()
    timezone = d.ask(_("Time zone"), check_timezone, args.timezone or "Asia/Shanghai")
    d.say(_("School hours, for closed campus management: days and times, e.g. mon-fri 07:30-17:30; sat 08:00-12:00."))
    hours = d.ask(_("School hours (none: no schedule for now)"), check_school_hours, args.school_hours or "none")
    return SiteAnswers(
        site_id=site_id,
        site_name=site_name,
        gateway_id=gateway_id,
        broker_urls=urls,
        allow_plaintext=args.allow_plaintext,
        ca_file=ca_file,
        auth=auth,
        username=username,
        password_file=password_file,
        password=password,
        rs485_port=port,
        baud=baud,
        state_dir=state_dir,
        timezone=timezone,
        school_hours=hours,
    )


def _flag(name: str, check: Callable[[str], T], value: str | None, default: str | None = None) -> T:
    """A flag's value through its check; a missing required flag or a wrong value names the flag."""
    text = value if value is not None else default
    if text is None:
        raise GatewayError(_("--{flag} is needed with --non-interactive", flag=name))
    try:
        return check(text)
    except Invalid as exc:
        raise GatewayError(f"--{name}: {exc}") from exc


def _from_flags(args: argparse.Namespace, layout: SiteLayout) -> SiteAnswers:
    gateway_id = _flag("gateway-id", check_id, args.gateway_id, "gw-1")
    auth = check_auth(args.auth or "cert")
    username = password_file = None
    if auth == "password":
        username = _flag("username", check_username, args.username, gateway_id)
        password_file = _flag("password-file", check_password_file, args.password_file)
    port = _flag("rs485-port", check_port, args.rs485_port, "/dev/ttyUSB0")
    return SiteAnswers(
        site_id=_flag("site-id", check_id, args.site_id),
        site_name=_flag("site-name", check_name, args.site_name, ""),
        gateway_id=gateway_id,
        broker_urls=_flag("broker", lambda s: check_urls(s, args.allow_plaintext), ",".join(args.broker or []) or None),
        allow_plaintext=args.allow_plaintext,
        ca_file=_flag("ca-file", check_ca_file, args.ca_file, "none"),
        auth=auth,
        username=username,
        password_file=password_file,
        rs485_port=port,
        baud=_flag("baud", check_baud, args.baud, "9600") if port is not None else 9600,
        state_dir=_flag("state-dir", check_state_dir, args.state_dir, str(layout.default_state_dir())),
        timezone=_flag("timezone", check_timezone, args.timezone, "Asia/Shanghai"),
        school_hours=_flag("school-hours", check_school_hours, args.school_hours, "none"),
    )


def _report(written: WrittenSite, layout: SiteLayout) -> None:
    """What was written, and what the installer does next."""
    print(_("Written:"))
    print(f"  {written.config}  " + _("the site configuration"))
    if written.tls is not None:
        kept = "" if written.tls.key_created else " " + _("(kept: it was there already)")
        print(
            f"  {written.tls.key_path}  "
            + _("the gateway's private key, mode 0600: it never leaves this gateway")
            + kept
        )
        print(f"  {written.tls.request_path}  " + _("the certificate request, for the platform"))
    if written.ca_file is not None:
        print(f"  {written.ca_file}  " + _("the broker's CA certificate"))
    if written.password_created and written.password_file is not None:
        print(f"  {written.password_file}  " + _("the broker password, mode 0600"))
    print(f"  {written.command_keys}/  " + _("for the platform's public keys that sign commands"))
    print()
    print(_("Next:"))
    step = 1
    if written.tls is not None:
        print(
            f"  {step}. "
            + _(
                "Send {request} to the platform; it asks for a certificate for {name} (public key SHA-256 "
                "{fingerprint}). Put the certificate it returns at {cert}.",
                request=written.tls.request_path,
                name=written.tls.common_name,
                fingerprint=written.tls.fingerprint,
                cert=layout.tls_dir / CERT_NAME,
            )
        )
        step += 1
    print(
        f"  {step}. "
        + _(
            "For signed commands: copy the platform's public key (a .pub file made with campus-edge keys new) into "
            "{dir}/, and remove the # of the [commands] lines at the end of {config} (docs/commands.md).",
            dir=written.command_keys,
            config=written.config,
        )
    )
    print(
        f"  {step + 1}. "
        + _("Add the devices: campus-edge scan, or the commented examples in {config}.", config=written.config)
    )
    print(f"  {step + 2}. " + _("Check: campus-edge check-config {config}", config=written.config))


def run(args: argparse.Namespace) -> int:
    """`campus-edge init`: 0 written, 1 stopped by the installer, 2 refused."""
    set_language(args.lang)
    layout = SiteLayout(args.dir)
    refuse_overwrite(layout, args.force)
    if args.non_interactive:
        answers = _from_flags(args, layout)
    else:
        d = Dialogue()
        try:
            answers = _interview(d, args, layout)
            d.say()
            if not d.confirm(_("Write the files now?")):
                raise Stopped  # noqa: TRY301 (the same way out as end of input)
        except Stopped:
            print("\n" + _("Stopped; nothing was written."))
            return 1
    _report(write_site(answers, layout, args.force), layout)
    return 0
