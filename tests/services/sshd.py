"""A real OpenSSH sshd on loopback, with a throwaway host key and client key.

Layout under the temporary directory:

    keys/            host key, client key, authorized_keys, known_hosts
    sshd_config      our own configuration (never the system's)
    sshd.log         sshd's stderr (-e), shown when it fails to start
    data/            `data_root`: drivers are rooted in directories below it
    home/<user>/     the key user's SFTP start directory (internal-sftp -d), the "~" of
                     `sftp://h/~/x` LOCATIONs

`variant(options)` starts a second sshd on the same keys, users and directories whose SFTP
subsystem runs `internal-sftp <options>` (say `-P posix-rename`, refusing that request):
each costs one sshd process, started on first use and stopped with the first.

When running as root, a local user with a name and password of this run's own
(`rt-sftp-<random>`) is created for password logins, and only it may log in with a
password; `stop()` deletes it (userdel), and so does a failed start. Users left by runs
that were killed (their comment names a process that is gone) are deleted at the next
start. Its start directory is a separate `/tmp/regtool-sftp-*` (pytest's temporary tree is
private to root), removed by `stop()` too.
"""

from __future__ import annotations

import getpass
import os
import pwd
import resource
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regtool.storage.sftp import SftpDriver
from tests.services import free_port, unavailable

#: Password users are named `rt-sftp-<8 hex>` and carry this comment plus their run's pid.
USER_PREFIX = "rt-sftp-"
USER_COMMENT = "regtool test sftp user, pid "
START_TIMEOUT = 20.0


@dataclass
class PasswordUser:
    """A local user of this run only, with a random password (root only)."""

    name: str
    password: str
    home: Path


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
    #: What `Subsystem sftp internal-sftp` is started with, beyond `-d`.
    sftp_options: str = ""
    base: Path | None = None  # the temporary directory (None for a variant)
    variants: dict[str, SshdService] = field(default_factory=dict)

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

    def variant(self, sftp_options: str, open_files: int | None = None) -> SshdService:
        """An sshd like this one whose SFTP subsystem runs `internal-sftp <sftp_options>`
        (e.g. "-P posix-rename"), with at most `open_files` file descriptors per process
        if given (RLIMIT_NOFILE: the SFTP server runs out of handles); started on first
        use, stopped by `stop()`."""
        if self.base is None:
            raise RuntimeError("variants are made from the first sshd")
        key = sftp_options if open_files is None else f"{sftp_options} nofile={open_files}"
        if key not in self.variants:
            user = self._password_user()
            self.variants[key] = _launch(
                self.base, self.username, user, sftp_options, self.known_hosts, open_files
            )
        return self.variants[key]

    def trust(self, port: int) -> None:
        """Accept this server's host key on `port` too (a proxy in front of it)."""
        line = f"[{self.host}]:{port} {_host_key(self.known_hosts)}\n"
        with open(self.known_hosts, "a") as f:
            f.write(line)

    def login_dir(self) -> Path:
        """Where relative (`~`) roots of the key user resolve."""
        return self.home_root / self.username

    def require_password_user(self) -> tuple[str, str]:
        if self.password_user is None or self.password is None:
            unavailable("password logins need root to create a local user")
        return self.password_user, self.password

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        try:
            for variant in self.variants.values():
                _terminate(variant.process)
            _terminate(self.process)
        finally:
            if self.base is not None and self.password_user is not None:
                _delete_user(self.password_user)
            if self.password_home is not None:
                shutil.rmtree(self.password_home, ignore_errors=True)

    def _password_user(self) -> PasswordUser | None:
        if self.password_user is None or self.password is None or self.password_home is None:
            return None
        return PasswordUser(self.password_user, self.password, self.password_home)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _run(*args: str, stdin: str | None = None) -> None:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip()}")


def _delete_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_stale_users() -> None:
    """Delete password users whose run was killed before its teardown."""
    for entry in pwd.getpwall():
        if not (entry.pw_name.startswith(USER_PREFIX) and entry.pw_gecos.startswith(USER_COMMENT)):
            continue
        pid = entry.pw_gecos.removeprefix(USER_COMMENT)
        if pid.isdigit() and not _pid_alive(int(pid)):
            _delete_user(entry.pw_name)


