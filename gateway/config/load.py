"""Site configuration: one TOML file validated once into frozen typed models.

Every error names the file, the line and the key, and says what was expected; nothing starts on a bad file.
The key stays as written in the TOML; what was expected is a catalogue Message, said in the installer's language
on a terminal and in English in the service's log.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from gateway.base.errors import ConfigError, os_reason
from gateway.base.i18n import N_, Message
from gateway.config.cross_check import _cross_check
from gateway.config.files import _check_command_keys, _check_files, _check_panel, _secret_problem
from gateway.config.locate import _expected, _line_map, _where, _written
from gateway.config.models import UNIX_PATH_MAX, Config


def configured_language(path: Path) -> str | None:
    """`[site] language` of a configuration file, read without validating the rest (a guard's command line may not
    read the key files the full check opens); None when absent or unreadable."""
    try:
        site = tomllib.loads(path.read_text(encoding="utf-8")).get("site", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    lang = site.get("language") if isinstance(site, dict) else None
    return lang if lang in ("zh-CN", "en") else None


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration text; relative paths are taken from `base_dir`.

    Raises:
        ConfigError: the first problem, as `file:line: key: what was expected`.
    """
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
        err = exc.errors()[0]
        loc = _written(data, tuple(err["loc"]), err["type"])
        if err["type"] == "union_tag_invalid":  # pydantic names the table; the installer wrote the wrong tag
            loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
        line, key = _where(lines, loc)
        raise ConfigError(source, line, key, _expected(err)) from exc
    problems = _cross_check(cfg)
    files, file_problems = _check_files(cfg.mqtt, base_dir or Path.cwd())
    problems += file_problems
    commands, command_problems = _check_command_keys(cfg.commands, base_dir or Path.cwd())
    problems += command_problems
    panel, panel_problems = _check_panel(cfg.panel, base_dir or Path.cwd())
    problems += panel_problems
    if problems:
        loc, msg = problems[0]
        line, key = _where(lines, loc)
        raise ConfigError(source, line, key, msg)
    state_dir = cfg.gateway.state_dir
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    control = cfg.gateway.control_socket or state_dir / "control.sock"
    if base_dir is not None and not control.is_absolute():
        control = base_dir / control
    if cfg.lanes and len(str(control).encode()) > UNIX_PATH_MAX:
        key = "control_socket" if cfg.gateway.control_socket else "state_dir"
        line, where = _where(lines, ("gateway", key))
        too_long = Message(N_("control socket path {path} is longer than {max} bytes"), path=control, max=UNIX_PATH_MAX)
        raise ConfigError(source, line, where, too_long)
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return cfg.model_copy(
        update={
            "source": source,
            "digest": digest,
            "gateway": cfg.gateway.model_copy(update={"state_dir": state_dir, "control_socket": control}),
            "mqtt": cfg.mqtt.model_copy(update=files),
            "commands": commands,
            "panel": panel,
        }
    )


def load_config(path: Path) -> Config:
    """Read and validate a configuration file; one that holds the guards' PIN hashes must be private (a short PIN
    is found from its hash in minutes, by anyone who can read it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), None, "", Message(N_("cannot read: {reason}"), reason=os_reason(exc))) from exc
    cfg = parse_config(text, str(path), path.parent)
    if cfg.panel is not None and cfg.panel.guards:
        secret = _secret_problem(path)
        if secret is not None:
            line, key = _where(_line_map(text), ("panel", "guards", 0, "pin_hash"))
            pins = Message(N_("this file holds the guards' PIN hashes: {problem}"), problem=secret)
            raise ConfigError(str(path), line, key, pins)
    return cfg
