"""`campus-edge bollard`: the guard's command line on the gateway, through the local control socket.

Works with the network down: it talks only to the running gateway on this machine. Answers come in zh-CN when
the locale is Chinese (LANG=zh_CN...), in English otherwise, or as `--lang` says.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.base.errors import GatewayError
from gateway.base.i18n import _, set_language, tr
from gateway.config import configured_control_socket, configured_language
from gateway.panel.control import ask
from gateway.safety.bollards.supervisor import STATE_WORDS


def add_parser(sub: Any) -> None:
    """The `bollard` subcommand."""
    p = sub.add_parser("bollard", help="status of the bollard lanes; raise, lower or stop one (guards, on site)")
    p.add_argument("action", choices=["status", "raise", "lower", "stop", "release", "lockdown"])
    p.add_argument("lane", nargs="?", help="the lane id (not for status); for lockdown: on or off")
    p.add_argument("--config", type=Path, default=Path("/etc/campus-edge/gateway.toml"))
    p.add_argument("--socket", type=Path, help="the control socket (default: from the config)")
    p.add_argument("--lang", help="zh-CN or en (default: from LANG)")


def run(args: argparse.Namespace) -> int:
    """Send one request; print the answer; exit 0 if done, 1 if refused, 2 if the gateway cannot be reached."""
    lang = set_language(args.lang or configured_language(args.config))
    path = args.socket or configured_control_socket(args.config)
    if args.action != "status" and not args.lane:
        raise GatewayError(_("campus-edge bollard {action}: which lane?", action=args.action))
    request: dict[str, Any] = {"cmd": args.action, "lane": args.lane, "lang": lang}
    if args.action == "lockdown":
        if args.lane not in ("on", "off"):
            raise GatewayError(_("campus-edge bollard lockdown: expected on or off"))
        request = {"cmd": "lockdown", "on": args.lane == "on", "lang": lang}
    try:
        answer = ask(path, request)
    except OSError as exc:
        error = exc.strerror or exc
        print(_("cannot reach the gateway at {path}: {error} (is campus-edge running, and are you in its control "
                "group?)", path=path, error=error))  # fmt: skip
        return 2
    if args.action == "status":
        if answer.get("lockdown"):
            print(_("LOCKDOWN in force ({source})", source=answer["lockdown"]))
        if answer.get("closed_campus") is not None:
            print(_("school hours: closed campus") if answer["closed_campus"] else _("out of school hours"))
        for lane in answer.get("lanes", []):
            state = tr(STATE_WORDS[lane["state"]], lang) if lane["state"] in STATE_WORDS else lane["state"] or "?"
            if lane.get("stale"):
                state += "? (" + _("not read lately") + ")"
            hold = " [" + _("fire hold-down") + "]" if lane["fire_hold"] else ""
            print(f"{lane['lane']}: {state}{hold}" + (f" - {lane['text']}" if lane["text"] else ""))
            if lane.get("last"):
                print(f"  {lane['last']}")
        return 0
    print(answer.get("text", ""))
    for line in answer.get("decisions", []):
        print(f"  {line}")
    return 0 if answer.get("ok") else 1
