"""A small token issuer for the Docker token protocol, as a registry's `auth.token.realm`
(docker_auth and others do this for real): it signs JWTs with a test key whose
self-signed certificate is the registry's root bundle.

signer = TokenSigner(self_signed(tmp_path / "signer", "issuer", rsa_key=True))
token = signer.sign("alice", [("repository", "team/app", ["pull"])])  # a JWT
issuer = start_token_issuer(signer, {"alice": "secret"}, grant)       # .realm, .stop()

`grant(user, type, name, actions)` says which of the asked actions a user gets (user None:
no credentials).
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from regtool.server.auth.token import libtrust_key_id
from tests.services import free_port
from tests.services.certs import Issued

ISSUER = "test-issuer"
SERVICE = "regtool-test"

Grant = Callable[[str | None, str, str, list[str]], list[str]]


@dataclass
class TokenSigner:
    signer: Issued
    issuer: str = ISSUER
    service: str = SERVICE

    @property
    def algorithm(self) -> str:
        return "RS256" if isinstance(self.signer.private_key, rsa.RSAPrivateKey) else "ES256"

    def sign(
        self,
        subject: str,
        access: Sequence[tuple[str, str, Sequence[str]]],
        *,
        header: str = "x5c",
        issuer: str | None = None,
        audience: str | None = None,
        expires_in: float = 300,
        not_before: float = 0,
        key: Any = None,
    ) -> str:
        """A token for `access` [(type, name, actions)]; `header` says how it names its
        key: "x5c" (the certificate), "kid" (libtrust key ID) or "jwk"."""
        now = time.time()
        claims = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience or self.service,
            "exp": int(now + expires_in),
            "nbf": int(now + not_before),
            "iat": int(now),
            "jti": uuid.uuid4().hex,
            "access": [{"type": t, "name": n, "actions": list(a)} for t, n, a in access],
        }
        public = self.signer.certificate.public_key()
        headers: dict[str, Any] = {}
        if header == "x5c":
            der = self.signer.certificate.public_bytes(Encoding.DER)
            headers["x5c"] = [base64.b64encode(der).decode()]
        elif header == "kid":
            headers["kid"] = libtrust_key_id(public)
        elif header == "jwk":
            algorithm = jwt.algorithms.get_default_algorithms()[self.algorithm]
            headers["jwk"] = algorithm.to_jwk(public, as_dict=True)
        return jwt.encode(
            claims, key or self.signer.private_key, algorithm=self.algorithm, headers=headers
        )


@dataclass
class RunningIssuer:
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    requests: list[str]

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_token_issuer(signer: TokenSigner, users: dict[str, str], grant: Grant) -> RunningIssuer:
    """The issuer on a free loopback port; `GET /token?service=&scope=` with optional
    Basic credentials answers `{"token", "access_token", "expires_in"}`, or 401 for
    wrong credentials."""
    asked: list[str] = []

    async def token(request: Request) -> Response:
        user = None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if users.get(name) != password:
                return JSONResponse({"details": "wrong credentials"}, status_code=401)
            user = name
        if request.query_params.get("service") != signer.service:
            return JSONResponse({"details": "unknown service"}, status_code=400)
        access = []
        for scope in request.query_params.getlist("scope"):
            asked.append(scope)
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                allowed = grant(user, kind, name, actions.split(","))
                if allowed:
                    access.append((kind, name, allowed))
        signed = signer.sign(user or "", access)
        return JSONResponse({"token": signed, "access_token": signed, "expires_in": 300})

    app = Starlette(routes=[Route("/token", token)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"token-issuer-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the token issuer did not start")
        time.sleep(0.01)
    return RunningIssuer(port, server, thread, asked)
