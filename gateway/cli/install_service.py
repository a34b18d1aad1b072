"""`campus-edge install-service`: run the gateway as a systemd service, under a user of its own.

It writes two files: the unit (`/etc/systemd/system/campus-edge.service`) and a sysusers.d entry
(`/etc/sysusers.d/campus-edge.conf`) that declares the service user, its membership of `dialout` (serial RS-485
adapters) and `gpio` (the pins; the group is created where the OS has none). systemd-sysusers applies the entry,
on this machine now, inside `--root` for an image (never touching the host's users), and at every boot after.

The unit is `Type=notify` with a watchdog: the gateway says READY=1 once its parts run and pings from its event
loop (gateway/sdnotify.py), so a stuck loop is restarted. `Restart=always` with no start limit: a school's fire
reporting must come back however often it falls. The sandbox is what a network-facing daemon should have, short
of what would cut it from its hardware: no device filter (PrivateDevices=, ProtectClock= and DeviceAllow= would
hide the serial adapters and GPIO chips), and no MemoryDenyWriteExecute= (ctypes callbacks need it).

Installer-facing text goes through the message catalogue (gateway/i18n.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gateway import __version__
from gateway.base.errors import GatewayError
from gateway.base.i18n import _, set_language

DEFAULT_USER = "campus-edge"
DEFAULT_CONFIG = PurePosixPath("/etc/campus-edge/gateway.toml")
DEFAULT_STATE_DIR = PurePosixPath("/var/lib/campus-edge")
UNIT_DIR = PurePosixPath("/etc/systemd/system")
SYSUSERS_DIR = PurePosixPath("/etc/sysusers.d")
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
_HOMES = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))


class InstallError(GatewayError):
    """The service cannot be installed as asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What the unit runs, as whom, and where its files are (paths as seen on the target system)."""

    exec_path: PurePosixPath
    user: str = DEFAULT_USER
    config: PurePosixPath = DEFAULT_CONFIG
    state_dir: PurePosixPath = DEFAULT_STATE_DIR
    watchdog_s: int = 30
    name: str = "campus-edge"

    @property
    def unit_file(self) -> str:
        return f"{self.name}.service"

    @property
    def exec_in_home(self) -> bool:
        """An executable under a home directory, which ProtectHome=yes would hide from the service."""
        return any(self.exec_path.is_relative_to(home) for home in _HOMES)


def _under(path: PurePosixPath, base: str) -> str | None:
    """`path` relative to `base` when it lies below it (the form StateDirectory= and friends take)."""
    if path.is_relative_to(base) and path != PurePosixPath(base):
        return str(path.relative_to(base))
    return None


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-+=:@," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(spec: ServiceSpec) -> str:
    """The unit file's text."""
    state = _under(spec.state_dir, "/var/lib")
    conf = _under(spec.config.parent, "/etc")
    exec_start = " ".join(_systemd_quote(a) for a in (str(spec.exec_path), "run", "--config", str(spec.config)))
    lines = [
        f"# Written by campus-edge install-service {__version__}. Change it with `systemctl edit {spec.name}`",
        "# (a drop-in that survives a new install-service) rather than here.",
        "[Unit]",
        "Description=campus-edge school-safety gateway (fire panels, detectors, doors, bollards -> platform)",
        "Wants=network-online.target",
        "After=network-online.target time-sync.target",
        "# Never give up restarting: fire reporting must come back however often it falls.",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        f"WatchdogSec={spec.watchdog_s}",
        "Restart=always",
        "RestartSec=5",
        "TimeoutStartSec=120",
        "TimeoutStopSec=30",
        f"User={spec.user}",
        f"Group={spec.user}",
        "SupplementaryGroups=dialout gpio",
        "UMask=0077",
    ]
    if state is not None:
        # 0711: the guards' control_group reaches the control socket inside by its path; the files are 0600.
        lines += [f"StateDirectory={state}", "StateDirectoryMode=0711"]
    else:
        lines.append(f"ReadWritePaths={spec.state_dir}")
    if conf is not None:
        lines.append(f"ConfigurationDirectory={conf}")
    lines += [
        "# Sandbox",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ProtectHome={'read-only' if spec.exec_in_home else 'yes'}",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render_sysusers(spec: ServiceSpec) -> str:
    """The sysusers.d entry: the service user, and the groups it needs for the serial lines and the pins."""
    return (
        f"# Written by campus-edge install-service {__version__}: the user the {spec.unit_file} runs as.\n"
        f'u {spec.user} - "campus-edge gateway" {spec.state_dir} /usr/sbin/nologin\n'
        "g gpio -\n"
        f"m {spec.user} dialout\n"
        f"m {spec.user} gpio\n"
    )


def default_exec() -> PurePosixPath:
    """The campus-edge executable beside the running Python (the virtualenv it was installed in), else on PATH."""
    beside = Path(sys.executable).parent / "campus-edge"
    if beside.is_file() and os.access(beside, os.X_OK):
        return PurePosixPath(beside.absolute())
    found = shutil.which("campus-edge")
    if found is None:
        raise InstallError(_("cannot find the campus-edge executable; name it with --exec PATH"))
    return PurePosixPath(Path(found).absolute())


def systemd_is_pid1() -> bool:
    """Whether this machine was booted with systemd (its runtime directory exists, as sd_booted() checks)."""
    return Path("/run/systemd/system").is_dir()


def _inside(root: Path, path: PurePosixPath) -> Path:
    return root / str(path).lstrip("/")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)


