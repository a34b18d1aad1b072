"""`campus-edge panel hash-pin`: the hash of a guard's PIN for `[[panel.guards]] pin_hash` (the PIN itself is never
written anywhere). The PIN is read without echo from the terminal, or as one line from standard input."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from gateway.base.errors import GatewayError
from gateway.base.i18n import _, set_language
from gateway.panel.auth import MIN_PIN, hash_pin


def add_parser(sub: Any) -> None:
    """The `panel` subcommand."""
    p = sub.add_parser("panel", help="the gate-house panel: hash a guard's PIN for the configuration")
    p.add_argument("action", choices=["hash-pin"])
    p.add_argument("--lang", help="zh-CN or en (default: from LANG)")


def run(args: argparse.Namespace) -> int:
    """Print the hash; exit 2 for a PIN too short or two entries that differ."""
    set_language(args.lang)
    if sys.stdin.isatty():
        pin = getpass.getpass(_("PIN: "))
        if getpass.getpass(_("PIN again: ")) != pin:
            raise GatewayError(_("the two PINs differ"))
    else:
        pin = sys.stdin.readline().rstrip("\n")
    if len(pin) < MIN_PIN or not pin.isdigit():
        raise GatewayError(_("a PIN is {min} digits or more", min=MIN_PIN))
    print(hash_pin(pin))
    return 0
