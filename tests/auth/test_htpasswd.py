"""htpasswd files: bcrypt only, named lines for the rest; re-read on change; a password
that verified is remembered, a wrong one never."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import bcrypt
import pytest
from pytest_mock import MockerFixture

from regtool.server.auth.htpasswd import (
    Htpasswd,
    HtpasswdInvalid,
    hash_password,
    parse,
    write_entry,
)

ALICE = hash_password("secret", cost=4)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("bob:$apr1$x8Tr1t0n$yZ7FCsAXRO0NhLcD2C7Fk/", "not a bcrypt hash"),  # Apache MD5
        ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "not a bcrypt hash"),
        ("bob:abJnggxhB/yWI", "not a bcrypt hash"),  # crypt(3)
        ("bob:plain", "not a bcrypt hash"),
        ("no colon here", "not USER:HASH"),
        (":$2y$05$abc", "not USER:HASH"),
        ("alice:ALICE", "'alice' is given twice"),  # the same entry again
    ],
)
def test_other_hash_kinds_are_refused_naming_the_line(line: str, why: str) -> None:
    text = f"# users\n\nalice:{ALICE}\n{line.replace('ALICE', ALICE)}\n"
    with pytest.raises(HtpasswdInvalid) as e:
        parse(text, "/etc/regtool/htpasswd")
    assert str(e.value).startswith("/etc/regtool/htpasswd line 4: ")
    assert why in str(e.value)


def test_bcrypt_variants_comments_and_blank_lines() -> None:
    bob = "$2y$05$abcdefghijklmnopqrstuu5Ue2TbSkxLsd2Ii1fUWuXMKkLsw7Ds."
    text = f"# a comment\n\nalice:{ALICE}\n  bob:{bob}\n"
    assert set(parse(text, "f")) == {"alice", "bob"}


def test_write_entry_keeps_other_lines_and_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"# keep me\nalice:{ALICE}\n")
    path.chmod(0o640)
    assert write_entry(path, "bob", ALICE) is False
    assert write_entry(path, "alice", None) is True
    assert path.read_text() == f"# keep me\nbob:{ALICE}\n"
    assert path.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "new"
    write_entry(fresh, "carol", ALICE)
    assert fresh.stat().st_mode & 0o777 == 0o600


def test_write_entry_never_rewrites_a_file_it_could_not_serve(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    with pytest.raises(HtpasswdInvalid, match="line 1"):
        write_entry(path, "alice", ALICE)
    assert path.read_text() == "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"


def test_a_verified_password_is_remembered_a_wrong_one_never(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    path = tmp_path / "htpasswd"
    write_entry(path, "alice", ALICE)
    users = Htpasswd(path)
    checks = mocker.spy(bcrypt, "checkpw")
    for _ in range(3):
        assert users.verify("alice", "wrong") is False
        assert users.remembered("alice", "wrong") is False
    assert checks.call_count == 3  # every wrong attempt pays bcrypt
    assert users.remembered("alice", "secret") is False
    assert users.verify("alice", "secret") is True
    assert users.remembered("alice", "secret") is True
    assert users.verify("alice", "secret") is True
    assert checks.call_count == 4  # the right one once
    assert users.verify("alice", "wrong") is False  # still refused after a success
    assert users.remembered("alice", "wrong") is False
    assert users.verify("nobody", "secret") is False  # costs a bcrypt check too
    assert checks.call_count == 6


def test_the_file_is_re_read_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "htpasswd"
    write_entry(path, "alice", ALICE)
    users = Htpasswd(path)
    assert users.verify("alice", "secret")
    write_entry(path, "bob", hash_password("hunter2", cost=4))
    assert users.verify("bob", "hunter2")
    # A new password for alice: the one remembered is no longer hers.
    write_entry(path, "alice", hash_password("changed", cost=4))
    assert users.remembered("alice", "secret") is False
    assert not users.verify("alice", "secret")
    assert users.verify("alice", "changed")
    # A broken file is logged; the users read before stay in force.
    text = path.read_text()
    path.write_text(text + "mallory:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    with caplog.at_level(logging.ERROR):
        assert users.verify("bob", "hunter2")
    assert "line 3" in caplog.text and "stays in force" in caplog.text
    os.unlink(path)
    assert users.verify("bob", "hunter2")


def test_a_file_that_cannot_be_used_at_start_up_names_itself(tmp_path: Path) -> None:
    with pytest.raises(HtpasswdInvalid, match=r"cannot read htpasswd file .*missing"):
        Htpasswd(tmp_path / "missing")


def test_passwords_longer_than_bcrypt_reads(tmp_path: Path) -> None:
    """bcrypt reads 72 bytes: a longer password set by Apache's htpasswd or Go (cut to 72)
    logs in, as with distribution; for an unknown user it is a plain refusal, not an
    error that would tell unknown users from known ones."""
    path = tmp_path / "htpasswd"
    long = "x" * 80
    cut = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"alice:{cut}\n")
    users = Htpasswd(path)
    assert users.verify("alice", long)
    assert not users.verify("alice", "x" * 71)
    assert not users.verify("zed", long)
