"""Tokens as distribution's `auth.token` verifies them: the key found through x5c, kid
or jwk; issuer, audience, expiry and not-before checked; anything else refused."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from regtool.errors import UsageError
from regtool.server.auth.token import TokenInvalid, TokenVerifier, libtrust_key_id
from regtool.server.settings import TokenSettings
from tests.services.certs import make_ca, self_signed
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
