"""`campus-edge alarm list|ack ID`: the guard's view of the open alarms on the gateway, through the control socket.

Works with the network down. An acknowledgement here is the guard's, audited like the platform's (an `alarm`
event with `detail.source` guard and `detail.by` the user name given, or the login name).
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from gateway.base.errors import GatewayError
from gateway.base.i18n import _, set_language, tr
from gateway.config import configured_control_socket, configured_language
from gateway.panel.control import ask
from gateway.safety.alarms import CLASS_WORDS, AlarmClass


def add_parser(sub: Any) -> None:
    """The `alarm` subcommand."""
    p = sub.add_parser("alarm", help="the open alarms; acknowledge one (guards, on site)")
    p.add_argument("action", choices=["list", "ack"])
    p.add_argument("alarm_id", nargs="?", help="the alarm id (device.point), for ack")
    p.add_argument("--by", help="who acknowledges (default: the login name)")
    p.add_argument("--config", type=Path, default=Path("/etc/campus-edge/gateway.toml"))
    p.add_argument("--socket", type=Path, help="the control socket (default: from the config)")
    p.add_argument("--lang", help="zh-CN or en (default: from LANG)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 done, 1 refused, 2 the gateway cannot be reached."""
    lang = set_language(args.lang or configured_language(args.config))
    path = args.socket or configured_control_socket(args.config)
    if args.action == "ack" and not args.alarm_id:
        raise GatewayError(_("campus-edge alarm ack: which alarm?"))
    request: dict[str, Any] = {"cmd": "alarms", "lang": lang}
    if args.action == "ack":
        request = {"cmd": "ack", "alarm_id": args.alarm_id, "by": args.by or getpass.getuser(), "lang": lang}
    try:
        answer = ask(path, request)
    except OSError as exc:
        print(_("cannot reach the gateway at {path}: {error}", path=path, error=exc))
        return 2
    if args.action == "list":
        alarms = sorted(answer.get("alarms", []), key=lambda a: (a["priority"], a["raised_ms"]))
        if not alarms:
            print(_("no open alarms"))
        for a in alarms:
            cls = tr(CLASS_WORDS[AlarmClass(a["cls"])], lang)
            state = _("in alarm") if a["active"] else _("restored")
            acked = _("acknowledged") if a["acked"] else _("not acknowledged")
            print(
                f"P{a['priority']} {cls:<12} {a['id']:<32} {state}, {acked}"
                + (f" x{a['count']}" if a["count"] > 1 else "")
            )
        return 0
    print(answer.get("text", ""))
    return 0 if answer.get("ok") else 1
