"""Secret files are private: every key, password and PIN hash the gateway reads is refused when group or others
may read it, or another user owns it, with the file, the config line and the command that fixes it; what the
gateway and its tools write is private unless public on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.base.errors import ConfigError
from gateway.base.i18n import set_language
from gateway.base.keys import KeyFileError, load_private, new_keypair
from gateway.cli.check.checks import Check, Verdict, run_checks
from gateway.config import load_config
from gateway.panel.auth import hash_pin
from simulators.broker import PrivateBroker
from tests.gateway_harness import config_text

PREFIX = "campus/v1/test-school/gw-1"
ROOT = Path(__file__).resolve().parent.parent
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    set_language("en")
    yield
    set_language("en")


def site(tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    """A site whose secret of `kind` is at 0600: (the config file, the secret file, `file:line: key` of the key
    that names it). Every other file in it is private already, or public as it may be."""
    cert, key, secret = tmp_path / "gateway.crt", tmp_path / "gateway.key", tmp_path / "secret"
    cert.write_text(CERT_PEM)
    key.write_text(KEY_PEM)
    key.chmod(0o600)
    mqtt = {
        "mqtt.key_file": f'cert_file = "{cert}"\nkey_file = "{secret}"\n',
        "mqtt.password_file": f'username = "gw-1"\npassword_file = "{secret}"\n',
        "mqtt.cert_file": f'cert_file = "{secret}"\n',  # one PEM with the certificate and its key
    }.get(kind, "")
    text = config_text(tmp_path / "state", "mqtt://127.0.0.1:1", [], [], mqtt_extra=mqtt)
    panel_cert, panel_key = {"panel.key_file": (cert, secret), "panel.cert_file": (secret, key)}.get(kind, (cert, key))
    text += (
        f'\n[panel]\ncert_file = "{panel_cert}"\nkey_file = "{panel_key}"\n'
        f'[[panel.guards]]\nid = "wang"\npin_hash = "{hash_pin("2468")}"\n'
    )
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    config.chmod(0o600)
    if kind == "panel.guards[0].pin_hash":
        secret = config
    else:
        secret.write_text({"mqtt.password_file": "s3cret-for-gw-1\n"}.get(kind, CERT_PEM + KEY_PEM))
        secret.chmod(0o600)
    return config, secret, f"{config}:{_line(text, kind)}: {kind}"


def _line(text: str, kind: str) -> int:
    """The line of `kind`'s key: the first `key =` after its table's header."""
    lines = text.splitlines()
    table = lines.index("[mqtt]" if kind.startswith("mqtt") else "[panel]")
    key = kind.rsplit(".", maxsplit=1)[-1]
    return next(n for n, t in enumerate(lines[table:], table + 1) if t.startswith(f"{key} ="))


KINDS = [
    "mqtt.key_file", "mqtt.password_file", "mqtt.cert_file", "panel.key_file", "panel.cert_file",
    "panel.guards[0].pin_hash",
]  # fmt: skip


def _pins(kind: str, problem: str) -> str:
    return f"this file holds the guards' PIN hashes: {problem}" if kind.endswith("pin_hash") else problem


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_secret_file_others_may_read_is_refused_with_chmod(tmp_path: Path, kind: str, mode: int) -> None:
    """A secret readable by others (0644) or by its group (0640) stops the gateway at load, naming the config line
    that names the file, and the chmod that fixes it."""
    config, secret, where = site(tmp_path, kind)
    secret.chmod(mode)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    problem = f"{secret}: mode {mode:04o} lets others read it; expected 0600 (chmod 600 {secret})"
    assert str(err.value) == f"{where}: {_pins(kind, problem)}"


@pytest.mark.parametrize("kind", KINDS)
def test_secret_file_private_is_accepted(tmp_path: Path, kind: str) -> None:
    """The same secret at 0600, owned by the gateway's user, loads."""
    config, _secret, _where = site(tmp_path, kind)
    cfg = load_config(config)
    assert cfg.panel is not None


@as_root
@pytest.mark.parametrize("kind", KINDS)
def test_secret_file_of_another_user_is_refused_with_chown(tmp_path: Path, kind: str) -> None:
    """A secret at 0600 that another user owns (who may read or replace it) is refused, with the chown that fixes
    it, in English and in Chinese."""
    config, secret, where = site(tmp_path, kind)
    os.chown(secret, 65534, -1)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    problem = f"{secret}: owned by nobody, not by root who reads it; expected its own file (chown root {secret})"
    assert err.value.render("en") == f"{where}: {_pins(kind, problem)}"
    problem = f"{secret}: 属主为 nobody, 而不是读取它的用户 root; 应属于该用户 (请执行 chown root {secret})"
    zh = f"此文件存有保安 PIN 码的哈希值: {problem}" if kind.endswith("pin_hash") else problem
    assert err.value.render("zh-CN") == f"{where}: {zh}"


