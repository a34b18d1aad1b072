"""Writing what `campus-edge init` makes for a site: the configuration, the TLS key and request, the broker's CA, a
password file, and the folder for the platform's command keys, all under one directory (/etc/campus-edge on a
gateway; elsewhere for tests and images).

Nothing is written before every answer is known and the configuration text has passed the loader's model, so a
refusal leaves the directory as it was. An existing configuration is replaced only with `force`; the TLS private
key is never replaced (gateway.tls_request).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gateway.base.errors import GatewayError
from gateway.base.i18n import _
from gateway.cli.init.answers import SiteAnswers
from gateway.cli.init.template import COMMAND_KEYS_DIR, PASSWORD_NAME, TLS_DIR, render
from gateway.cli.init.tls_request import CA_NAME, TlsRequest, make_request
from gateway.config import Config

CONFIG_NAME = "gateway.toml"
DEFAULT_DIR = Path("/etc/campus-edge")


class InitError(GatewayError):
    """Init cannot go on; the message says why in the installer's language."""


@dataclass(frozen=True)
class SiteLayout:
    """Where a site's files go, under one directory."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / CONFIG_NAME

    @property
    def tls_dir(self) -> Path:
        return self.directory / TLS_DIR

    @property
    def command_keys(self) -> Path:
        return self.directory / COMMAND_KEYS_DIR

    @property
    def password_file(self) -> Path:
        return self.directory / PASSWORD_NAME

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / CA_NAME

    def default_state_dir(self) -> Path:
        """/var/lib/campus-edge on a gateway; beside the configuration when init writes elsewhere."""
        if self.directory == DEFAULT_DIR:
            return Path("/var/lib/campus-edge")
        return self.directory.absolute() / "state"

    def named(self, path: Path) -> str:
        """`path` as the configuration names it: relative when inside the directory, so the folder can move."""
        try:
            return path.absolute().relative_to(self.directory.absolute()).as_posix()
        except ValueError:
            return str(path.absolute())


@dataclass(frozen=True)
class WrittenSite:
    """What init wrote."""

    config: Path
    tls: TlsRequest | None
    ca_file: Path | None
    password_file: Path | None
    password_created: bool
    command_keys: Path


def refuse_overwrite(layout: SiteLayout, force: bool) -> None:
    """Raise InitError if a configuration is there and `force` is not given (asked before any question)."""
    if layout.config.exists() and not force:
        raise InitError(
            _(
                "{path} exists already and is not overwritten; campus-edge init --force replaces it "
                "(the TLS private key is kept in any case)",
                path=layout.config,
            )
        )


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write a file that must not exist yet (or, with `force`, replace it whole), with exactly `mode`: init runs
    under a private umask, and what the service user must read (the configuration, the CA) is made 0644 here."""
    if force:
        partial = path.with_name(path.name + ".new")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        partial.replace(path)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise InitError(_("{path} exists already and is not overwritten (--force replaces it)", path=path)) from exc
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def public_dir(path: Path) -> None:
    """Create `path` (and its parents) 0755 where missing, whatever the umask: the service user must reach the
    configuration inside. A folder that exists keeps its mode."""
    if path.is_dir():
        return
    public_dir(path.parent)
    path.mkdir(mode=0o755, exist_ok=True)
    path.chmod(0o755)


def write_site(answers: SiteAnswers, layout: SiteLayout, force: bool = False) -> WrittenSite:
    """Write the site's files under `layout.directory`; see the module docstring for what is never overwritten.

    Raises:
        InitError: the configuration (or the CA copy, or the password file) exists and `force` is not given.
        TlsKeyError: a TLS key is there but cannot be used.
    """
    refuse_overwrite(layout, force)
    ca_data = answers.ca_file.read_bytes() if answers.ca_file is not None else None
    ca_path = None
    if answers.ca_file is not None:
        same = answers.ca_file.absolute() == layout.ca_file.absolute()
        ca_path = answers.ca_file if same else layout.ca_file
    password_path = answers.password_file if answers.auth == "password" else None
    if password_path is None and answers.auth == "password":
        password_path = layout.password_file
    text = render(
        answers,
        str(layout.config.absolute()),
        layout.named(ca_path) if ca_path is not None else None,
        layout.named(password_path) if password_path is not None else None,
    )
    Config.model_validate(tomllib.loads(text))  # a template fault shows here, before anything is written

    public_dir(layout.tls_dir)
    public_dir(layout.command_keys)
    if ca_data is not None and ca_path == layout.ca_file:
        existing = layout.ca_file.read_bytes() if layout.ca_file.exists() else None
        if existing != ca_data:
            if existing is not None and not force:
                raise InitError(
                    _("{path} exists already and is not overwritten (--force replaces it)", path=layout.ca_file)
                )
            _write_new(layout.ca_file, ca_data, 0o644, force=True)
    created = False
    if answers.auth == "password" and answers.password is not None and password_path is not None:
        _write_new(password_path, answers.password.encode() + b"\n", 0o600, force)
        created = True
    tls = make_request(layout.tls_dir, answers.site_id, answers.gateway_id) if answers.auth == "cert" else None
    _write_new(layout.config, text.encode(), 0o644, force)
    return WrittenSite(layout.config, tls, ca_path, password_path, created, layout.command_keys)
