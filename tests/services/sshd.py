"""A real OpenSSH sshd on loopback, with a throwaway host key and client key.

Layout under the temporary directory:

    keys/            host key, client key, authorized_keys, known_hosts
    sshd_config      our own configuration (never the system's)
    sshd.log         sshd's stderr (-e), shown when it fails to start
    data/            `data_root`: drivers are rooted in directories below it
    home/<user>/     the key user's SFTP start directory (internal-sftp -d), the "~" of
                     `sftp://h/~/x` LOCATIONs

When running as root a local user `regtool-sftp` is created (once, idempotently) with a
known password, and only that user may log in with a password. Its start directory is a
separate `/tmp/regtool-sftp-*` (pytest's temporary tree is private to root), removed by
`stop()`.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regtool.storage.sftp import SftpDriver
from tests.services import free_port, unavailable

PASSWORD_USER = "regtool-sftp"
#: Only ever valid for logins to the loopback sshd the tests start.
PASSWORD = "regtool-test-Pa55word"
START_TIMEOUT = 20.0


@dataclass
class SshdService:
    host: str
    port: int
    username: str
    key_path: Path
    known_hosts: Path
    data_root: Path
    home_root: Path
    password_user: str | None
    password: str | None
    password_home: Path | None
    process: subprocess.Popen[bytes]
    log_path: Path

    def driver(self, subdir: str, **overrides: Any) -> SftpDriver:
        """A driver logged in with the client key, rooted at `data_root/subdir`."""
        root = self.data_root / subdir
        root.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {
            "port": self.port,
            "username": self.username,
            "key_filename": str(self.key_path),
            "known_hosts": str(self.known_hosts),
        }
        options.update(overrides)
        return SftpDriver(self.host, str(root), **options)

    def login_dir(self) -> Path:
        """Where relative (`~`) roots of the key user resolve."""
        return self.home_root / self.username

    def require_password_user(self) -> tuple[str, str]:
        if self.password_user is None or self.password is None:
            unavailable("password logins need root to create the regtool-sftp user")
        return self.password_user, self.password

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.password_home is not None:
            shutil.rmtree(self.password_home, ignore_errors=True)


def _run(*args: str, stdin: str | None = None) -> None:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip()}")


def _ensure_password_user() -> Path | None:
    """Create the password-login user if we may (root only), set its password, and return
    its start directory; None when not root."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("chpasswd"):
        return None
    try:
        pwd.getpwnam(PASSWORD_USER)
    except KeyError:
        _run(
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            PASSWORD_USER,
        )
    _run("chpasswd", stdin=f"{PASSWORD_USER}:{PASSWORD}\n")
    home = Path(tempfile.mkdtemp(prefix="regtool-sftp-"))
    entry = pwd.getpwnam(PASSWORD_USER)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return home


def _config(tmp: Path, port: int, keys: Path, home_root: Path, password_home: Path | None) -> str:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {keys / 'host_ed25519'}",
        f"PidFile {tmp / 'sshd.pid'}",
        f"AuthorizedKeysFile {keys / 'authorized_keys'}",
        # Every user starts in its own directory under the temp dir, never a real home.
        f"Subsystem sftp internal-sftp -d {home_root}/%u",
        "UsePAM no",
        "StrictModes no",  # temporary directories have loose permissions
        "PermitRootLogin yes",  # the tests run as root in CI containers
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "MaxSessions 10",  # OpenSSH's default, which the driver must live with
        "MaxStartups 100",
        "LogLevel VERBOSE",
    ]
    if password_home is not None:
        lines += [
            f"Match User {PASSWORD_USER}",
            "    PasswordAuthentication yes",
            f"    ForceCommand internal-sftp -d {password_home}",
        ]
    return "\n".join(lines) + "\n"


def _wait_for_banner(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not answer on port {port} ({last}): {log.read_text()}")


def start_sshd(tmpdir: Path) -> SshdService:
    tmp = tmpdir.resolve()  # sshd wants absolute paths everywhere
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not (os.path.isfile(sshd) and shutil.which("ssh-keygen")):
        raise RuntimeError("OpenSSH server not installed (Debian: openssh-server)")
    sshd = os.path.abspath(sshd)  # sshd re-execs itself and insists on an absolute path
    if os.geteuid() == 0:
        # the privilege separation directory; packaging normally creates it at boot
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    keys, data_root, home_root = tmp / "keys", tmp / "data", tmp / "home"
    for d in (keys, data_root, home_root):
        d.mkdir(parents=True, exist_ok=True)
    username = getpass.getuser()
    (home_root / username).mkdir(exist_ok=True)
    _run(
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "regtool-test-host",
        "-f",
        str(keys / "host_ed25519"),
    )
    _run(
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "regtool-test-client",
        "-f",
        str(keys / "client_ed25519"),
    )
    shutil.copy(keys / "client_ed25519.pub", keys / "authorized_keys")
    password_home = _ensure_password_user()

    port = free_port()
    host_pub = (keys / "host_ed25519.pub").read_text().split()
    known_hosts = keys / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")

    config = tmp / "sshd_config"
    config.write_text(_config(tmp, port, keys, home_root, password_home))
    log = tmp / "sshd.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sshd, "-f", str(config), "-D", "-e"],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    try:
        _wait_for_banner(process, port, log)
    except BaseException:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        if password_home is not None:
            shutil.rmtree(password_home, ignore_errors=True)
        raise
    return SshdService(
        host="127.0.0.1",
        port=port,
        username=username,
        key_path=keys / "client_ed25519",
        known_hosts=known_hosts,
        data_root=data_root,
        home_root=home_root,
        password_user=PASSWORD_USER if password_home else None,
        password=PASSWORD if password_home else None,
        password_home=password_home,
        process=process,
        log_path=log,
    )
