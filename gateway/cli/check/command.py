"""`campus-edge check`: the commissioning checks, one line each, and an exit code an installer's script can use."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from gateway.base.i18n import LANGUAGES, N_, _, language, set_language, tr
from gateway.cli.check.checks import Check, Verdict, passed, run_checks
from gateway.config import configured_language

TAGS = {Verdict.PASS: N_("PASS"), Verdict.WARN: N_("WARN"), Verdict.FAIL: N_("FAIL")}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `check` subcommand."""
    p = sub.add_parser("check", help="check that this gateway is ready to run here (exit 0: pass, 1: fail)")
    p.add_argument("--config", type=Path, default=Path("/etc/campus-edge/gateway.toml"))
    p.add_argument("--lang", choices=LANGUAGES, help="language of the report (default: the locale's)")


def render(checks: list[Check]) -> str:
    """The report: a line per check, then the counts."""
    # A why of several lines (every error of a configuration file) goes on indented under its check.
    lines = [f"{tr(TAGS[c.verdict], language()):<5} {c.name}: {c.why}".replace("\n", "\n      ") for c in checks]
    counts = {v: sum(c.verdict is v for c in checks) for v in Verdict}
    tally = _("{fail} failed, {warn} warnings, {ok} passed", fail=counts[Verdict.FAIL], warn=counts[Verdict.WARN],
              ok=counts[Verdict.PASS])  # fmt: skip
    lines.append(tally)
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """0 when nothing failed (warnings allowed), 1 otherwise."""
    set_language(args.lang or configured_language(args.config))
    checks = asyncio.run(run_checks(args.config))
    print(render(checks), end="")
    return 0 if passed(checks) else 1
