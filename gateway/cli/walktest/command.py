"""`campus-edge walktest`: the installer's walk test, live in the terminal, ending in the commissioning report.

The walk test runs the gateway itself (the service must be stopped: one process owns the buses and pins), so every
point is seen through the drivers, debouncing and interlocks it will run with. Lanes are raised and lowered from
the walk test's prompt as a guard would (`raise LANE`, `lower LANE`), through the same supervisor and interlocks.
The report goes to files (JSON, and HTML in zh-CN and English) and into the gateway's outbox, so the platform gets it
when the link is up, now or after the service starts again.

`--simulate` walks the built-in simulated site instead: the same gateway against simulated devices, a private
broker, and a scenario playing the installer (gateway/scenarios/walktest.toml).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import socket
import sys
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gateway import __version__
from gateway.base.i18n import _, set_language, tr
from gateway.cli.walktest.checklist import Check, Checklist, render_html
from gateway.config import Config, configured_language, load_config
from gateway.safety.authority import Authority
from gateway.safety.bollards.supervisor import Command
from gateway.store.outbox import PRIORITY_EVENT, Entry
from simulators.scenario import Step, load_scenario, parse_scenario

if TYPE_CHECKING:
    from gateway.service.app import Gateway

DEFAULT_CONFIG = Path("/etc/campus-edge/gateway.toml")
DELIVERY_WAIT_S = 10.0
_LANE_COMMANDS = {"raise": Command.RAISE, "lower": Command.LOWER, "stop": Command.STOP}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("walktest", help="walk the site point by point and write the commissioning report")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--lang", help="zh-CN or en (default: from the locale)")
    p.add_argument("--out", type=Path, help="where the report files go (default: STATE_DIR/commissioning)")
    p.add_argument("--by", help="who walks the site (default: the login name)")
    p.add_argument("--timeout-s", type=float, default=4 * 3600.0, help="end the walk test after this long")
    p.add_argument("--simulate", action="store_true", help="walk the built-in simulated site (no hardware)")
    p.add_argument("--scenario", type=Path, help="with --simulate: a scenario file instead of the built-in walk")


class WalkTest:
    """The live checklist on one running gateway."""

    def __init__(self, gw: Gateway, lang: str, out: TextIO) -> None:
        self.gw = gw
        self.lang = lang
        self.out = out
        self.checklist = Checklist(gw.cfg, gw.clock.wall_ms)
        self.finished = asyncio.Event()
        gw.recorder.on_readings.append(self.checklist.on_readings)
        gw.recorder.on_events.append(self.checklist.on_events)
        gw.recorder.under_test = self.checklist.under_test
        gw.inputs.on_button.append(self.checklist.on_button)
        self.checklist.on_progress.append(self._progress)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def show(self) -> None:
        for check in self.checklist.checks.values():
            self.say("  " + self.checklist.line(check, self.lang))
        self.say(self._tally())

    def _tally(self) -> str:
        return _("{passed} of {points} points passed", passed=self.checklist.passed, points=len(self.checklist.checks))

    def _progress(self, check: Check, state: str) -> None:
        clock = datetime.now().astimezone().strftime("%H:%M:%S")
        self.say(f"{clock}  {check.id}: {tr(state, self.lang)} ✓")
        if check.passed:
            self.say("  " + self.checklist.line(check, self.lang) + "   " + self._tally())
        if self.checklist.done:
            self.finished.set()

    def command(self, line: str) -> bool:
        """One line typed at the prompt; False ends the walk test."""
        words = line.split()
        if not words:
            return True
        verb = words[0].lower()
        if verb in ("done", "end", "quit", "exit"):
            return False
        if verb == "list":
            self.show()
        elif verb in _LANE_COMMANDS and len(words) == 2 and words[1] in self.gw.bollards.supervisors:
            decision = self.gw.bollards.request(words[1], _LANE_COMMANDS[verb], Authority.GUARD)
            self.say(decision.text(self.lang))
        elif verb in _LANE_COMMANDS:
            lanes = ", ".join(self.gw.bollards.supervisors) or "-"
            self.say(_("Which lane? Type {verb} LANE; lanes: {lanes}", verb=verb, lanes=lanes))
        else:
            self.say(_("Commands: list, raise LANE, lower LANE, stop LANE, done"))
        return True


async def _typed_lines(walk: WalkTest) -> None:
    """Read the installer's commands until `done` or the end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        # Not a terminal or a pipe (input from a file): take its lines as they are.
        for line in sys.stdin.readlines():
            if not walk.command(line):
                break
        return
    while True:
        raw = await reader.readline()
        if not raw or not walk.command(raw.decode(errors="replace")):
            return


