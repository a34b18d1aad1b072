"""The gateway's own identity for mutual TLS to the broker: a private key made on the gateway, and a certificate
signing request (CSR) for the platform to sign.

The key is EC P-256 (what brokers and the Pi's OpenSSL handle quickly), written once with mode 0600 and never
replaced: a new request for the same gateway is made from the key already there, so a certificate the platform
signed earlier keeps matching it. The request names the gateway as the broker's ACL expects (docs/examples/
mosquitto-acl.conf): common name and DNS name `{gateway}.{site}`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.base.errors import GatewayError
from gateway.base.i18n import _

KEY_NAME = "gateway.key"
REQUEST_NAME = "gateway.csr"
CERT_NAME = "gateway.crt"
CA_NAME = "platform-ca.pem"


class TlsKeyError(GatewayError):
    """An existing key that cannot be used for the request; the message names the file and why."""


@dataclass(frozen=True)
class TlsRequest:
    """What was made: where the key and the request are, the name asked for, and the key's fingerprint."""

    key_path: Path
    request_path: Path
    common_name: str
    key_created: bool  # False: a key was there already and was kept
    fingerprint: str  # SHA-256 of the public key (DER SubjectPublicKeyInfo), to compare with what the platform got


def common_name(site_id: str, gateway_id: str) -> str:
    """The name a gateway's certificate carries: `{gateway}.{site}` (ids hold no dots, so it splits back)."""
    return f"{gateway_id}.{site_id}"


def fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the public key as colon-separated hex, the form certificate tools print."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _existing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise TlsKeyError(
            _("{path}: others may read this key (mode {mode}); chmod 600 {path}", path=path, mode=f"{mode:04o}")
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsKeyError(_("{path}: not a readable PEM private key", path=path)) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise TlsKeyError(_("{path}: not an EC P-256 key; move it away to make a new one", path=path))
    return key


def _new_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # O_EXCL: two inits racing, or a key that appeared since we looked, is never overwritten.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key


def build_request(key: ec.EllipticCurvePrivateKey, site_id: str, gateway_id: str) -> x509.CertificateSigningRequest:
    """A request for a TLS client certificate naming the gateway, signed by its key (which proves possession)."""
    name = common_name(site_id, gateway_id)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_request(tls_dir: Path, site_id: str, gateway_id: str) -> TlsRequest:
    """Make (or keep) `tls_dir/gateway.key` and write `tls_dir/gateway.csr` for this site and gateway.

    Raises:
        TlsKeyError: a key file is there but others may read it, or it is not an EC P-256 key.
    """
    if not tls_dir.is_dir():  # 0755 whatever the umask: the service user reaches its key and certificate inside
        tls_dir.mkdir(mode=0o755, parents=True)
        tls_dir.chmod(0o755)
    key_path = tls_dir / KEY_NAME
    created = not key_path.exists()
    key = _new_key(key_path) if created else _existing_key(key_path)
    request = build_request(key, site_id, gateway_id)
    request_path = tls_dir / REQUEST_NAME
    partial = request_path.with_name(REQUEST_NAME + ".new")
    partial.write_bytes(request.public_bytes(serialization.Encoding.PEM))
    partial.chmod(0o644)  # public: it goes to the platform
    partial.replace(request_path)
    return TlsRequest(key_path, request_path, common_name(site_id, gateway_id), created, fingerprint(key.public_key()))
