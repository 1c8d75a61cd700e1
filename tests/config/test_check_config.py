"""`regtool serve --check-config --config FILE`: one warning per key regtool does not
know or does not act on, one error line (exit 2) naming a key with a wrong value, and
the effective settings with every secret hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from regtool.server.settings import ServerSettings
from tests.clirunner import Cli
from tests.services.certs import self_signed

GOOD = """\
version: 0.1
log:
  level: info
  formatter: text
storage:
  swift:
    authurl: http://127.0.0.1:1/auth/v1.0
    username: test:tester
    password: SwiftPassw0rd
    container: docker_registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
  secret: HttpSecr3t
  headers:
    X-Content-Type-Options: [nosniff]
notifications:
  endpoints:
    - name: listener
      url: https://hooks.example.com/event
      headers:
        Authorization: [Bearer HookT0ken]
      timeout: 500ms
"""


def check(cli: Cli, tmp_path: Path, text: str, env: dict[str, str] | None = None) -> object:
    cfg = tmp_path / "config.yml"
    cfg.write_text(text)
    return cli("serve", "--check-config", "--config", str(cfg), env=env)


def test_check_config_prints_the_settings_with_secrets_hidden(cli: Cli, tmp_path: Path) -> None:
    result = check(cli, tmp_path, GOOD, env={"REGISTRY_HTTP_ADDR": "0.0.0.0:6000"})
    assert result.exit_code == 0, result.stderr
    for secret in ("SwiftPassw0rd", "HttpSecr3t", "HookT0ken"):
        assert secret not in result.stdout + result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["storage"] == "swift://docker_registry"
    assert shown["http"]["addr"] == "0.0.0.0:6000"
    assert shown["http"]["secret"] == "<redacted>"
    assert shown["delete_enabled"] is True
    endpoint = shown["notifications"]["endpoints"][0]
    assert endpoint["headers"] == {"Authorization": ["<redacted>"]}
    assert endpoint["url"] == "https://hooks.example.com/event"
    assert shown["environment"] == {"http.addr": "REGISTRY_HTTP_ADDR"}
    assert result.stderr == ""


def test_check_config_hides_the_password_of_a_url(cli: Cli, tmp_path: Path) -> None:
    """distribution's users give a webhook Basic auth in its URL; a token realm may carry
    a key in its query."""
    text = GOOD.replace(
        "url: https://hooks.example.com/event", "url: https://hook:Hookp4ss@hooks.example.com/e"
    ) + (
        "auth:\n  token:\n    realm: https://auth.example/token?api_key=Re4lmKey\n"
        "    service: registry\n    issuer: auth\n    rootcertbundle: BUNDLE\n"
    ).replace("BUNDLE", str(self_signed(tmp_path, "signer").cert))
    result = check(cli, tmp_path, text)
    assert result.exit_code == 0, result.stderr
    for secret in ("Hookp4ss", "Re4lmKey"):
        assert secret not in result.stdout + result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["notifications"]["endpoints"][0]["url"] == "https://***@hooks.example.com/e"


@pytest.mark.parametrize(
    "extra, warning",
    [
        ("redis:\n  addr: localhost:6379\n", "redis: regtool does not act on this key"),
        ("middleware:\n  registry: []\n", "middleware: regtool does not act on this key"),
        ("reporting:\n  bugsnag: {apikey: k}\n", "reporting: regtool does not act on this key"),
        ("proxy:\n  remoteurl: https://registry-1.docker.io\n", "proxy: regtool does not act"),
        ("compatibility: {schema1: {enabled: true}}\n", "compatibility: regtool does not act"),
        ("policy: {repository: {classes: [image]}}\n", "policy: regtool does not act"),
        ("htpp:\n  addr: :5000\n", "htpp: unknown key; ignored"),
        ("health:\n  file: [{file: /tmp/x}]\n", "health.file: regtool does not act on this key"),
        ("catalog: {maxentires: 50}\n", "catalog.maxentires: unknown key; ignored"),
        ("log:\n  hooks: []\n", "log.hooks: regtool does not act on this key"),
        ("log:\n  levle: debug\n", "log.levle: unknown key; ignored"),
    ],
)
def test_each_key_regtool_does_not_act_on_is_one_warning(
    cli: Cli, tmp_path: Path, extra: str, warning: str
) -> None:
    text = GOOD.replace("log:\n  level: info\n  formatter: text\n", "") + extra
    result = check(cli, tmp_path, text)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and warning in lines[0], result.stderr
    assert lines[0].startswith("regtool serve: warning: ")


@pytest.mark.parametrize(
    "old, new, warning",
    [
        (
            "    container: docker_registry\n",
            "    container: c\n    tempurlmethods: [GET]\n",
            "storage.swift.tempurlmethods: regtool does not act",
        ),
        (
            "    container: docker_registry\n",
            "    container: c\n    contianer: c\n",
            "storage.swift.contianer: unknown key",
        ),
        (
            "  delete:\n",
            "  cache:\n    blobdescriptor: redis\n  delete:\n",
            "storage.cache: regtool does not act",
        ),
        (
            "version: 0.1\n",
            "version: 0.1\nauth:\n  token: {realm: https://a/token, service: s, issuer: i,"
            " rootcertbundle: BUNDLE, autoredirect: true}\n",
            "auth.token.autoredirect: regtool does not act",
        ),
    ],
)
def test_warnings_inside_sections(
    cli: Cli, tmp_path: Path, old: str, new: str, warning: str
) -> None:
    new = new.replace("BUNDLE", str(self_signed(tmp_path, "signer").cert))
    result = check(cli, tmp_path, GOOD.replace(old, new))
    assert result.exit_code == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if warning in line], result.stderr


@pytest.mark.parametrize(
    "old, new, error",
    [
        (
            "  addr: 127.0.0.1:5000\n",
            "  addr: 127.0.0.1:5000\n  relativeurls: sure\n",
            "http.relativeurls in .*: 'sure' is not true or false",
        ),
        (
            "  addr: 127.0.0.1:5000\n",
            "  addr: 127.0.0.1:5000\n  draintimeout: 10x\n",
            "http.draintimeout in .*: '10x' is not a duration",
        ),
        (
            "  addr: 127.0.0.1:5000\n",
            "  addr: 127.0.0.1:5000\n  net: udp\n",
            "http.net in .*: 'udp' is not tcp or unix",
        ),
        (
            "  addr: 127.0.0.1:5000\n",
            "  addr: 127.0.0.1:5000\n  host: registry.example.com\n",
            "http.host in .* is not an absolute URL",
        ),
        (
            "  addr: 127.0.0.1:5000\n",
            "  addr: 127.0.0.1:5000\n  prefix: registry\n",
            "http.prefix in .* must start with /",
        ),
        ("  addr: 127.0.0.1:5000\n", "  addr: nowhere\n", "--addr must be HOST:PORT"),
        (
            "    X-Content-Type-Options: [nosniff]\n",
            "    X-Content-Type-Options: nosniff\n",
            r"http.headers.X-Content-Type-Options in .* must be a list",
        ),
        (
            "  formatter: text\n",
            "  formatter: xml\n",
            "log.formatter in .*: 'xml' is not text, json or logstash",
        ),
        (
            "  level: info\n",
            "  level: loud\n",
            "log.level in .*: 'loud' is not one of error, warn, info, debug",
        ),
        (
            "    enabled: true\n",
            "    enabled: yes please\n",
            "storage.delete.enabled in .*: 'yes please' is not true or false",
        ),
        (
            "    container: docker_registry\n",
            "    container: c\n    chunksize: big\n",
            "storage.swift.chunksize in .*: 'big' is not a whole number",
        ),
        (
            "      timeout: 500ms\n",
            "      timeout: soon\n",
            r"notifications.endpoints\[0\].timeout in .*: 'soon' is not a duration",
        ),
        ("version: 0.1\n", "version: 0.2\n", "version in .*: '0.2' is not 0.1"),
        (
            "  delete:\n",
            "  filesystem: {rootdirectory: /x}\n  delete:\n",
            "storage in .* must name one choice, not swift, filesystem",
        ),
        ("log:\n", "log: verbose\nx:\n", "log in .* must be a mapping"),
        (
            "version: 0.1\n",
            "version: 0.1\ncatalog: {maxentries: lots}\n",
            "catalog.maxentries in .*: 'lots' is not a whole number",
        ),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_key(
    cli: Cli, tmp_path: Path, old: str, new: str, error: str
) -> None:
    assert old in GOOD
    result = check(cli, tmp_path, GOOD.replace(old, new))
    assert result.exit_code == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert len(lines) == 1, result.stderr
    assert pytest.importorskip("re").search(error, lines[0]), lines[0]
    assert result.stdout == ""
    assert "SwiftPassw0rd" not in result.stderr


def test_catalog_maxentries_is_acted_on(cli: Cli, tmp_path: Path) -> None:
    result = check(cli, tmp_path, GOOD + "catalog: {maxentries: 50}\n")
    assert result.exit_code == 0 and result.stderr == "", result.stderr
    assert (
        ServerSettings.from_config(
            yaml.safe_load(GOOD + "catalog: {maxentries: 50}\n")
        ).catalog_max_entries
        == 50
    )
    assert (
        ServerSettings.from_config(
            yaml.safe_load(GOOD + "catalog: {maxentries: 0}\n")
        ).catalog_max_entries
        == 1000
    )
    assert ServerSettings.from_config(yaml.safe_load(GOOD)).catalog_max_entries == 1000


def test_sftp_storage_section(cli: Cli, tmp_path: Path) -> None:
    text = (
        "version: 0.1\nstorage:\n  sftp:\n    host: files.example.com\n    port: 2222\n"
        "    username: reg\n    password: SftpPassw0rd\n    path: /srv/registry\n"
        "    hostkeypolicy: accept-new\n"
    )
    result = check(cli, tmp_path, text)
    assert result.exit_code == 0, result.stderr
    assert (
        yaml.safe_load(result.stdout)["storage"] == "sftp://reg@files.example.com:2222/srv/registry"
    )
    assert "SftpPassw0rd" not in result.stdout
    result = check(cli, tmp_path, text.replace("accept-new", "trusting"))
    assert result.exit_code == 2
    assert "storage.sftp.hostkeypolicy in" in result.stderr


def test_other_commands_read_the_storage_as_serve_does(cli: Cli, tmp_path: Path) -> None:
    """`ls --config` takes the store from the same document: REGISTRY_STORAGE_* applied,
    a misspelt storage key one warning (a key elsewhere is serve's business)."""
    store = tmp_path / "store"
    store.mkdir()
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "version: 0.1\nredis: {addr: r:6379}\nstorage:\n  filesystem:\n"
        "    rootdirectory: /nonexistent\n    rootdirecotry: /x\n"
    )
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(store)}
    result = cli("ls", "--config", str(cfg), "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: storage.filesystem.rootdirecotry: unknown key; ignored"
    ]


@pytest.mark.parametrize(
    "auth, error",
    [
        ("htpasswd: {realm: r, path: MISSING}", "cannot read htpasswd file"),
        ("htpasswd: {realm: r, path: SHA}", "is not a bcrypt hash"),
        (
            "token: {realm: https://a/t, service: s, issuer: i, rootcertbundle: NOTPEM}",
            "no PEM certificates",
        ),
    ],
    ids=["htpasswd-missing", "htpasswd-not-bcrypt", "bundle-not-pem"],
)
def test_check_config_refuses_what_serve_would(
    cli: Cli, tmp_path: Path, auth: str, error: str
) -> None:
    """A file the server could not use fails the check as it would fail the start."""
    (tmp_path / "sha").write_text("x:{SHA}abc\n")
    (tmp_path / "notpem").write_text("not a certificate\n")
    paths = {"MISSING": tmp_path / "missing", "SHA": tmp_path / "sha"}
    paths["NOTPEM"] = tmp_path / "notpem"
    for word, path in paths.items():
        auth = auth.replace(word, str(path))
    text = f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path}}}\nauth:\n  {auth}\n"
    result = check(cli, tmp_path, text)
    assert result.exit_code == 2, result.stdout
    assert error in result.stderr