def _configured_state_dir(config: Path) -> PurePosixPath | None:
    """The state_dir the site configuration names, when it exists and can be read."""
    try:
        data: dict[str, Any] = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    value = data.get("gateway", {}).get("state_dir")
    return PurePosixPath(value) if isinstance(value, str) else None


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise InstallError(_("{command}: not found", command=argv[0])) from exc
    except subprocess.CalledProcessError as exc:
        raise InstallError(
            _("{command} failed: {error}", command=" ".join(argv), error=(exc.stderr or exc.stdout).strip())
        ) from exc


def install(spec: ServiceSpec, root: Path | None) -> list[str]:
    """Write the unit and the sysusers.d entry under `root` (default /), create the user there, and enable the
    service when this machine runs systemd and no root was given. Returns what to tell the installer."""
    target = root if root is not None else Path("/")
    if root is None and os.geteuid() != 0:
        raise InstallError(_("install-service needs root (sudo), or --root DIR to install into an image"))
    lines: list[str] = []
    unit_path = _inside(target, UNIT_DIR / spec.unit_file)
    sysusers_path = _inside(target, SYSUSERS_DIR / f"{spec.name}.conf")
    _write(unit_path, render_unit(spec))
    _write(sysusers_path, render_sysusers(spec))
    lines.append(_("wrote {path}", path=unit_path))
    lines.append(_("wrote {path}", path=sysusers_path))
    config_dir = _inside(target, spec.config.parent)
    config_dir.mkdir(parents=True, exist_ok=True)
    if spec.exec_in_home:
        lines.append(
            _(
                "note: {path} is in a home directory; the service user must be able to read it "
                "(a clone in /opt/campus-edge is better)",
                path=spec.exec_path,
            )
        )
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is not None:
        argv = [sysusers] + ([f"--root={target}"] if root is not None else []) + [str(sysusers_path)]
        _run(argv)
        lines.append(_("user {user} is in the groups dialout and gpio", user=spec.user))
    else:
        lines.append(_("systemd-sysusers is missing: the user {user} is created when the system next boots",
                       user=spec.user))  # fmt: skip
    configured = _configured_state_dir(_inside(target, spec.config))
    if configured is not None and configured != spec.state_dir:
        lines.append(
            _(
                "warning: {config} keeps its state in {configured}, but the service may write only in {state_dir}; "
                "use the same directory in both (--state-dir)",
                config=spec.config,
                configured=configured,
                state_dir=spec.state_dir,
            )
        )
    if not _inside(target, spec.config).exists():
        lines.append(
            _(
                "put the site configuration at {config} and check it with: campus-edge check-config {config}",
                config=spec.config,
            )
        )
    if root is None and systemd_is_pid1():
        _run(["systemctl", "daemon-reload"])
        _run(["systemctl", "enable", spec.unit_file])
        lines.append(_("enabled {unit}; start it with: systemctl start {unit}", unit=spec.unit_file))
    elif root is None:
        lines.append(
            _(
                "systemd is not running here; on the gateway run: systemctl daemon-reload && "
                "systemctl enable --now {unit}",
                unit=spec.unit_file,
            )
        )
    else:
        # What `systemctl enable` would do, without a systemctl that may not match the image.
        wants = _inside(target, UNIT_DIR / "multi-user.target.wants" / spec.unit_file)
        wants.parent.mkdir(parents=True, exist_ok=True)
        wants.unlink(missing_ok=True)
        wants.symlink_to(UNIT_DIR / spec.unit_file)
        lines.append(_("installed into {root}; the service starts when that system boots", root=root))
    return lines


def add_parser(sub: Any) -> None:
    """The `install-service` subcommand."""
    p = sub.add_parser("install-service", help="install the gateway as a systemd service (installers)")
    p.add_argument("--user", default=DEFAULT_USER, help=f"the system user it runs as (default {DEFAULT_USER})")
    p.add_argument("--config", type=PurePosixPath, default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    p.add_argument("--state-dir", type=PurePosixPath, default=DEFAULT_STATE_DIR, help=f"default {DEFAULT_STATE_DIR}")
    p.add_argument("--exec", type=PurePosixPath, help="the campus-edge executable (default: this one)")
    p.add_argument("--watchdog-s", type=int, default=30, help="restart when the event loop is stuck this long")
    p.add_argument("--root", type=Path, help="install into this file system tree (an image) instead of /")
    p.add_argument("--dry-run", action="store_true", help="print the unit and change nothing")
    p.add_argument("--lang", help="zh-CN or en (default: from LANG)")


def run(args: argparse.Namespace) -> int:
    """Install, or print the unit with --dry-run; 0 when done, 2 when it cannot be done."""
    set_language(args.lang)
    for name, path in (("--config", args.config), ("--state-dir", args.state_dir), ("--exec", args.exec)):
        if path is not None and not path.is_absolute():
            print(_("campus-edge: {option} needs an absolute path, got {path}", option=name, path=path),
                  file=sys.stderr)  # fmt: skip
            return 2
    if not _USER_NAME.fullmatch(args.user):
        print(_("campus-edge: --user {user} is not a system user name (lower case letters, digits, - and _)",
                user=args.user), file=sys.stderr)  # fmt: skip
        return 2
    if not 2 <= args.watchdog_s <= 3600:
        print(_("campus-edge: --watchdog-s must be between 2 and 3600"), file=sys.stderr)
        return 2
    try:
        exec_path = args.exec or default_exec()
        spec = ServiceSpec(exec_path, args.user, args.config, args.state_dir, args.watchdog_s)
        if args.dry_run:
            print(render_unit(spec), end="")
            return 0
        for line in install(spec, args.root.absolute() if args.root is not None else None):
            print(line)
    except InstallError as exc:
        print(_("campus-edge: {error}", error=exc), file=sys.stderr)
        return 2
    return 0
