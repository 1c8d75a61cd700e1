"""TLS for `regtool serve`: uvicorn's own SSL options, checked before start-up and held
to TLS 1.2 at least.

uvicorn builds its `SSLContext` from `ssl_certfile`/`ssl_keyfile`/`ssl_ca_certs` when its
config loads; `harden` then raises the context's minimum version (Python's default
already refuses SSLv3 and below, TLS 1.0 and 1.1 depend on the system's OpenSSL policy).
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

import uvicorn

from regtool.errors import UsageError
from regtool.server.settings import TlsSettings

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: The TLS 1.2 suites taken: ECDHE key exchange with an AEAD cipher (Mozilla's
#: "intermediate" configuration, less DHE, which needs parameters of its own). Every TLS
#: 1.3 suite is one already.
TLS12_CIPHERS = ":".join(
    f"ECDHE-{key}-{cipher}"
    for cipher in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "CHACHA20-POLY1305")
    for key in ("ECDSA", "RSA")
)
_VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}


def check(tls: TlsSettings) -> None:
    """Loads the certificate chain, key and client CA once, so that a missing file, a
    key that does not match or a file that is not PEM is one `UsageError` naming the
    file at start-up, not uvicorn's traceback."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as e:
        raise UsageError(
            f"cannot use --tls-cert {tls.cert} with --tls-key {tls.key}: {_reason(e)}"
        ) from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"cannot use --tls-client-ca {tls.client_ca}: {_reason(e)}") from None


def _reason(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)  # e.g. KEY_VALUES_MISMATCH, NO_START_LINE
    return error.strerror or str(error)


def uvicorn_options(tls: TlsSettings | None) -> dict[str, Any]:
    """`uvicorn.Config` keyword arguments for `tls` (none for plain HTTP). A client CA
    makes a client certificate required, as distribution's `clientcas` does
    (`tls.RequireAndVerifyClientCert`)."""
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
    if tls.client_ca is not None:
        options["ssl_ca_certs"] = str(tls.client_ca)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


def harden(config: uvicorn.Config, tls: TlsSettings | None) -> None:
    """Loads `config` (as `uvicorn.Server` would on start) and sets its SSL context:
    the minimum protocol version (TLS 1.2, or `tls.minimum`), the TLS 1.2 suites
    (`TLS12_CIPHERS`), and the client's order of preference among them."""
    if not config.loaded:
        config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = _VERSIONS[tls.minimum] if tls else MINIMUM_VERSION
        config.ssl.set_ciphers(TLS12_CIPHERS)
        # Every suite left is strong, and the client knows whether it has AES hardware:
        # Go's clients (docker, skopeo, containerd) then ask for AES-128-GCM, a third
        # cheaper per byte than OpenSSL's own first choice, AES-256-GCM, and for
        # ChaCha20 without AES hardware. Mozilla's intermediate configuration does the same.
        config.ssl.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE


def is_loopback(host: str) -> bool:
    """Whether HOST (an address or a name) reaches this machine only: `localhost` and
    loopback addresses. `0.0.0.0`, `::` and every other name are reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
