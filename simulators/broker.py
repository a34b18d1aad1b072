"""A private mosquitto on a free loopback port, for the demo and the tests; never the machine's own broker."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """mosquitto bound to 127.0.0.1 on its own port, with its own config, persistence and log in `workdir`.

    Persistence is saved on every change so that a subscriber's session survives `kill()` and `start()`, as a
    platform's broker cluster would keep it.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        netns: str | None = None,
        bind: str = "127.0.0.1",
        acl: str | None = None,
        require_client_cert: bool = False,
        passwords: dict[str, str] | None = None,
    ) -> None:
        """`tls` is (CA file, server certificate, server key): the listener then speaks TLS only. With
        `require_client_cert` it also asks every client for a certificate signed by that CA (mutual TLS), and the
        certificate's common name is the client's user name for the ACL.

        `netns` runs the broker in a network namespace of the caller's making, listening on `bind` there (and on
        that namespace's loopback); only addresses of such test namespaces are ever used besides loopback.

        `acl` is the text of a mosquitto acl_file; `set_acl()` changes it while the broker runs.

        `passwords` (user name -> password): only these users get in, no anonymous client.
        """
        self.workdir = workdir
        self.port = port or free_port()
        self.tls = tls
        self.netns = netns
        self.bind = bind
        self.acl = acl
        self.require_client_cert = require_client_cert
        self.passwords = passwords
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.bind}:{self.port}"

    def start(self) -> None:
        """Start mosquitto and wait until it accepts connections."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto is not installed (Debian package 'mosquitto')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.bind}\n"
            + (f"listener {self.port} 127.0.0.1\n" if self.bind != "127.0.0.1" else "")
            # Started as root, mosquitto drops to user 'mosquitto' and could not read our files: stay who we are.
            + f"user {getpass.getuser()}\n"
            + (
                "allow_anonymous true\n"
                if self.passwords is None
                else f"allow_anonymous false\npassword_file {self.workdir / 'passwords'}\n"
            )
            + "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
            "max_queued_messages 0\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            + (f"cafile {self.tls[0]}\ncertfile {self.tls[1]}\nkeyfile {self.tls[2]}\n" if self.tls else "")
            + ("require_certificate true\nuse_identity_as_username true\n" if self.require_client_cert else "")
            + (f"acl_file {self.workdir / 'acl'}\n" if self.acl is not None else "")
        )
        if self.acl is not None:
            (self.workdir / "acl").write_text(self.acl)
        if self.passwords is not None:
            self._write_passwords(self.passwords)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*prefix, exe, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err.strip()}")
            if self._listening():
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within 10 s")

    def _write_passwords(self, passwords: dict[str, str]) -> None:
        """mosquitto 2 reads hashed passwords only: mosquitto_passwd hashes them."""
        path = self.workdir / "passwords"
        path.write_text("")
        path.chmod(0o600)
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        for user, secret in passwords.items():
            subprocess.run([tool, "-b", str(path), user, secret], check=True, capture_output=True)

    def _listening(self) -> bool:
        if self.netns is None:
            try:
                with socket.create_connection((self.bind, self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        probe = f"import socket; socket.create_connection(('{self.bind}', {self.port}), timeout=0.2)"
        return (
            subprocess.run(
                ["ip", "netns", "exec", self.netns, sys.executable, "-c", probe], capture_output=True, check=False
            ).returncode
            == 0
        )

    def set_acl(self, acl: str) -> None:
        """Rewrite the ACL and have the running broker reload it (SIGHUP)."""
        self.acl = acl
        (self.workdir / "acl").write_text(acl)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving or saying goodbye."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM and wait."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
