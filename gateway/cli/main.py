"""The `campus-edge` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from gateway import __version__
from gateway.base.contract import CONTRACT_VERSION
from gateway.base.errors import ConfigError, GatewayError
from gateway.base.extras import require
from gateway.base.i18n import LANGUAGES, _, set_language
from gateway.cli import alarm as alarm_cli
from gateway.cli import bollard as bollard_cli
from gateway.cli import install_service, logs
from gateway.cli import panel as panel_cli
from gateway.cli import sign as command_cli
from gateway.cli.check import command as check_cli
from gateway.cli.init import command as init_cli
from gateway.cli.scan import command as scan_cli
from gateway.cli.walktest import command as walktest_cli
from gateway.config import configured_language, load_config
from simulators.scenario import ScenarioError

_QUIET = ("demo", "scan", "check", "walktest")  # their output is for people: only warnings are logged beside it
# The gateway and the tools that write secrets: what they create is their user's alone (the state dir's files, keys,
# passwords) unless given a mode on purpose (a public key, a certificate request, the control socket).
_PRIVATE = ("run", "demo", "walktest", "init", "keys")


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0-65535, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="campus-edge", description="Edge gateway for school safety.")
    p.add_argument("--version", action="version", version=f"campus-edge {__version__} (contract v{CONTRACT_VERSION})")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway against real (or simulated) devices")
    run.add_argument("--config", type=Path, default=Path("/etc/campus-edge/gateway.toml"))

    demo = sub.add_parser("demo", help="run a simulated campus end to end and show what the platform receives")
    demo.add_argument("--config", type=Path, default=Path("examples/demo-site.toml"))
    demo.add_argument("--broker", metavar="URL", help="use this broker (mqtt://HOST:PORT) instead of a private one")
    demo.add_argument("--duration", type=float, default=30.0, metavar="S", help="stop after S seconds (default 30)")
    demo.add_argument("--scenario", type=Path, help="a scenario file to play instead of the built-in one")
    demo.add_argument("--state-dir", type=Path, help="keep the outbox and pty links here (default: a temp dir)")
    demo.add_argument("--panel", type=_port, metavar="PORT",
                      help="also serve the guards' panel on https://127.0.0.1:PORT/ (0: any free port)")  # fmt: skip

    watch = sub.add_parser("watch", help="follow a site as the platform would: check, de-duplicate, account for gaps")
    watch.add_argument("--broker", metavar="URL", required=True, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    watch.add_argument("--site", required=True)
    watch.add_argument("--gateway", help="only this gateway (default: every gateway of the site)")
    watch.add_argument("--ack", action="store_true", help='acknowledge what is stored (for delivery = "platform")')
    watch.add_argument("--ca-file", type=Path, help="CA certificate for mqtts://")
    watch.add_argument("--client-id", help="a persistent session under this id (survives reconnects)")
    watch.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    watch.add_argument("--json", type=Path, metavar="FILE", help="write the final summary as JSON to FILE")
    watch.add_argument("--log", type=Path, metavar="FILE", help="append every arrival (gateway seq kind) to FILE")

    bollard_cli.add_parser(sub)
    alarm_cli.add_parser(sub)
    command_cli.add_parsers(sub)
    walktest_cli.add_parser(sub)
    panel_cli.add_parser(sub)
    init_cli.add_parser(sub)
    install_service.add_parser(sub)

    scan_cli.add_parser(sub)
    check_cli.add_parser(sub)
    check = sub.add_parser("check-config", help="validate a configuration file and exit (see also: check)")
    check.add_argument("config", type=Path)
    check.add_argument("--lang", choices=LANGUAGES, help="language of the answer (default: the locale's)")
    return p


async def _run_until_signal(coro_main: asyncio.Future[object] | asyncio.Task[object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, coro_main.cancel)
    try:
        await coro_main
    except asyncio.CancelledError:
        # Our own signal handler cancelled the main task: an orderly stop. Anything else cancelling us goes on.
        if not coro_main.cancelled() or _cancelling():
            raise


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _watch(args: argparse.Namespace) -> int:
    require("watch")  # jsonschema: campus-edge[watch]
    from gateway.cli.watch import Watcher, watch  # noqa: PLC0415

    watcher = Watcher(args.site, args.gateway)
    if args.log is not None:
        watcher.arrivals = args.log.open("a", encoding="utf-8")

    async def run() -> None:
        task = asyncio.ensure_future(
            watch(watcher, args.broker, ack=args.ack, ca_file=args.ca_file, client_id=args.client_id)
        )
        if args.duration is not None:
            asyncio.get_running_loop().call_later(args.duration, task.cancel)
        await _run_until_signal(task)

    try:
        asyncio.run(run())
    except ValueError as exc:
        print(f"campus-edge: {exc}", file=sys.stderr)
        return 2
    watcher.print_summary()
    if args.json is not None:
        args.json.write_text(json.dumps(watcher.summary(), indent=2) + "\n")
    return 0


# The subcommands that are a tool of their own module: each takes the parsed arguments and returns the exit code.
# `run`, `demo` and `check-config` stay in main(): they load the configuration here and run the event loop.
_TOOLS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": init_cli.run,
    "watch": _watch,
    "scan": scan_cli.run,
    "check": check_cli.run,
    "bollard": bollard_cli.run,
    "alarm": alarm_cli.run,
    "keys": command_cli.run_keys,
    "command": command_cli.run_command,
    "walktest": walktest_cli.run,
    "panel": panel_cli.run,
    "install-service": install_service.run,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command in _PRIVATE:
        os.umask(0o077)
    logs.configure(
        logging.DEBUG if args.verbose else logging.WARNING if args.command in _QUIET else logging.INFO, sys.stderr
    )
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        if args.command == "check-config":
            set_language(args.lang or configured_language(args.config))
            cfg = load_config(args.config)
            print(_("{path}: ok ({buses} buses, {devices} devices, {inputs} inputs)", path=args.config,
                    buses=len(cfg.buses), devices=len(cfg.devices), inputs=len(cfg.gpio.inputs)))  # fmt: skip
            return 0
        tool = _TOOLS.get(args.command)
        if tool is not None:
            return tool(args)
        cfg = load_config(args.config)
        if args.command == "run":
            from gateway.service.app import Gateway  # noqa: PLC0415

            async def run() -> None:
                gw = Gateway(cfg)
                await _run_until_signal(asyncio.ensure_future(gw.run()))

            asyncio.run(run())
            return 0
        from gateway.cli.demo import run_demo  # noqa: PLC0415

        async def demo() -> int:
            task = asyncio.ensure_future(
                run_demo(
                    cfg,
                    duration_s=args.duration,
                    scenario=args.scenario,
                    broker_url=args.broker,
                    state_dir=args.state_dir,
                    panel_port=args.panel,
                )
            )
            await _run_until_signal(task)
            if task.cancelled():
                return 130
            return 1 if task.result().gaps() else 0

        return asyncio.run(demo())
    except (GatewayError, ScenarioError) as exc:
        # In the language the command set (the installer's); `run` and `demo` leave it English, as their logs. A
        # configuration's problems come a line each, each line a message of its own.
        said = str(exc).splitlines() if isinstance(exc, ConfigError) else [str(exc)]
        for line in said:
            print(_("campus-edge: {error}", error=line), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