def test_secret_pin_hashes_others_may_read_in_chinese(tmp_path: Path) -> None:
    """The guards' PIN hashes in a configuration others can read: the installer reads why in Chinese."""
    config, _secret, where = site(tmp_path, "panel.guards[0].pin_hash")
    config.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert err.value.render("zh-CN") == (
        f"{where}: 此文件存有保安 PIN 码的哈希值: {config}: 权限为 0644, 其他用户可以读取; 应为 0600 "
        f"(请执行 chmod 600 {config})"
    )


def test_secret_certificate_without_a_key_stays_public(tmp_path: Path) -> None:
    """Certificates and CA files are public: 0644 loads, when they hold no private key."""
    config, _secret, _where = site(tmp_path, "panel.key_file")
    (tmp_path / "gateway.crt").chmod(0o644)
    text = config.read_text().replace("[mqtt]\n", f'[mqtt]\nca_file = "{tmp_path / "gateway.crt"}"\n')
    config.write_text(text)
    assert load_config(config).mqtt.ca_file == tmp_path / "gateway.crt"


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_secret_signing_key_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    """A command signing key (`campus-edge command sign --key`) is refused at 0644 and 0640, read at 0600."""
    private, _public = new_keypair(tmp_path, "platform-1")
    assert load_private(private) is not None
    private.chmod(mode)
    with pytest.raises(KeyFileError) as err:
        load_private(private)
    assert str(err.value) == f"{private}: mode {mode:04o} lets others read it; expected 0600 (chmod 600 {private})"


@as_root
def test_secret_signing_key_of_another_user_is_refused(tmp_path: Path) -> None:
    """A signing key another user owns is refused, with the chown."""
    private, _public = new_keypair(tmp_path, "platform-1")
    os.chown(private, 65534, -1)
    with pytest.raises(KeyFileError) as err:
        load_private(private)
    assert str(err.value) == (
        f"{private}: owned by nobody, not by root who reads it; expected its own file (chown root {private})"
    )


@pytest.mark.parametrize("kind", ["panel.key_file", "mqtt.password_file"])
async def test_secret_check_reports_the_file_as_a_failure(tmp_path: Path, kind: str) -> None:
    """`campus-edge check` fails on a secret others can read, with the config line and the fix."""
    config, secret, where = site(tmp_path, kind)
    secret.chmod(0o644)
    checks = await run_checks(config, synced=lambda: True, broker_timeout_s=1)
    fix = f"{secret}: mode 0644 lets others read it; expected 0600 (chmod 600 {secret})"
    assert checks == [Check("configuration", Verdict.FAIL, f"{where}: {fix}")]


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


async def test_secret_state_dir_files_of_the_running_gateway_are_private(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """`campus-edge run` (under a umask that lets everyone read): the outbox and the other files it writes in its
    state dir are its user's alone (the control socket is its group's, 0660, on purpose); the state dir it made lets
    the control group through to the socket (0711)."""
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path / "state", broker.url, [], []))
    sub = await subscriber_factory(broker.url, f"{PREFIX}/status")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT, umask=0o022,
    )  # fmt: skip
    try:
        await sub.wait_for(lambda t, p: p["state"] == "online")
        state = tmp_path / "state"
        modes = _modes(state)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        async with asyncio.timeout(15):
            await proc.wait()
    assert "outbox.db" in modes
    assert modes.pop("control.sock") == 0o660  # the guards' control group's, on purpose
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
    assert stat.S_IMODE(state.stat().st_mode) == 0o711


def test_secret_keys_new_writes_a_private_key_and_a_public_one(tmp_path: Path) -> None:
    """`campus-edge keys new` (under the umask 077 of its own, or of a hardened shell): the private key 0600, the
    public key 0644 (a gateway's service user reads it)."""
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "keys", "new", "platform-1", "--dir", str(tmp_path / "keys")],
        cwd=ROOT, capture_output=True, text=True, check=True, umask=0o077,
    )  # fmt: skip
    assert _modes(tmp_path / "keys") == {"platform-1.key": 0o600, "platform-1.pub": 0o644}


def test_secret_init_under_a_private_umask_keeps_public_files_readable(tmp_path: Path) -> None:
    """`campus-edge init` (under the umask 077 of its own, or of a hardened shell): the TLS key is 0600; the
    configuration, the CA, the request and the folders stay readable by the service user."""
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    site_dir = tmp_path / "etc"
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "init", "--non-interactive", "--lang", "en", "--dir", str(site_dir),
         "--site-id", "s1", "--gateway-id", "gw-1", "--broker", "mqtts://broker.example:8883", "--ca-file", str(ca),
         "--rs485-port", "none", "--school-hours", "none"],
        cwd=ROOT, capture_output=True, text=True, check=True, umask=0o077,
    )  # fmt: skip
    files = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in sorted(site_dir.rglob("*"))}
    files["etc"] = stat.S_IMODE(site_dir.stat().st_mode)
    assert files == {
        "etc": 0o755, "etc/command-keys": 0o755, "etc/gateway.toml": 0o644, "etc/tls": 0o755,
        "etc/tls/gateway.csr": 0o644, "etc/tls/gateway.key": 0o600, "etc/tls/platform-ca.pem": 0o644,
    }  # fmt: skip
