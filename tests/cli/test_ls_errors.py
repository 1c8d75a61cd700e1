"""Bad input to `regtool ls`: one line on stderr, exit 2, no traceback, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from regtool.storage.local import LocalDriver
from tests.handstore import HandStore
from tests.services import free_port
from tests.v1store import V1Store


def assert_one_line_error(result, *words: str, secret: str | None = None) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    if secret:
        assert secret not in result.stderr + result.stdout


def test_unknown_scheme(cli) -> None:
    assert_one_line_error(cli("ls", "s3://bucket/x"), "unknown scheme 's3'")


def test_missing_swift_credentials(cli) -> None:
    assert_one_line_error(cli("ls", "swift://docker_registry"), "no Swift credentials")


def test_not_a_registry(cli, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(cli("ls", str(tmp_path)), "holds no registry", "notes.txt")


def test_missing_config_file(cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("ls", "--config", str(tmp_path / "none.yml")), "cannot read config")


def test_config_with_a_yaml_error(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text('version: 0.1\nstorage:\n  swift:\n    password: "TopSecretPw99\n')
    result = cli("ls", "--config", str(cfg))
    assert_one_line_error(result, str(cfg), "line 5, column 1", secret="TopSecretPw99")


def test_unknown_repository_and_invalid_name(cli, tmp_path: Path) -> None:
    store = V1Store(LocalDriver(tmp_path))
    store.tag("exampleapp", "1.0", store.add_chain(1))
    assert_one_line_error(cli("ls", str(tmp_path), "library/other"), "not found")
    (tmp_path / "v2" / "docker" / "registry" / "v2" / "blobs").mkdir(parents=True)
    assert_one_line_error(cli("ls", str(tmp_path / "v2"), "../../etc"), "invalid repository name")


@pytest.mark.swift
def test_swift_wrong_key(cli, swift_service) -> None:
    env = {
        "ST_AUTH": swift_service.auth_url,
        "ST_USER": swift_service.user,
        "ST_KEY": "Wr0ng-Secret-Key",
    }
    result = cli("ls", "swift://anything", env=env)
    assert_one_line_error(result, "credentials", secret="Wr0ng-Secret-Key")


def test_swift_unreachable(cli) -> None:
    env = {
        "ST_AUTH": f"http://127.0.0.1:{free_port()}/auth/v1.0",
        "ST_USER": "a:b",
        "ST_KEY": "Some-Secret-Key",
    }
    assert_one_line_error(cli("ls", "swift://c", env=env), secret="Some-Secret-Key")


@pytest.mark.sftp
def test_sftp_wrong_password(cli, sshd_service) -> None:
    if not sshd_service.password_user:
        pytest.skip("password login needs root to create a user")
    url = (
        f"sftp://{sshd_service.password_user}:Wr0ng-Passw0rd@{sshd_service.host}:"
        f"{sshd_service.port}/tmp"
    )
    env = {"REGTOOL_SFTP_KNOWN_HOSTS": str(sshd_service.known_hosts)}
    assert_one_line_error(cli("ls", url, env=env), secret="Wr0ng-Passw0rd")


@pytest.mark.sftp
def test_sftp_unknown_host_key(cli, sshd_service, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    url = f"sftp://{sshd_service.username}@{sshd_service.host}:{sshd_service.port}/tmp"
    env = {
        "REGTOOL_SFTP_KNOWN_HOSTS": str(empty),
        "REGTOOL_SFTP_IDENTITY": str(sshd_service.key_path),
    }
    assert_one_line_error(cli("ls", url, env=env), "host key")


def test_sftp_unreachable(cli) -> None:
    result = cli("ls", f"sftp://nobody@127.0.0.1:{free_port()}/srv")
    assert_one_line_error(result)


@pytest.mark.swift
@pytest.mark.parametrize("command", ["ls", "verify", "gc"])
def test_a_missing_swift_container_is_not_an_empty_registry(cli, swift_service, command) -> None:
    env = {
        "ST_AUTH": swift_service.auth_url,
        "ST_USER": swift_service.user,
        "ST_KEY": swift_service.key,
    }
    args = {"ls": ["ls", "swift://no-such-container"], "verify": ["verify", "--all"]}
    args["gc"] = ["gc", "--dry-run"]
    extra = [] if command == "ls" else ["-l", "swift://no-such-container"]
    result = cli(*args[command], *extra, env=env)
    assert_one_line_error(result, "swift://no-such-container: no such container")


@pytest.mark.sftp
@pytest.mark.parametrize("command", ["ls", "verify", "gc"])
def test_a_missing_sftp_directory_is_not_an_empty_registry(
    cli, sshd_service, tmp_path: Path, command
) -> None:
    missing = tmp_path / "no-such-dir"
    url = f"sftp://{sshd_service.username}@{sshd_service.host}:{sshd_service.port}{missing}"
    env = {
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd_service.known_hosts),
        "REGTOOL_SFTP_IDENTITY": str(sshd_service.key_path),
    }
    args = {"ls": ["ls", url], "verify": ["verify", "--all", "-l", url]}
    args["gc"] = ["gc", "--dry-run", "-l", url]
    assert_one_line_error(cli(*args[command], env=env), f"{missing}: no such directory")


@pytest.mark.parametrize("command", [["ls"], ["verify", "--all", "-l"], ["gc", "--dry-run", "-l"]])
def test_a_reader_gone_away_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    """`regtool ls | head -1`: when the reader of stdout goes away, stop as Unix tools do,
    without a message, exit 141 (128 + SIGPIPE). The read end is closed before regtool
    starts, so its first write meets the broken pipe whatever the timing."""
    HandStore(tmp_path).image("app", "1")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("regtool")), *command, str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")


def test_registries_one_directory_down_are_named_not_picked(cli, tmp_path: Path) -> None:
    """Two stores side by side under a directory: neither is taken for the whole (each
    command would act on the first alone); the error names the paths to give."""
    for name in ("alpha", "zeta"):
        (tmp_path / name / "docker/registry/v2/repositories").mkdir(parents=True)
    result = cli("ls", str(tmp_path))
    assert_one_line_error(result, "distribution's tree lies under alpha/, zeta/")
    assert f"({tmp_path}/alpha)" in result.stderr
