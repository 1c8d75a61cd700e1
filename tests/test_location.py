from __future__ import annotations

from pathlib import Path

import pytest

from regtool.errors import LocationError
from regtool.location import default_store_path, parse_location

SWIFT_ENV = {
    "ST_AUTH": "https://orbit.example.com/v1/acc-xxxxx",
    "ST_USER": "cli-xxxxx",
    "ST_KEY": "s3cr3t-key",
}


def test_paths_and_file_urls(tmp_path: Path) -> None:
    assert parse_location(str(tmp_path), env={}).path == str(tmp_path)
    assert parse_location(f"file://{tmp_path}", env={}).path == str(tmp_path)
    loc = parse_location(None, env={"XDG_DATA_HOME": str(tmp_path)})
    assert loc.scheme == "file"
    assert loc.path == str(tmp_path / "regtool" / "registry")
    assert default_store_path({"XDG_DATA_HOME": "/d"}) == Path("/d/regtool/registry")
    assert parse_location(None, env={"REGTOOL_LOCATION": str(tmp_path)}).path == str(tmp_path)


def test_sftp_urls() -> None:
    loc = parse_location("sftp://cli-xxxxx:pa%3Ass@sftp.example.com:2222/docker_registry", env={})
    assert (loc.scheme, loc.host, loc.port, loc.user) == (
        "sftp",
        "sftp.example.com",
        2222,
        "cli-xxxxx",
    )
    assert loc.path == "/docker_registry"
    assert loc.password == "pa:ss"
    assert "pa" not in loc.redacted() and "pa:ss" not in repr(loc)
    assert loc.redacted() == "sftp://cli-xxxxx@sftp.example.com:2222/docker_registry"
    assert parse_location("sftp://h/~/x/y", env={}).path == "x/y"
    assert parse_location("sftp://h/srv/registry/", env={}).path == "/srv/registry"
    env_pw = parse_location("sftp://u@h/x", env={"REGTOOL_SFTP_PASSWORD": "from-env"})
    assert env_pw.password == "from-env"


def test_swift_urls_and_bare_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = parse_location("swift://docker_registry/docker-registry", env=SWIFT_ENV)
    assert (loc.scheme, loc.container, loc.path) == ("swift", "docker_registry", "docker-registry")
    assert loc.swift.auth_url == SWIFT_ENV["ST_AUTH"] and loc.swift.auth_version == "1"
    assert "s3cr3t" not in loc.redacted() and "s3cr3t" not in repr(loc)
    monkeypatch.chdir(tmp_path)
    assert parse_location("docker_registry", env=SWIFT_ENV).scheme == "swift"
    (tmp_path / "docker_registry").mkdir()
    assert parse_location("docker_registry", env=SWIFT_ENV).scheme == "file"


def test_keystone_credentials() -> None:
    env = {
        "OS_AUTH_URL": "https://keystone.example.com/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_PROJECT_NAME": "proj",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "r1",
    }
    creds = parse_location("swift://c", env=env).swift
    assert (creds.auth_version, creds.project_name, creds.user_domain_name, creds.region_name) == (
        "3",
        "proj",
        "Default",
        "r1",
    )
    v2 = parse_location("swift://c", env={**env, "OS_AUTH_URL": "https://k/v2.0"}).swift
    assert v2.auth_version == "2"


@pytest.mark.parametrize(
    "text, words",
    [
        ("s3://bucket", "unknown scheme"),
        ("swift://container", "no Swift credentials"),
        ("swift://", "needs a container"),
        ("sftp:///path", "needs a host"),
        ("sftp://h:notaport/x", "port"),
        ("no_such_dir_here", "neither a local directory"),
    ],
)
def test_bad_locations(
    text: str, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LocationError, match=words):
        parse_location(text, env={})


