"""Logging in: the SSH connection, host keys checked against known_hosts, and a key or a
password (hosted gateways such as Orbit's log in with an API client id and secret)."""

from __future__ import annotations

import getpass
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import paramiko

from regtool.errors import StorageError, TransientError, Unreachable, UsageError
from regtool.storage.sftp.errors import DRIVER, login_failed, reason, socket_cause

log = logging.getLogger(__name__)

#: paramiko's transport logs here (not as "paramiko.transport"). It logs every fault of
#: the connection at ERROR, traceback and all, before the caller sees it raised; the
#: driver says in one line what happened, so only CRITICAL records pass (set the level
#: of this logger lower to see paramiko's own account).
WIRE_LOG = "regtool.storage.sftp.wire"
logging.getLogger(WIRE_LOG).setLevel(logging.CRITICAL)

POLICIES = ("strict", "accept-new", "ignore")
KEEPALIVE = 30  # seconds between keepalives: NAT and firewalls forget idle connections


def default_known_hosts() -> list[str]:
    """The user's known_hosts file, then the system's (as OpenSSH reads them)."""
    return [os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"]


@dataclass
class Login:
    """Where and how to log in. `known_hosts` files are read in order, new keys added to
    the first; `host_key_policy` is "strict" (refuse unknown keys), "accept-new" (add
    them) or "ignore". `timeout` in seconds, for every step."""

    host: str
    port: int = 22
    username: str = field(default_factory=getpass.getuser)
    password: str | None = field(default=None, repr=False)
    key_filename: str | None = None
    known_hosts: list[str] = field(default_factory=default_known_hosts)
    host_key_policy: str = "strict"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.host_key_policy not in POLICIES:
            raise UsageError(
                f"host_key_policy must be one of {POLICIES}, not {self.host_key_policy!r}"
            )

    @property
    def where(self) -> str:
        """`user@host:port`, for messages (never the password)."""
        return f"{self.username}@{self.host}:{self.port}"

    def connect(self, *, again: bool = False) -> paramiko.SSHClient:
        """A logged-in SSH connection; `again` after an earlier one was lost. Raises
        `Unreachable` if the server cannot be reached (a `TransientError` when `again`),
        `TransientError` if the connection ends before the login does,
        `AuthenticationFailed` if the server refuses the key or password, and
        `StorageError` for a host key or identity that will not do (`errors.login_failed`)."""
        if self.key_filename and not os.path.isfile(self.key_filename):
            raise StorageError(f"identity file not found: {self.key_filename}", driver=DRIVER)
        sock = self._dial(again)
        ssh = paramiko.SSHClient()
        ssh.set_log_channel(WIRE_LOG)
        try:
            if self.host_key_policy != "ignore":
                for path in filter(os.path.isfile, self.known_hosts):
                    try:
                        ssh.get_host_keys().load(path)
                    except OSError as e:
                        raise StorageError(f"cannot read {path}: {e}", driver=DRIVER) from None
            ssh.set_missing_host_key_policy(_HostKeyPolicy(self))
            # A key or password given is what to try: offering every agent key first can use
            # up the server's MaxAuthTries before the password is sent.
            implicit = not self.key_filename and not self.password
            ssh.connect(
                self.host,
                self.port,
                sock=sock,
                transport_factory=Transport,  # type: ignore[arg-type]  # stubs: paramiko 3's call
                username=self.username,
                password=self.password,
                key_filename=self.key_filename,
                allow_agent=implicit,
                look_for_keys=implicit,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
            )
            transport = ssh.get_transport()
            if transport is None:
                raise paramiko.SSHException("no transport after connecting")
            transport.set_keepalive(KEEPALIVE)
        except BaseException as e:
            transport = ssh.get_transport()
            ended = ended_by(transport)  # before closing it ends it
            if ended is None and transport is not None and not transport.initial_kex_done:
                # paramiko stops waiting for the key exchange at the timeout without a
                # word, then says "No existing session": the server stopped answering
                ended = TimeoutError("no answer to the key exchange")
            ssh.close()
            sock.close()
            if isinstance(e, Exception):
                raise login_failed(e, self.where, ended) from None
            raise
        return ssh

    def _dial(self, again: bool) -> socket.socket:
        """The TCP connection (every address of the host in turn): what fails here never
        reached the server, and what fails after it did."""
        try:
            return socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            if again:
                raise TransientError(
                    f"connection to {self.where} lost; reconnecting failed: {reason(e)}",
                    driver=DRIVER,
                ) from None
            raise Unreachable(f"cannot reach {self.where}: {reason(e)}", driver=DRIVER) from None


class Transport(paramiko.Transport):
    """paramiko's SSH transport, remembering the socket's error that ended it
    (`socket_error`: EOF, a reset, a timeout). paramiko keeps that in `saved_exception`
    only until someone calls `get_exception()`, and its authentication does so before it
    reports an EOF as "Authentication failed"."""

    socket_error: BaseException | None = None
    _saved: Exception | None = None

    @property
    def saved_exception(self) -> Exception | None:
        return self._saved

    @saved_exception.setter
    def saved_exception(self, e: Exception | None) -> None:
        self._saved = e
        if self.socket_error is None:
            self.socket_error = socket_cause(e)


def ended_by(transport: paramiko.Transport | None) -> BaseException | None:
    """The error that ended `transport`, the socket's own if known, else None."""
    if transport is None:
        return None
    return getattr(transport, "socket_error", None) or transport.saved_exception


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """A host key not in known_hosts: refuse it, add it, or ignore it, per the policy."""

    def __init__(self, login: Login):
        self.login = login

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        login, known = self.login, self.login.known_hosts[0]
        if login.host_key_policy == "ignore":
            return
        if login.host_key_policy == "accept-new":
            try:
                os.makedirs(os.path.dirname(known) or ".", mode=0o700, exist_ok=True)
                with open(known, "a") as f:
                    f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            except OSError as e:
                raise StorageError(
                    f"cannot add the host key to {known}: {e}", driver=DRIVER
                ) from None
            log.warning(
                "added %s host key %s for %s to %s",
                key.get_name(),
                key.fingerprint,
                hostname,
                known,
            )
            return
        port = f"-p {login.port} " if login.port != 22 else ""
        raise StorageError(
            f"unknown host key for {hostname} ({key.get_name()} {key.fingerprint}): not in "
            f"{' or '.join(login.known_hosts)}. Check the fingerprint, then add it with "
            f"`ssh-keyscan {port}{login.host} >> {known}`, or accept it once with "
            "REGTOOL_SFTP_HOST_KEY_POLICY=accept-new",
            driver=DRIVER,
        )
