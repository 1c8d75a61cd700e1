"""Tokens as distribution's `auth.token` verifies them: the key found through x5c, kid
or jwk; issuer, audience, expiry and not-before checked; anything else refused."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from regtool.errors import UsageError
from regtool.server.auth.token import TokenInvalid, TokenVerifier, libtrust_key_id
from regtool.server.settings import TokenSettings
from tests.services.certs import Issued, make_ca, self_signed
from tests.services.token_issuer import ISSUER, SERVICE, TokenSigner

APP = [("repository", "team/app", ["pull", "push"])]


@pytest.fixture(params=[False, True], ids=["ec", "rsa"])
def signer(request: pytest.FixtureRequest, tmp_path: Path) -> TokenSigner:
    return TokenSigner(self_signed(tmp_path / "signer", "token signer", rsa_key=request.param))


def verifier(signer: TokenSigner, tmp_path: Path) -> TokenVerifier:
    settings = TokenSettings("https://auth.example/token", SERVICE, ISSUER, signer.signer.cert)
    return TokenVerifier(settings)


@pytest.mark.parametrize("header", ["x5c", "kid", "jwk"])
def test_valid_tokens_give_their_scopes(signer: TokenSigner, tmp_path: Path, header: str) -> None:
    token = verifier(signer, tmp_path).verify(signer.sign("alice", APP, header=header))
    assert token.subject == "alice"
    assert token.scopes == {"repository:team/app:pull", "repository:team/app:push"}


def test_a_chain_through_an_intermediate_to_a_bundle_root(tmp_path: Path) -> None:
    root = make_ca(tmp_path / "root", "token root")
    leaf = root.issue(tmp_path / "leaf", "token signer", client=True)
    signer = TokenSigner(leaf)
    settings = TokenSettings("https://auth.example/token", SERVICE, ISSUER, root.cert)
    assert TokenVerifier(settings).verify(signer.sign("alice", APP)).subject == "alice"


def test_the_libtrust_key_id_format(signer: TokenSigner) -> None:
    kid = libtrust_key_id(signer.signer.certificate.public_key())
    assert re.fullmatch(r"[A-Z2-7]{4}(:[A-Z2-7]{4}){11}", kid), kid


def _refusals(signer: TokenSigner, tmp_path: Path) -> dict[str, str]:
    other = self_signed(tmp_path / "other", "someone else", rsa_key=signer.algorithm == "RS256")
    other_der = other.certificate.public_bytes(Encoding.DER)
    forged = jwt.encode(
        {"iss": ISSUER, "aud": SERVICE, "exp": 2**40, "access": []},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"x5c": [base64.b64encode(other_der).decode()]},
    )
    hmac_token = jwt.encode(
        {"iss": ISSUER, "aud": SERVICE, "exp": 2**40},
        "a shared secret of more than thirty-two bytes",
        algorithm="HS256",
        headers={"kid": libtrust_key_id(signer.signer.certificate.public_key())},
    )
    return {
        "expired": signer.sign("a", APP, expires_in=-300),
        "not yet valid": signer.sign("a", APP, not_before=300),
        "wrong issuer": signer.sign("a", APP, issuer="someone-else"),
        "wrong audience": signer.sign("a", APP, audience="another-registry"),
        "signed by another key": signer.sign("a", APP, key=other.private_key),
        "chain to no root": forged,
        "hmac": hmac_token,
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "not yet valid",
        "wrong issuer",
        "wrong audience",
        "signed by another key",
        "chain to no root",
        "hmac",
        "garbage",
    ],
)
def test_refused(signer: TokenSigner, tmp_path: Path, kind: str) -> None:
    token = _refusals(signer, tmp_path)[kind]
    with pytest.raises(TokenInvalid, match="token refused"):
        verifier(signer, tmp_path).verify(token)


def test_leeway_of_a_minute(signer: TokenSigner, tmp_path: Path) -> None:
    check = verifier(signer, tmp_path)
    assert check.verify(signer.sign("a", APP, expires_in=-30)).subject == "a"
    assert check.verify(signer.sign("a", APP, not_before=30)).subject == "a"


def test_a_bundle_without_certificates_is_a_usage_error(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("nothing here\n")
    settings = TokenSettings("https://auth.example/token", SERVICE, ISSUER, bundle)
    with pytest.raises(UsageError, match="no PEM certificates"):
        TokenVerifier(settings)


def _signed_by(issuer: Issued, name: str, ca: bool) -> Issued:
    """A certificate for `name` that `issuer` signs (a CA's when `ca`), with its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer.private_key, hashes.SHA256())
    )
    return Issued(Path("-"), Path("-"), cert, key)


def _token_through(chain: list[Issued]) -> str:
    x5c = [base64.b64encode(c.certificate.public_bytes(Encoding.DER)).decode() for c in chain]
    claims = {"iss": ISSUER, "aud": SERVICE, "exp": 2**40, "sub": "mallory", "access": []}
    return jwt.encode(claims, chain[0].private_key, algorithm="ES256", headers={"x5c": x5c})


def test_an_x5c_chain_passes_through_cas_only(tmp_path: Path) -> None:
    """A certificate the bundle's CA issued for something else (a TLS server's) is no CA:
    a certificate it signs is trusted for nothing, as Go's x509 checks for distribution."""
    root = make_ca(tmp_path / "root", "token root")
    settings = TokenSettings("https://auth.example/token", SERVICE, ISSUER, root.cert)
    server = root.issue(tmp_path / "server", "registry.example")  # CA:FALSE
    evil = _signed_by(server, "mallory", ca=False)
    with pytest.raises(TokenInvalid, match="no CA"):
        TokenVerifier(settings).verify(_token_through([evil, server]))
    intermediate = _signed_by(root.issued, "token intermediate", ca=True)
    signer = _signed_by(intermediate, "token signer", ca=False)
    token = TokenVerifier(settings).verify(_token_through([signer, intermediate]))
    assert token.subject == "mallory"
