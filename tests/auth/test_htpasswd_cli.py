"""`regtool htpasswd add/rm` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import bcrypt
from typer.testing import CliRunner, Result

from regtool.cli.main import app
from regtool.server.auth.htpasswd import read


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(app, ["htpasswd", *args], input=input, env=env, catch_exceptions=False)


def test_add_prompts_twice_and_writes_bcrypt(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    result = run("add", "alice", "-f", str(path), input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.stderr
    assert f"added alice in {path}" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    hashed = read(path)["alice"]
    assert hashed.startswith("$2b$10$") and bcrypt.checkpw(b"s3cret", hashed.encode())
    assert path.stat().st_mode & 0o777 == 0o600


def test_password_stdin_update_and_rm(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    env = {"REGTOOL_HTPASSWD": str(path)}
    assert run("add", "alice", "--password-stdin", input="one\n", env=env).exit_code == 0
    assert run("add", "bob", "--password-stdin", input="two\n", env=env).exit_code == 0
    result = run("add", "alice", "--password-stdin", input="three\n", env=env)
    assert "updated alice" in result.stderr
    entries = read(path)
    assert bcrypt.checkpw(b"three", entries["alice"].encode())
    assert run("rm", "alice", env=env).exit_code == 0
    assert set(read(path)) == {"bob"}
    result = run("rm", "alice", env=env)
    assert result.exit_code == 2
    assert result.stderr == f"error: alice is not in {path}\n"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    for name in ("al:ice", "al ice", "#alice", ""):
        result = run("add", name, "-f", str(path), "--password-stdin", input="pw\n")
        assert result.exit_code == 2, name
        assert result.stderr.startswith("error: user name")
    result = run("add", "alice", "-f", str(path), "--password-stdin", input="\n")
    assert result.stderr == "error: the password must not be empty\n"
    result = run("rm", "alice", "-f", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert not path.exists()
    path.write_text("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    result = run("add", "alice", "-f", str(path), "--password-stdin", input="pw\n")
    assert result.exit_code == 2
    assert "line 1" in result.stderr
    assert path.read_text() == "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"


def test_a_password_bcrypt_would_cut_or_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    result = run("add", "alice", "-f", str(path), "--password-stdin", input="p" * 73 + "\n")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the password is longer than 72 bytes; bcrypt would ignore the rest\n"
    )
    assert run("add", "alice", "-f", str(path), "--password-stdin", input="p" * 72).exit_code == 0
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["htpasswd", "add", "bob", "-f", str(path), "--password-stdin"],
        input=b"p\xe9\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert result.stderr == "error: the password is not UTF-8 text\n"
    assert "bob" not in path.read_text()
