"""Bearer tokens as distribution's `auth.token` takes them (the Docker token protocol,
`registry/auth/token/token.go` in distribution 2.8): a JWT signed by a key of the root
certificate bundle, found through the token's header by

- `x5c`: a certificate chain (leaf first) that ends at, or is issued by, a certificate
  of the bundle;
- `kid`: the libtrust key ID of a bundle certificate's key;
- `jwk`: a public key whose libtrust key ID is one of the bundle's;

and holding `iss` = the issuer, `aud` = the service, `exp` and `nbf` (each with 60 s of
leeway, as distribution) and `access`: `[{"type", "name", "actions"}]`. PyJWT checks the
signature and claims; only asymmetric algorithms are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from regtool.errors import UsageError
from regtool.server.settings import TokenSettings

#: Seconds a token's `exp` and `nbf` may be off: distribution's `Leeway`.
LEEWAY = 60
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"]
#: Verified tokens remembered (until they expire), so a pull does not re-verify per blob.
CACHE_SIZE = 4096


class TokenInvalid(Exception):
    """A token that cannot be used; the message says why (never the token)."""


def libtrust_key_id(key: Any) -> str:
    """The key ID distribution's libtrust gives a public key: the SHA-256 of its DER
    SubjectPublicKeyInfo, cut to 240 bits, base32, in twelve groups of four joined by
    `:` (libtrust `keyIDFromCryptoKey`)."""
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def load_bundle(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; `UsageError` naming the file if there are none
    or it cannot be read."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as e:
        reason = e.strerror or str(e)
        raise UsageError(f"cannot read token root certificate bundle {path}: {reason}") from None
    except ValueError:
        raise UsageError(f"token root certificate bundle {path}: no PEM certificates") from None
    return certs


@dataclass(frozen=True)
class Token:
    subject: str
    scopes: frozenset[str]  # "repository:team/app:pull", "registry:catalog:*"
    expires: float


class TokenVerifier:
    """Verifies tokens for one `TokenSettings`."""

    def __init__(self, settings: TokenSettings, clock: Any = time.time):
        self.settings = settings
        self.roots = load_bundle(settings.rootcertbundle)
        self._root_der = {c.public_bytes(Encoding.DER) for c in self.roots}
        self._keys = {libtrust_key_id(c.public_key()): c.public_key() for c in self.roots}
        self._clock = clock
        self._cache: OrderedDict[str, Token] = OrderedDict()

    def verify(self, token: str) -> Token:
        """The subject and scopes of a valid token; `TokenInvalid` otherwise."""
        known = self._cache.get(token)
        if known is not None and known.expires + LEEWAY > self._clock():
            return known
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._key(header),
                algorithms=ALGORITHMS,
                audience=self.settings.service,
                issuer=self.settings.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise TokenInvalid(f"token refused: {e}") from None
        verified = Token(str(claims.get("sub", "")), _scopes(claims), float(claims["exp"]))
        self._cache[token] = verified
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return verified

    def _key(self, header: dict[str, Any]) -> Any:
        if "x5c" in header:
            return self._chain_key(header["x5c"])
        if "kid" in header:
            key = self._keys.get(str(header["kid"]))
            if key is None:
                raise TokenInvalid("token refused: its kid names no key of the root bundle")
            return key
        if "jwk" in header:
            try:
                key = jwt.PyJWK(header["jwk"]).key
            except jwt.PyJWTError as e:
                raise TokenInvalid(f"token refused: bad jwk header: {e}") from None
            if libtrust_key_id(key) not in self._keys:
                raise TokenInvalid("token refused: its jwk is no key of the root bundle")
            return key
        raise TokenInvalid("token refused: its header has no x5c, kid or jwk")

    def _chain_key(self, x5c: Any) -> Any:
        if not isinstance(x5c, list) or not x5c:
            raise TokenInvalid("token refused: x5c is not a list of certificates")
        try:
            chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
        except (ValueError, TypeError):
            raise TokenInvalid("token refused: x5c holds a malformed certificate") from None
        now = datetime.fromtimestamp(self._clock(), UTC)
        for cert in chain:
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise TokenInvalid("token refused: a certificate of its x5c chain is not valid now")
        for below, issuer in enumerate(chain[1:]):
            if not _may_issue(issuer, below):
                raise TokenInvalid(
                    "token refused: its x5c chain passes through a certificate that is no CA"
                )
        try:
            for cert, issuer in itertools.pairwise(chain):
                cert.verify_directly_issued_by(issuer)
            last = chain[-1]
            trusted = last.public_bytes(Encoding.DER) in self._root_der
            if not trusted and not any(_issued_by(last, root) for root in self.roots):
                raise TokenInvalid("token refused: its x5c chain leads to no bundle root")
        except (ValueError, TypeError, InvalidSignature):
            raise TokenInvalid("token refused: its x5c chain does not verify") from None
        return chain[0].public_key()


def _may_issue(cert: x509.Certificate, below: int) -> bool:
    """Whether `cert` may sign the certificates under it in a chain (`below`: how many
    CA certificates stand between it and the signing one), as Go's x509 `Verify` checks
    for distribution (RFC 5280 4.2.1.9 and 4.2.1.3): a CA by its basic constraints,
    within its path length, and allowed to sign certificates by its key usage."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    if constraints.path_length is not None and below > constraints.path_length:
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    access = claims.get("access") or []
    if isinstance(access, list):
        for entry in access:
            if not isinstance(entry, dict):
                continue
            kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
            if isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list):
                scopes.update(f"{kind}:{name}:{a}" for a in actions if isinstance(a, str))
    return frozenset(scopes)