def test_distribution_config_files(tmp_path: Path) -> None:
    fs = tmp_path / "fs.yml"
    fs.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/reg\n"
        "  delete:\n    enabled: true\n"
    )
    assert parse_location(None, config=fs, env={}).path == "/var/lib/reg"
    sw = tmp_path / "swift.yml"
    sw.write_text(
        "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  swift:\n"
        "    authurl: https://orbit.example.com/v1/acc-x\n    username: cli-x\n"
        "    password: hunter2\n    container: docker_registry\n    prefix: /reg\n"
        "    chunksize: 5242880\n"
    )
    loc = parse_location(None, config=sw, env={})
    assert (loc.container, loc.path, loc.segment_size) == ("docker_registry", "reg", 5242880)
    assert loc.swift.key == "hunter2" and loc.swift.auth_version == "1"
    assert "hunter2" not in loc.redacted()
    overridden = parse_location(
        None, config=sw, env={"REGISTRY_STORAGE_SWIFT_PASSWORD": "from-env"}
    )
    assert overridden.swift.key == "from-env"


@pytest.mark.parametrize(
    "content, words",
    [
        ("storage: [", "not valid YAML"),
        # distribution's YAML parser refuses a key given twice; PyYAML would keep the last
        (
            "storage:\n  filesystem:\n    rootdirectory: /a\n    rootdirectory: /b\n",
            "line 4, column 5: duplicate key rootdirectory",
        ),
        ("version: 0.1\n", "no storage section"),
        ("storage:\n  s3:\n    bucket: b\n", "not supported"),
        ("storage:\n  swift:\n    authurl: http://x\n", "storage.swift.username in .* is missing"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, words: str) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(content)
    with pytest.raises(LocationError, match=words):
        parse_location(None, config=cfg, env={})
    with pytest.raises(LocationError, match="cannot read config"):
        parse_location(None, config=tmp_path / "missing.yml", env={})


@pytest.mark.parametrize(
    "content, where, kind",
    [
        (
            'storage:\n  swift:\n    password: "TopSecretPw99\n    container: x\n',
            "line 5, column 1",
            "found unexpected end of stream",
        ),
        (
            "storage:\n  swift:\n    password: TopSecretPw99: x\n",
            "line 3, column 28",
            "mapping values are not allowed here",
        ),
        (  # PyYAML quotes the character it stopped at: a character of the password
            "storage:\n  swift:\n    password: @TopSecretPw99\n",
            "line 3, column 15",
            "found character ... that cannot start any token",
        ),
        (
            'storage:\n  swift:\n    password: "TopSecret\\qPw99"\n',
            "line 3, column 26",
            "found unknown escape character ...",
        ),
        (
            "storage:\n  swift:\n    password: TopSecretPw99\n   container: x\n",
            "line 4, column 4",
            "expected <block end>, but found '<block mapping start>'",
        ),
    ],
)
def test_a_yaml_error_names_the_place_never_the_text(
    tmp_path: Path, content: str, where: str, kind: str
) -> None:
    """A config holds passwords: a syntax error is one line with file, line, column and
    the kind of error, without the text of the line (PyYAML's message quotes it)."""
    cfg = tmp_path / "config.yml"
    cfg.write_text(content)
    with pytest.raises(LocationError) as caught:
        parse_location(None, config=cfg, env={})
    message = str(caught.value)
    assert message == f"config {cfg} is not valid YAML: {where}: {kind}"
    assert "TopSecret" not in message and "\n" not in message


def test_a_config_that_is_not_utf8_or_not_a_mapping(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_bytes(b"storage:\n  swift:\n    password: Top\xffSecret\n")
    with pytest.raises(LocationError, match=r"is not valid YAML: byte \d+: invalid start byte"):
        parse_location(None, config=cfg, env={})
    cfg.write_text("storage:\n  swift: [TopSecret]\n")
    with pytest.raises(LocationError, match=r"storage\.swift in .* must be a mapping") as caught:
        parse_location(None, config=cfg, env={})
    assert "TopSecret" not in str(caught.value)
