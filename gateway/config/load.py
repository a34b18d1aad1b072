"""Site configuration: one TOML file validated once into frozen typed models.

Every error names the file, the line and the key, and says what was expected; nothing starts on a bad file.
The key stays as written in the TOML; what was expected is a catalogue Message, said in the installer's language
on a terminal and in English in the service's log.
"""

from __future__ import annotations

import copy
import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.base.errors import ConfigError, os_reason
from gateway.base.i18n import N_, Message
from gateway.config.cross_check import _cross_check
from gateway.config.files import _check_command_keys, _check_files, _check_panel, _secret_problem
from gateway.config.locate import Problems, _config_error, _line_map, _schema_problems, _written
from gateway.config.models import UNIX_PATH_MAX, Config, GatewayConfig


def configured_language(path: Path) -> str | None:
    """`[site] language` of a configuration file, read without validating the rest (a guard's command line may not
    read the key files the full check opens); None when absent or unreadable."""
    try:
        site = tomllib.loads(path.read_text(encoding="utf-8")).get("site", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    lang = site.get("language") if isinstance(site, dict) else None
    return lang if lang in ("zh-CN", "en") else None


def configured_control_socket(path: Path) -> Path:
    """The control socket a configuration file names (`[gateway] control_socket`, else `state_dir/control.sock`),
    read without validating the rest: a guard's command line cannot read the key files, nor the file itself once
    it holds PIN hashes (0600, the service user's), and needs nothing else of it. Unreadable: the default place."""
    try:
        gateway = tomllib.loads(path.read_text(encoding="utf-8")).get("gateway", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        gateway = {}
    if not isinstance(gateway, dict):
        gateway = {}
    base = path.parent
    socket, state = gateway.get("control_socket"), gateway.get("state_dir", "/var/lib/campus-edge")
    if isinstance(socket, str) and socket:
        return base / socket
    return (base / state if isinstance(state, str) and state else Path("/var/lib/campus-edge")) / "control.sock"


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration text; relative paths are taken from `base_dir`.

    Raises:
        ConfigError: every problem of the text, a line each in the order of the file, as
            `file:line: key: what was expected`: every schema error, and every cross-check and file problem that
            can be told apart from them (see `_set_aside`).
    """
    return _parse(text, source, base_dir, None)


def load_config(path: Path) -> Config:
    """Read and validate a configuration file; one that holds the guards' PIN hashes must be private (a short PIN
    is found from its hash in minutes, by anyone who can read it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), None, "", Message(N_("cannot read: {reason}"), reason=os_reason(exc))) from exc
    return _parse(text, str(path), path.parent, path)


def _parse(text: str, source: str, base_dir: Path | None, path: Path | None) -> Config:
    """`parse_config`, and for the file at `path` its own privacy among the file problems."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        raise ConfigError(source, line, "", Message(N_("not valid TOML: {reason}"), reason=exc)) from exc
    lines = _line_map(text)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = _schema_problems(data, exc)
        rest = _set_aside(data, exc)
        if rest is not None:
            wrong = {_entry(where) for where, _ in problems}
            checked = _checked(rest, base_dir, path)[1]
            problems += [(where, said) for where, said in checked if _entry(where) not in wrong]
        raise _config_error(source, lines, problems) from exc
    cfg, problems = _checked(cfg, base_dir, path)
    if problems:
        raise _config_error(source, lines, problems)
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return cfg.model_copy(update={"source": source, "digest": digest})


def _checked(cfg: Config, base_dir: Path | None, path: Path | None) -> tuple[Config, Problems]:
    """What the tables cannot check alone: the cross-checks, and the files the configuration names (resolved
    against its folder in the Config returned)."""
    problems = _cross_check(cfg)
    files, file_problems = _check_files(cfg.mqtt, base_dir or Path.cwd())
    problems += file_problems
    commands, command_problems = _check_command_keys(cfg.commands, base_dir or Path.cwd())
    problems += command_problems
    panel, panel_problems = _check_panel(cfg.panel, base_dir or Path.cwd())
    problems += panel_problems
    gateway, socket_problems = _control_socket(cfg, base_dir)
    problems += socket_problems
    if path is not None:
        problems += _pin_hashes_private(cfg, path)
    update = {"gateway": gateway, "mqtt": cfg.mqtt.model_copy(update=files), "commands": commands, "panel": panel}
    return cfg.model_copy(update=update), problems


def _set_aside(data: dict[str, Any], exc: ValidationError) -> Config | None:
    """The configuration without its wrong keys, so that the cross-checks can still look at the rest: an unknown
    key, or a wrong value (not a table or a list) of a key that has a default. None when that is not enough (a
    required key is wrong, a table or a list is, or a default brings an error of its own): then what the
    cross-checks said would be about values the installer did not write."""
    rest = copy.deepcopy(data)
    wrong = {_written(data, tuple(err["loc"]), err["type"]): err["type"] for err in exc.errors()}
    for where, kind in wrong.items():
        *table_path, key = where or ("",)
        table: Any = rest
        try:
            for part in table_path:
                table = table[part]
        except (KeyError, IndexError, TypeError):  # under a key set aside already
            return None
        if not isinstance(table, dict) or key not in table:
            return None
        if kind != "extra_forbidden" and isinstance(table[key], dict | list):
            return None
        del table[key]
    try:
        return Config.model_validate(rest)
    except ValidationError:
        return None


def _entry(where: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The table a problem stands in: its entry of an array of tables (a device, a door of it), or its top-level
    table. A key set aside there takes its default, so the cross-checks of that entry are not trusted."""
    last = max((i for i, part in enumerate(where) if isinstance(part, int)), default=0)
    return where[: last + 1]


def _control_socket(cfg: Config, base_dir: Path | None) -> tuple[GatewayConfig, Problems]:
    """The state folder and the control socket resolved against the config's folder, and a socket path too long
    to bind (when there are lanes to control)."""
    state_dir = cfg.gateway.state_dir
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    control = cfg.gateway.control_socket or state_dir / "control.sock"
    if base_dir is not None and not control.is_absolute():
        control = base_dir / control
    problems: Problems = []
    if cfg.lanes and len(str(control).encode()) > UNIX_PATH_MAX:
        key = "control_socket" if cfg.gateway.control_socket else "state_dir"
        too_long = Message(N_("control socket path {path} is longer than {max} bytes"), path=control, max=UNIX_PATH_MAX)
        problems.append((("gateway", key), too_long))
    return cfg.gateway.model_copy(update={"state_dir": state_dir, "control_socket": control}), problems


def _pin_hashes_private(cfg: Config, path: Path) -> Problems:
    """The configuration file itself, when it holds the guards' PIN hashes: private, as a secret file."""
    if cfg.panel is None or not cfg.panel.guards:
        return []
    secret = _secret_problem(path)
    if secret is None:
        return []
    pins = Message(N_("this file holds the guards' PIN hashes: {problem}"), problem=secret)
    return [(("panel", "guards", 0, "pin_hash"), pins)]
