"""The files a configuration names: the MQTT credentials, the command keys, the panel's certificate and key.
Each is resolved against the configuration's folder and read at load, so a missing or world-readable secret stops
the start at its line, not at the first connection."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.base.contract import ACTIONS
from gateway.base.errors import os_reason
from gateway.base.i18n import N_, Message
from gateway.base.keys import KeyFileError, check_private_file, load_public
from gateway.config.locate import Problems
from gateway.config.models import CommandsConfig, MqttConfig, PanelConfig

DEFAULT_PASSWORDS = frozenset(
    {b"", b"password", b"passw0rd", b"admin", b"public", b"changeme", b"123456", b"12345678", b"mosquitto", b"guest"}
)  # fmt: skip
_MQTT_FILES = ("ca_file", "cert_file", "key_file", "password_file")


def _check_files(mqtt: MqttConfig, base_dir: Path) -> tuple[dict[str, Path], Problems]:
    """Credential files resolved against the config's folder, and each one that cannot be read."""
    resolved: dict[str, Path] = {}
    problems: Problems = []
    for name in _MQTT_FILES:
        path: Path | None = getattr(mqtt, name)
        if path is None:
            continue
        full = path if path.is_absolute() else base_dir / path
        resolved[name] = full
        try:
            with open(full, "rb") as f:
                content = f.read(256)
        except OSError as exc:
            problems.append(
                (("mqtt", name), Message(N_("cannot read {path}: {error}"), path=full, error=os_reason(exc)))
            )
            continue
        if not content:
            problems.append((("mqtt", name), Message(N_("{path} is empty"), path=full)))
        elif name in ("key_file", "password_file") or _holds_private_key(full):
            secret = _secret_problem(full)
            if secret is not None:
                problems.append((("mqtt", name), secret))
            if name == "password_file" and content.strip().lower() in DEFAULT_PASSWORDS:
                problems.append(
                    (("mqtt", name), Message(N_("{path} holds a default password; set a real one"), path=full))
                )
    if mqtt.key_file is not None and mqtt.cert_file is None:
        problems.append((("mqtt", "key_file"), Message(N_("a key_file needs its cert_file"))))
    return resolved, problems


_PRIVATE_KEY_PEM = re.compile(rb"^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", re.MULTILINE)


def _holds_private_key(path: Path) -> bool:
    """A certificate file with the private key in it too (one PEM for both): a secret, like the key file."""
    try:
        return _PRIVATE_KEY_PEM.search(path.read_bytes()) is not None
    except OSError:
        return False


def _secret_problem(path: Path) -> Message | None:
    """Why a secret file cannot be used (others may read it, another user owns it), with the command that fixes
    it; None when it is private to this process's user."""
    try:
        check_private_file(path)
    except KeyFileError as exc:
        return exc.message
    return None


def _check_command_keys(commands: CommandsConfig | None, base_dir: Path) -> tuple[CommandsConfig | None, Problems]:
    """Command keys resolved against the config's folder; each that is not an Ed25519 public key, or whose id
    is used twice, or a role that names an action that does not exist."""
    if commands is None:
        return None, []
    problems: Problems = []
    keys = []
    seen: set[str] = set()
    for i, key in enumerate(commands.keys):
        path = key.public_key_file if key.public_key_file.is_absolute() else base_dir / key.public_key_file
        if key.id in seen:
            problems.append((("commands", "keys", i, "id"), Message(N_("key id {id!r} is used twice"), id=key.id)))
        seen.add(key.id)
        try:
            load_public(path)
        except KeyFileError as exc:
            problems.append((("commands", "keys", i, "public_key_file"), exc.message))
        keys.append(key.model_copy(update={"public_key_file": path}))
    for role, actions in commands.roles.items():
        unknown = sorted(set(actions) - set(ACTIONS))
        if unknown:
            no_action = Message(
                N_("no action {action!r}; expected some of {known}"), action=unknown[0], known=list(ACTIONS)
            )
            problems.append((("commands", "roles", role), no_action))
    return commands.model_copy(update={"keys": tuple(keys)}), problems


def _check_panel(panel: PanelConfig | None, base_dir: Path) -> tuple[PanelConfig | None, Problems]:
    """The panel's certificate and key resolved against the config's folder and there, the key (and a certificate
    that holds one) private; guard ids used once."""
    if panel is None:
        return None, []
    problems: Problems = []
    files: dict[str, Path] = {}
    for key in ("cert_file", "key_file"):
        path: Path = getattr(panel, key)
        path = path if path.is_absolute() else base_dir / path
        files[key] = path
        if not path.is_file():
            problems.append((("panel", key), Message(N_("no such file: {path}"), path=path)))
        elif key == "key_file" or _holds_private_key(path):
            secret = _secret_problem(path)
            if secret is not None:
                problems.append((("panel", key), secret))
    seen: set[str] = set()
    for i, guard in enumerate(panel.guards):
        if guard.id in seen:
            problems.append((("panel", "guards", i, "id"), Message(N_("guard id {id!r} is used twice"), id=guard.id)))
        seen.add(guard.id)
    return panel.model_copy(update=files), problems