async def walk(
    gw: Gateway,
    *,
    lang: str,
    out: TextIO,
    by: str,
    out_dir: Path,
    timeout_s: float,
    installer: Any = None,
) -> dict[str, Any]:
    """Run the gateway with the checklist until every point passed, the installer ends it, or the time is up; then
    write and publish the report. `installer` is a coroutine function taking the WalkTest (the prompt, or a
    scenario). The gateway must be one made for a walk test (`Gateway(..., walk_test=True)`)."""
    if not gw.walk_test:
        raise ValueError("walk: the gateway was not made for a walk test (walk_test=True)")
    wt = WalkTest(gw, lang, out)
    wt.say(_("Walk test of {site} / {gateway}: trigger each point in turn.", site=gw.cfg.site.id,
             gateway=gw.cfg.gateway.id))  # fmt: skip
    wt.show()
    task = asyncio.create_task(gw.run(), name="gateway")
    aborted = True
    try:
        async with asyncio.timeout(10):
            await gw.started.wait()
        feeder = asyncio.create_task(installer(wt) if installer is not None else _typed_lines(wt), name="installer")
        finished = asyncio.create_task(wt.finished.wait())
        done, _pending = await asyncio.wait({feeder, finished, task}, timeout=timeout_s,
                                            return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        aborted = finished not in done
        for t in (feeder, finished):
            t.cancel()
        for ended in (task, feeder):
            if ended in done and not ended.cancelled() and ended.exception() is not None:
                raise ended.exception()  # type: ignore[misc]  # the gateway's or the prompt's error ends it too
        report = wt.checklist.report(
            ended_ms=gw.clock.wall_ms(), version=__version__, config_hash=gw.cfg.digest, by=by, aborted=aborted
        )
        paths = write_report(report, gw.cfg, out_dir)
        body = json.dumps(report, ensure_ascii=False, separators=(",", ":"))
        gw.outbox.put([Entry(PRIORITY_EVENT, gw.topics.commissioning, body)])
        wt.say("")
        wt.show()
        verdict = _("PASSED") if report["result"] == "pass" else _("FAILED")
        wt.say(_("Result: {verdict}. Report written: {paths}", verdict=verdict, paths=", ".join(map(str, paths))))
        if await _delivered(gw):
            wt.say(_("The report reached the platform."))
        else:
            wt.say(_("The platform is not reachable now: the report is kept and sent when the link is up."))
        return report
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _delivered(gw: Gateway) -> bool:
    """Wait a little for the outbox to empty (the report with it)."""
    emptied = asyncio.Event()

    def check(*_args: object) -> None:
        if gw.outbox.depth() == 0:
            emptied.set()

    gw.outbox.on_delete(check)
    check()
    try:
        async with asyncio.timeout(DELIVERY_WAIT_S):
            await emptied.wait()
    except TimeoutError:
        return False
    return True


def write_report(report: dict[str, Any], cfg: Config, out_dir: Path) -> list[Path]:
    """The JSON and the two HTML renderings, named by the walk test's end."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = out_dir / f"walktest-{cfg.site.id}-{cfg.gateway.id}-{stamp}"
    paths = [base.with_suffix(".json")]
    paths[0].write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    for lang in ("zh-CN", "en"):
        path = base.with_suffix(f".{lang}.html")
        path.write_text(render_html(report, cfg.site.id, cfg.gateway.id, lang), encoding="utf-8")
        paths.append(path)
    return paths


def _service_running(cfg: Config) -> bool:
    path = cfg.gateway.control_socket or cfg.gateway.state_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def builtin_walk() -> list[Step]:
    text = (resources.files("gateway") / "scenarios" / "walktest.toml").read_text(encoding="utf-8")
    return parse_scenario(text, "gateway/scenarios/walktest.toml")


async def _simulated(cfg: Config, args: argparse.Namespace, lang: str, by: str) -> dict[str, Any]:
    from gateway.cli.demo import point_at_simulation, simulate  # noqa: PLC0415
    from gateway.service.app import Gateway  # noqa: PLC0415
    from simulators.broker import PrivateBroker  # noqa: PLC0415
    from simulators.contacts import contact_pin_factory  # noqa: PLC0415

    steps = load_scenario(args.scenario) if args.scenario else builtin_walk()
    with contextlib.ExitStack() as stack:
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="campus-edge-walktest-")))
        broker = stack.enter_context(PrivateBroker(run_dir / "broker"))
        factory = contact_pin_factory()
        async with simulate(cfg, run_dir, factory) as site:
            live = point_at_simulation(cfg, site, run_dir, broker.url)
            gw = Gateway(live, pin_factory=factory, walk_test=True)
            for lane in live.lanes:
                site.externals[lane.id] = lambda step: gw.bollards.guard_input(
                    f"bollard_{step.action.removeprefix('guard_')}", step.target
                )

            async def installer(wt: WalkTest) -> None:
                def said(step: Step) -> None:
                    wt.say(f"  >>> {step.note or step.action}")

                await site.play(steps, said)
                await asyncio.Event().wait()  # the scenario is over; the checklist decides

            out_dir = args.out or Path.cwd() / "commissioning"
            return await walk(gw, lang=lang, out=sys.stdout, by=by, out_dir=out_dir, timeout_s=args.timeout_s,
                              installer=installer)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every point passed, 1 when some failed, 2 when the walk test could not run."""
    lang = set_language(args.lang or configured_language(args.config))
    cfg = load_config(args.config)
    by = args.by or getpass.getuser()
    if args.simulate:
        report = asyncio.run(_simulated(cfg, args, lang, by))
        return 0 if report["result"] == "pass" else 1
    if _service_running(cfg):
        print(_("The gateway service is running: stop it first (systemctl stop campus-edge)."), file=sys.stderr)
        return 2
    out_dir = args.out or cfg.gateway.state_dir / "commissioning"
    from gateway.service.app import Gateway  # noqa: PLC0415

    async def main() -> dict[str, Any]:
        return await walk(
            Gateway(cfg, walk_test=True), lang=lang, out=sys.stdout, by=by, out_dir=out_dir, timeout_s=args.timeout_s
        )

    report = asyncio.run(main())
    return 0 if report["result"] == "pass" else 1
