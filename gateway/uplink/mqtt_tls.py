"""How the gateway proves itself to the broker, as the config says: one place for the uplink and for
`campus-edge check`, so that the check connects exactly as the gateway will."""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.config import MqttConfig


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """Certificate verification against `ca_file` (or the system's CAs), and the client certificate if any.

    Raises:
        OSError: a file cannot be read; ssl.SSLError: a certificate or key is not valid.
    """
    context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    if cfg.cert_file is not None:
        context.load_cert_chain(str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None)
    return context


def password(cfg: MqttConfig) -> str | None:
    """The password from `password_file` (its first line's text), or None.

    Raises:
        OSError: the file cannot be read.
    """
    if cfg.password_file is None:
        return None
    return Path(cfg.password_file).read_text(encoding="utf-8").strip()