def _create_password_user() -> PasswordUser | None:
    """A local user of this run, with a random password, and its start directory; None
    when not root."""
    if os.geteuid() != 0 or not all(map(shutil.which, ("useradd", "userdel", "chpasswd"))):
        return None
    _delete_stale_users()
    name = f"{USER_PREFIX}{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24)
    _run(
        "useradd",
        "--system",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        f"{USER_COMMENT}{os.getpid()}",
        name,
    )
    home: Path | None = None
    try:
        _run("chpasswd", stdin=f"{name}:{password}\n")
        home = Path(tempfile.mkdtemp(prefix="regtool-sftp-"))
        entry = pwd.getpwnam(name)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    except BaseException:
        _delete_user(name)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        raise
    return PasswordUser(name, password, home)


def _config(
    tmp: Path, port: int, home_root: Path, user: PasswordUser | None, sftp_options: str
) -> str:
    keys = tmp / "keys"
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {keys / 'host_ed25519'}",
        f"PidFile {tmp / f'sshd-{port}.pid'}",
        f"AuthorizedKeysFile {keys / 'authorized_keys'}",
        # Every user starts in its own directory under the temp dir, never a real home.
        f"Subsystem sftp internal-sftp -d {home_root}/%u {sftp_options}".rstrip(),
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
    if user is not None:
        lines += [
            f"Match User {user.name}",
            "    PasswordAuthentication yes",
            f"    ForceCommand internal-sftp -d {user.home} {sftp_options}".rstrip(),
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


def _limit_files(most: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))


def _host_key(known_hosts: Path) -> str:
    """`<type> <base64>` of the host key, from the first known_hosts line."""
    return " ".join(known_hosts.read_text().split()[1:3])


def _keygen(path: Path, comment: str) -> None:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def _launch(
    tmp: Path,
    username: str,
    user: PasswordUser | None,
    sftp_options: str,
    known_hosts: Path,
    open_files: int | None = None,
) -> SshdService:
    """Start one sshd on the keys and directories under `tmp`, on a free port."""
    sshd = os.path.abspath(shutil.which("sshd") or "/usr/sbin/sshd")  # it re-execs itself
    port = free_port()
    host_pub = (tmp / "keys" / "host_ed25519.pub").read_text().split()
    with open(known_hosts, "a") as f:
        f.write(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    suffix = "" if not (sftp_options or open_files) else f"-{port}"
    config = tmp / f"sshd_config{suffix}"
    config.write_text(_config(tmp, port, tmp / "home", user, sftp_options))
    log = tmp / f"sshd{suffix}.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sshd, "-f", str(config), "-D", "-e"],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            preexec_fn=None if open_files is None else lambda: _limit_files(open_files),
        )
    try:
        _wait_for_banner(process, port, log)
    except BaseException:
        _terminate(process)
        raise
    return SshdService(
        host="127.0.0.1",
        port=port,
        username=username,
        key_path=tmp / "keys" / "client_ed25519",
        known_hosts=known_hosts,
        data_root=tmp / "data",
        home_root=tmp / "home",
        password_user=user.name if user else None,
        password=user.password if user else None,
        password_home=None,  # removed by the first sshd's stop()
        process=process,
        log_path=log,
        sftp_options=sftp_options,
    )


def start_sshd(tmpdir: Path) -> SshdService:
    tmp = tmpdir.resolve()  # sshd wants absolute paths everywhere
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not (os.path.isfile(sshd) and shutil.which("ssh-keygen")):
        raise RuntimeError("OpenSSH server not installed (Debian: openssh-server)")
    if os.geteuid() == 0:
        # the privilege separation directory; packaging normally creates it at boot
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    keys, data_root, home_root = tmp / "keys", tmp / "data", tmp / "home"
    for d in (keys, data_root, home_root):
        d.mkdir(parents=True, exist_ok=True)
    username = getpass.getuser()
    (home_root / username).mkdir(exist_ok=True)
    _keygen(keys / "host_ed25519", "regtool-test-host")
    _keygen(keys / "client_ed25519", "regtool-test-client")
    shutil.copy(keys / "client_ed25519.pub", keys / "authorized_keys")
    known_hosts = keys / "known_hosts"
    known_hosts.write_text("")

    user = _create_password_user()
    try:
        service = _launch(tmp, username, user, "", known_hosts)
    except BaseException:
        if user is not None:
            _delete_user(user.name)
            shutil.rmtree(user.home, ignore_errors=True)
        raise
    service.base = tmp
    service.password_home = user.home if user else None
    return service
