"""Ed25519 key files: made for integrators (`campus-edge keys new`), read by the gateway and by signers.

A private key is a PKCS#8 PEM file readable by its owner alone (0600), and that owner is the user who reads it:
one that others can read, or that another user owns (and so may read or replace), is refused as a secret that may
have leaked. A public key is a SubjectPublicKeyInfo PEM file, safe to hand around.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.base.errors import os_reason
from gateway.base.i18n import N_, MessageError


class KeyFileError(MessageError):
    """A key file that cannot be used; the message names the file and why, in the reader's language (the gateway
    reports it inside a configuration error)."""


def new_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write `name.key` (private, 0600, never over an existing file) and `name.pub` (0644, whatever the umask:
    it is copied to gateways that read it as another user) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(N_("{path}: exists already; not overwritten"), path=private_path) from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    public_path.chmod(0o644)
    return private_path, public_path


def user_name(uid: int) -> str:
    """The login name of `uid`, or the number where the system has no name for it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_private_file(path: Path) -> None:
    """Refuse a secret that group or others can read, or that another user than this process's owns (KeyFileError
    naming the file, what is wrong and the command that fixes it)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise KeyFileError(N_("{path}: cannot read: {reason}"), path=path, reason=os_reason(exc)) from exc
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            N_("{path}: mode {mode:04o} lets others read it; expected 0600 (chmod 600 {path})"), path=path, mode=mode
        )
    if st.st_uid != os.geteuid():
        raise KeyFileError(
            N_("{path}: owned by {owner}, not by {user} who reads it; expected its own file (chown {user} {path})"),
            path=path,
            owner=user_name(st.st_uid),
            user=user_name(os.geteuid()),
        )


def load_private(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a file only its owner can read."""
    check_private_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(N_("{path}: cannot read: {reason}"), path=path, reason=os_reason(exc)) from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(N_("{path}: not a readable PEM private key: {reason}"), path=path, reason=exc) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(N_("{path}: not an Ed25519 key"), path=path)
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(N_("{path}: cannot read: {reason}"), path=path, reason=os_reason(exc)) from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(N_("{path}: not a readable PEM public key: {reason}"), path=path, reason=exc) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(N_("{path}: not an Ed25519 key"), path=path)
    return key
