"""Certificates and keys made in the test with `cryptography`: a CA, server certificates
it signs (for 127.0.0.1 and localhost), client certificates, and self-signed token
signing certificates.

ca = make_ca(tmp_path / "ca", "test CA")
server = ca.issue(tmp_path / "server", "127.0.0.1")        # .cert, .key, .chain PEM paths
client = ca.issue(tmp_path / "client", "alice", client=True)
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issued:
    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: Key


def _write(dir: Path, cert: x509.Certificate, key: Key) -> Issued:
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dir / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(dir / "cert.pem", dir / "key.pem", cert, key)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class CA:
    issued: Issued

    @property
    def cert(self) -> Path:
        return self.issued.cert

    def issue(self, dir: Path, name: str, client: bool = False) -> Issued:
        """A certificate for `name` signed by this CA: a server's (SAN: the name as an
        IP address or DNS name, plus localhost) or a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.issued.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if client:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        else:
            usage = ExtendedKeyUsageOID.SERVER_AUTH
            try:
                san: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(name))]
            except ValueError:
                san = [x509.DNSName(name)]
            san.append(x509.DNSName("localhost"))
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.issued.private_key, hashes.SHA256())
        return _write(dir, cert, key)


def make_ca(dir: Path, name: str) -> CA:
    """A self-signed CA certificate and its key."""
    return CA(self_signed(dir, name, ca=True))


def self_signed(dir: Path, name: str, ca: bool = False, rsa_key: bool = False) -> Issued:
    """A self-signed certificate (a CA's, or a token signer's) with an EC P-256 or an
    RSA 2048 key."""
    key: Key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(dir, cert, key)
