"""LOCATION strings, distribution config files and credentials -> a storage `Driver`.

    /path, file:///path                     a local directory
    sftp://[user[:password]@]host[:port]/path   absolute path; /~/x is relative to login
    swift://container[/prefix]              credentials from ST_* or OS_* variables
    docker_registry                         a local directory if one exists, else a Swift
                                            container when Swift credentials are set
    (nothing)                               the embedded default store of `regtool serve`

Secrets (passwords, keys, tokens) never appear in `Location.redacted()` or in any error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from regtool.errors import LocationError, UsageError
from regtool.storage.base import Driver
from regtool.storage.retry import RetryingDriver

if TYPE_CHECKING:
    from regtool.config import ConfigDocument

ENV_LOCATION = "REGTOOL_LOCATION"
SCHEMES = ("file", "sftp", "swift")
# urlsplit drops tabs and newlines from a URL silently, and int() takes any Unicode digit.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]", re.ASCII)
_PORT_RE = re.compile(r"[0-9]{1,5}", re.ASCII)


def default_store_path(env: Mapping[str, str] | None = None) -> Path:
    """The embedded default store: `$XDG_DATA_HOME/regtool/registry`."""
    env = os.environ if env is None else env
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "regtool" / "registry"


@dataclass(frozen=True)
class SftpOptions:
    identity: str | None = None
    known_hosts: str | None = None
    host_key_policy: str = "strict"


@dataclass(frozen=True)
class Location:
    scheme: str  # file | sftp | swift
    path: str = ""  # local directory, SFTP root, or Swift prefix
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    container: str | None = None
    swift: Any = field(default=None, repr=False)  # SwiftCredentials
    sftp: SftpOptions = field(default_factory=SftpOptions)
    segment_size: int | None = None
    default: bool = False  # the embedded store, since nothing was given
    #: What reading a config file's storage found to warn about (a key regtool does not
    #: know, such as a misspelt `storage.swift.prefx`): the command shows them.
    warnings: tuple[str, ...] = ()

    def redacted(self) -> str:
        """The location for people to read: never a password, key or token."""
        if self.scheme == "file":
            return self.path
        if self.scheme == "sftp":
            user = f"{self.user}@" if self.user else ""
            port = f":{self.port}" if self.port else ""
            path = self.path if self.path.startswith("/") else f"/~/{self.path}"
            return f"sftp://{user}{self.host}{port}{path}"
        prefix = f"/{self.path}" if self.path else ""
        return f"swift://{self.container}{prefix}"

    def check_exists(self, driver: Driver) -> None:
        """`LocationError` naming the place unless the LOCATION's root exists (a
        directory, a Swift container), `driver` being its open driver: a mistyped
        LOCATION must not read as an empty registry."""
        if self.scheme != "file":
            if not driver.root_exists():
                what = "container" if self.scheme == "swift" else "directory"
                raise LocationError(f"{self.redacted()}: no such {what}")
            return
        path = Path(self.path)
        if path.is_dir():
            return
        if path.exists():
            raise LocationError(f"{self.path} is not a directory")
        if self.default:
            raise LocationError(
                f"{self.path} does not exist: it is the default store, which "
                "`regtool serve` creates; give a LOCATION to use another"
            )
        raise LocationError(f"{self.path}: no such directory")

    def open(self) -> Driver:
        """Connect to the storage. Errors are `StorageError`s from the driver."""
        return RetryingDriver(self._open_raw())

    def _open_raw(self) -> Driver:
        if self.scheme == "file":
            from regtool.storage.local import LocalDriver

            return LocalDriver(self.path)
        if self.scheme == "sftp":
            from regtool.storage.sftp import SftpDriver

            return SftpDriver(
                self.host or "",
                self.path,
                port=self.port or 22,
                username=self.user,
                password=self.password,
                key_filename=self.sftp.identity,
                known_hosts=self.sftp.known_hosts,
                host_key_policy=self.sftp.host_key_policy,
            )
        from regtool.storage.swift import SwiftDriver

        return SwiftDriver(
            self.swift, self.container or "", self.path, segment_size=self.segment_size
        )


def parse_location(
    text: str | None,
    *,
    config: str | Path | None = None,
    identity: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Location:
    """Turn what the user gave (LOCATION, `--config`, or nothing) into a `Location`."""
    env = os.environ if env is None else env
    if text and config:
        raise LocationError("give either a LOCATION or --config, not both")
    if config:
        return location_from_config(Path(config), env)
    text = text or env.get(ENV_LOCATION) or ""
    if not text:
        return Location("file", str(default_store_path(env)), default=True)
    sftp = SftpOptions(
        identity=identity or env.get("REGTOOL_SFTP_IDENTITY"),
        known_hosts=env.get("REGTOOL_SFTP_KNOWN_HOSTS"),
        host_key_policy=env.get("REGTOOL_SFTP_HOST_KEY_POLICY", "strict"),
    )
    if sftp.host_key_policy not in ("strict", "accept-new", "ignore"):
        raise LocationError(
            "REGTOOL_SFTP_HOST_KEY_POLICY must be strict, accept-new or ignore, "
            f"not {sftp.host_key_policy!r}"
        )
    if "://" in text:
        return _parse_url(text, env, sftp)
    if text.startswith(("/", ".", "~")) or Path(text).is_dir():
        return Location("file", str(Path(text).expanduser()))
    container, _, prefix = text.partition("/")
    if swift_credentials_present(env):
        return Location(
            "swift", prefix.strip("/"), container=container, swift=swift_credentials(env)
        )
    raise LocationError(
        f"{text!r} is neither a local directory nor usable as a Swift container: "
        "no such directory, and no Swift credentials are set "
        "(ST_AUTH/ST_USER/ST_KEY or OS_AUTH_URL/OS_USERNAME/OS_PASSWORD)"
    )


def _parse_url(text: str, env: Mapping[str, str], sftp: SftpOptions) -> Location:
    if _CONTROL_RE.search(text):
        raise LocationError("LOCATION contains a control character (a newline or a tab?)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise LocationError(
            f"unknown scheme {scheme!r} in LOCATION: use a path, file://, sftp:// or swift://"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise LocationError("file:// LOCATIONs name a local path: file:///path")
        return Location("file", unquote(parts.path) or "/")
    if scheme == "swift":
        if not parts.netloc:
            raise LocationError("swift:// needs a container: swift://container[/prefix]")
        if not swift_credentials_present(env):
            raise LocationError(
                "no Swift credentials: set ST_AUTH, ST_USER and ST_KEY (v1 auth), or "
                "OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (Keystone)"
            )
        return Location(
            "swift",
            unquote(parts.path).strip("/"),
            container=unquote(parts.netloc),
            swift=swift_credentials(env),
        )
    if not parts.hostname:
        raise LocationError("sftp:// needs a host: sftp://user@host[:port]/path")
    _, colon, port_text = parts.netloc.rpartition("@")[2].rpartition("]")[2].rpartition(":")
    if colon and not (_PORT_RE.fullmatch(port_text) and 0 < int(port_text) < 65536):
        raise LocationError("the port in an sftp:// LOCATION must be a number from 1 to 65535")
    port = int(port_text) if colon else None
    path = unquote(parts.path)
    if path in ("", "/"):
        root = "/"
    elif path == "/~" or path.startswith("/~/"):
        root = path[3:]  # relative to the login directory
    else:
        root = path.rstrip("/")
    password = unquote(parts.password) if parts.password else env.get("REGTOOL_SFTP_PASSWORD")
    return Location(
        "sftp",
        root,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=password or None,
        sftp=sftp,
    )


def swift_credentials_present(env: Mapping[str, str]) -> bool:
    return bool(
        env.get("ST_AUTH")
        or env.get("OS_AUTH_URL")
        or (env.get("OS_STORAGE_URL") and env.get("OS_AUTH_TOKEN"))
    )


def swift_credentials(env: Mapping[str, str]) -> Any:
    """Credentials the way the `swift` CLI reads them from the environment."""
    from regtool.storage.swift import SwiftCredentials

    if env.get("OS_STORAGE_URL") and env.get("OS_AUTH_TOKEN"):
        return SwiftCredentials(storage_url=env["OS_STORAGE_URL"], token=env["OS_AUTH_TOKEN"])
    if env.get("ST_AUTH"):
        return SwiftCredentials(
            auth_url=env["ST_AUTH"],
            user=env.get("ST_USER"),
            key=env.get("ST_KEY"),
            auth_version=env.get("ST_AUTH_VERSION", "1"),
        )
    auth_url = env["OS_AUTH_URL"]
    version = env.get("OS_IDENTITY_API_VERSION") or env.get("OS_AUTH_VERSION")
    if not version:
        version = "3" if auth_url.rstrip("/").endswith("v3") else "2"
    return SwiftCredentials(
        auth_url=auth_url,
        user=env.get("OS_USERNAME"),
        key=env.get("OS_PASSWORD"),
        auth_version=version.split(".")[0],
        project_name=env.get("OS_PROJECT_NAME") or env.get("OS_TENANT_NAME"),
        project_id=env.get("OS_PROJECT_ID") or env.get("OS_TENANT_ID"),
        user_domain_name=env.get("OS_USER_DOMAIN_NAME"),
        project_domain_name=env.get("OS_PROJECT_DOMAIN_NAME"),
        region_name=env.get("OS_REGION_NAME"),
    )


def location_from_config(path: Path, env: Mapping[str, str]) -> Location:
    """The storage of a distribution configuration file (`config.yml`), with
    distribution's `REGISTRY_*` environment overrides applied (`regtool.config`); the
    warnings about its storage section in `Location.warnings`."""
    from regtool.config import load_config  # only --config needs it

    try:
        config = load_config(path, env)
        found = location_from_document(config)
    except LocationError:
        raise
    except UsageError as e:
        raise LocationError(str(e)) from None
    about_storage = ("storage", "REGISTRY_STORAGE")
    return replace(found, warnings=tuple(w for w in config.warnings if w.startswith(about_storage)))


def location_from_document(config: ConfigDocument) -> Location:
    """The storage a checked configuration document names: `storage.filesystem`,
    `storage.swift` (distribution's parameters) or `storage.sftp` (regtool's own:
    `host`, `port`, `username`, `password`, `path`, `identityfile`, `knownhosts`,
    `hostkeypolicy`). `LocationError` naming the key for a missing or unknown driver."""
    source = config.source or "the config"
    storage = config.section("storage")
    drivers = [k for k in storage if k not in ("cache", "delete", "maintenance", "redirect")]
    if not drivers:
        raise LocationError(f"{source} has no storage section")
    name = str(drivers[0])
    if name == "filesystem":
        return Location(
            "file", config.text("storage.filesystem.rootdirectory") or "/var/lib/registry"
        )
    if name == "sftp":
        return _sftp_from_config(config)
    if name != "swift":
        raise LocationError(
            f"storage driver {name!r} in {source} is not supported: regtool reads filesystem, "
            "swift and sftp"
        )
    return _swift_from_config(config)


def _sftp_from_config(config: ConfigDocument) -> Location:
    def text(key: str) -> str | None:
        return config.text(f"storage.sftp.{key}")

    host = text("host")
    if not host:
        raise LocationError(f"{config.where('storage.sftp.host')} is missing")
    port = config.number("storage.sftp.port", "weakint")
    if port is not None and not 0 < port < 65536:
        raise LocationError(f"{config.where('storage.sftp.port')} must be from 1 to 65535")
    policy = text("hostkeypolicy") or "strict"
    if policy not in ("strict", "accept-new", "ignore"):
        raise LocationError(
            f"{config.where('storage.sftp.hostkeypolicy')} must be strict, accept-new or ignore"
        )
    return Location(
        "sftp",
        text("path") or "",
        host=host,
        port=port,
        user=text("username"),
        password=text("password"),
        sftp=SftpOptions(text("identityfile"), text("knownhosts"), policy),
    )


def _swift_from_config(config: ConfigDocument) -> Location:
    from regtool.storage.swift import SwiftCredentials

    def text(key: str) -> str | None:
        return config.text(f"storage.swift.{key}") or None

    for required in ("authurl", "username", "password", "container"):
        if not text(required):
            raise LocationError(f"{config.where('storage.swift.' + required)} is missing")
    version = text("authversion") or ""
    auth_url = str(text("authurl"))
    if not version:
        version = (
            "3"
            if auth_url.rstrip("/").endswith("v3")
            else ("1" if "v1" in auth_url or "auth/v1" in auth_url else "2")
        )
    domain = text("domain")
    credentials = SwiftCredentials(
        auth_url=auth_url,
        user=text("username"),
        key=text("password"),
        auth_version=version,
        project_name=text("tenant"),
        project_id=text("tenantid"),
        user_domain_name=domain,
        project_domain_name=domain,
        region_name=text("region"),
        insecure=config.flag("storage.swift.insecureskipverify", "weakbool"),
    )
    chunk = config.number("storage.swift.chunksize", "weakint")
    if chunk is not None and chunk <= 0:
        raise LocationError(f"{config.where('storage.swift.chunksize')} must be a number of bytes")
    return Location(
        "swift",
        (text("prefix") or "").strip("/"),
        container=str(text("container")),
        swift=credentials,
        segment_size=chunk or None,
    )
