"""What a `regtool serve` is set up to do beyond its storage: where it listens and how
its URLs look (`HttpSettings`), what it logs (`LogSettings`), TLS, authentication,
access rules, and which writes it takes. One object, filled from distribution's
configuration file with its `REGISTRY_*` environment applied (`ServerSettings.from_config`
over a `regtool.config.ConfigDocument`), then from the command's flags
(`ServerSettings.with_flags`: a flag given wins), so all read the same way below."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from regtool.errors import UsageError
from regtool.server.ops_settings import (
    DebugSettings,
    HealthSettings,
    NotificationSettings,
    UploadPurgeSettings,
)

if TYPE_CHECKING:  # imported when a config is read: the CLI starts without YAML
    from regtool.config import ConfigDocument

#: The realm a Basic challenge names when none is configured.
DEFAULT_REALM = "regtool"
DEFAULT_ADDR = "127.0.0.1:5000"
#: How long a stopping server waits for requests under way before it cuts them short,
#: when neither `http.draintimeout` nor `--shutdown-timeout` says (distribution's 0
#: would cut every upload at once; uvicorn's default waits for ever).
DEFAULT_DRAIN = timedelta(seconds=5)
LOG_FORMATTERS = ("text", "json", "logstash")
#: distribution's `catalog.maxentries` when the file sets none (or 0, or less).
DEFAULT_CATALOG_MAX_ENTRIES = 1000


@dataclass(frozen=True)
class HttpSettings:
    """distribution's `http` section: `addr` (HOST:PORT, or a socket path when `net` is
    `unix`), the path `prefix` every route sits under (`/registry`, no trailing slash;
    empty for none), the public base URL `host` that absolute URLs start with (else they
    are built from the request and its `X-Forwarded-*` headers), `relative_urls` (URLs
    in `Location` are paths only), `secret` (distribution signs upload state with it;
    regtool keeps upload state in storage and needs none), `drain_timeout` (how long
    a stopping server waits for requests under way) and `headers` added to every
    response, as (name, value) pairs."""

    addr: str = DEFAULT_ADDR
    net: str = "tcp"
    prefix: str = ""
    host: str | None = None
    relative_urls: bool = False
    secret: str | None = field(default=None, repr=False)
    drain_timeout: timedelta = DEFAULT_DRAIN
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: ConfigDocument) -> HttpSettings:
        """The `http` section; `UsageError` naming the key for `net` other than tcp or
        unix, a `host` that is not an absolute http(s) URL, or a negative drain time."""
        net = (config.text("http.net") or "tcp").lower()
        if net not in ("tcp", "unix"):
            raise UsageError(f"{config.where('http.net')}: {net[:20]!r} is not tcp or unix")
        host = config.text("http.host") or None
        if host is not None:
            parts = urlsplit(host)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UsageError(
                    f"{config.where('http.host')}: {host[:80]!r} is not an absolute URL "
                    "such as https://registry.example.com"
                )
        drain = config.duration("http.draintimeout")
        if drain is not None and drain < timedelta(0):
            raise UsageError(f"{config.where('http.draintimeout')} must not be negative")
        prefix = config.text("http.prefix") or ""
        if prefix and not prefix.startswith("/"):
            raise UsageError(f"{config.where('http.prefix')}: {prefix[:40]!r} must start with /")
        return cls(
            addr=config.text("http.addr") or DEFAULT_ADDR,
            net=net,
            prefix=prefix.rstrip("/"),
            host=host.rstrip("/") if host else None,
            relative_urls=config.flag("http.relativeurls"),
            secret=config.text("http.secret") or None,
            drain_timeout=DEFAULT_DRAIN if drain is None else drain,
            headers=tuple(config.headers("http.headers")),
        )


@dataclass(frozen=True)
class LogSettings:
    """distribution's `log` section: `level` (error, warn, info, debug; the deprecated
    top-level `loglevel` too), `formatter` (text, or json; logstash is written as json),
    `fields` added to every line, and whether each request gets an access line."""

    level: str = "info"
    formatter: str = "text"
    fields: tuple[tuple[str, Any], ...] = ()
    access_log: bool = True

    @classmethod
    def from_config(cls, config: ConfigDocument) -> LogSettings:
        """The `log` section; `UsageError` naming the key for an unknown level or
        formatter."""
        formatter = (config.text("log.formatter") or "text").lower()
        if formatter not in LOG_FORMATTERS:
            raise UsageError(
                f"{config.where('log.formatter')}: {formatter[:20]!r} is not text, json or logstash"
            )
        level = config.get("log.level") or config.get("loglevel") or "info"
        key = "log.level" if config.get("log.level") else "loglevel"
        return cls(
            level=str(config.checked("loglevel", key, level)),
            formatter="json" if formatter == "logstash" else formatter,
            fields=tuple((str(k), v) for k, v in config.section("log.fields").items()),
            access_log=not config.flag("log.accesslog.disabled"),
        )


@dataclass(frozen=True)
class TlsSettings:
    """PEM files: `cert` (the server's certificate, its chain after it), `key`, and the
    CA bundle client certificates must chain to, when clients must present one
    (distribution's `http.tls.clientcas`)."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    minimum: str = "tls1.2"  # or "tls1.3": distribution's `http.tls.minimumtls`


@dataclass(frozen=True)
class TokenSettings:
    """distribution's `auth.token`: where clients get tokens (`realm`), the audience
    tokens must name (`service`), the issuer they must name (`issuer`), and the PEM
    bundle of certificates whose keys sign them (`rootcertbundle`)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class ServerSettings:
    """Everything `create_app` and the command need beyond the store. The defaults are
    an open registry on plain HTTP: no authentication, every write taken. How it is
    operated (debug listener, health checks, notifications, upload purging) comes from
    `ops_settings`, one section each."""

    tls: TlsSettings | None = None
    htpasswd: Path | None = None
    realm: str = DEFAULT_REALM
    token: TokenSettings | None = None
    access: Path | None = None
    read_only: bool = False
    delete_enabled: bool = True
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    debug: DebugSettings = field(default_factory=DebugSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    upload_purging: UploadPurgeSettings = field(default_factory=UploadPurgeSettings)
    #: The largest `n` a `_catalog` request may ask (distribution's `catalog.maxentries`).
    catalog_max_entries: int = DEFAULT_CATALOG_MAX_ENTRIES

    @classmethod
    def from_config(cls, config: ConfigDocument | dict[str, Any]) -> ServerSettings:
        """The settings a distribution config file's top level (`doc`) gives:
        `http.tls.{certificate,key,clientcas,minimumtls}` (tls1.2 or tls1.3),
        `auth.htpasswd.{realm,path}`, `auth.token.{realm,service,issuer,rootcertbundle}`,
        `storage.maintenance.readonly.enabled` and `storage.delete.enabled` (with a
        config file deletes are off unless it enables them, as distribution's default),
        `catalog.maxentries` (absent, 0 or negative: 1000, as distribution).
        `UsageError` for a section of the wrong shape or one left half-filled, and for
        an authentication regtool does not have (`auth.silly`...), which must not leave
        the registry open. The `http` and `log` sections: `HttpSettings.from_config`,
        `LogSettings.from_config`."""
        from regtool.config import ConfigDocument

        if not isinstance(config, ConfigDocument):
            config = ConfigDocument(config)
        doc = config.doc
        http, auth, storage = _section(doc, "http"), _section(doc, "auth"), _section(doc, "storage")
        tls = _section(http, "tls", "http.")
        settings = cls(delete_enabled=False) if doc else cls()
        if tls:
            cas = tls.get("clientcas") or []
            if not isinstance(cas, list) or len(cas) > 1:
                raise UsageError("http.tls.clientcas: regtool serve takes one CA bundle file")
            minimum = str(tls.get("minimumtls") or "tls1.2")
            if minimum not in ("tls1.2", "tls1.3"):
                raise UsageError(
                    f"http.tls.minimumtls {minimum[:20]!r}: regtool serve takes tls1.2 or "
                    "tls1.3 (older versions are broken)"
                )
            settings = settings.with_flags(
                tls_cert=_path(tls, "certificate", "http.tls."),
                tls_key=_path(tls, "key", "http.tls."),
                tls_client_ca=Path(str(cas[0])) if cas else None,
            )
            assert settings.tls is not None
            settings = dataclasses.replace(
                settings, tls=dataclasses.replace(settings.tls, minimum=minimum)
            )
        unknown = sorted(set(auth) - {"htpasswd", "token"})
        if unknown:  # else a registry its operator meant to close would serve everyone
            raise UsageError(
                f"auth.{unknown[0]} in the config file: regtool serve takes auth.htpasswd "
                "or auth.token"
            )
        # A section present but empty (`htpasswd:`, `token: {}`) is refused as half-filled,
        # never taken for no authentication: distribution refuses to start on it too.
        basic = _section(auth, "htpasswd", "auth.")
        if "htpasswd" in auth:
            settings = dataclasses.replace(
                settings,
                htpasswd=_path(basic, "path", "auth.htpasswd."),
                realm=str(basic.get("realm") or DEFAULT_REALM),
            )
        token = _section(auth, "token", "auth.")
        if "token" in auth:
            settings = settings.with_flags(
                token_realm=_text(token, "realm", "auth.token."),
                token_service=_text(token, "service", "auth.token."),
                token_issuer=_text(token, "issuer", "auth.token."),
                token_rootcertbundle=_path(token, "rootcertbundle", "auth.token."),
            )
        maintenance = _section(storage, "maintenance", "storage.")
        readonly = _section(maintenance, "readonly", "storage.maintenance.")
        delete = _section(storage, "delete", "storage.")
        return dataclasses.replace(
            settings,
            read_only=readonly.get("enabled") is True,
            delete_enabled=delete.get("enabled") is True if doc else True,
            http=HttpSettings.from_config(config),
            log=LogSettings.from_config(config),
            catalog_max_entries=max_entries
            if (max_entries := config.number("catalog.maxentries") or 0) > 0
            else DEFAULT_CATALOG_MAX_ENTRIES,
            **_operations_from_config(doc),
        )

    def with_flags(
        self,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_client_ca: Path | None = None,
        htpasswd: Path | None = None,
        access: Path | None = None,
        token_realm: str | None = None,
        token_service: str | None = None,
        token_issuer: str | None = None,
        token_rootcertbundle: Path | None = None,
        read_only: bool = False,
        no_delete: bool = False,
        addr: str | None = None,
        drain_timeout: timedelta | None = None,
        log_level: str | None = None,
    ) -> ServerSettings:
        """These settings with the command's flags on top: a flag given wins over the
        file; `read_only` and `no_delete` only ever take writes away. `UsageError` for
        flags that do not go together (a key without its certificate, half of the token
        settings, Basic and token authentication at once, access rules without a way to
        log in)."""
        tls = self.tls
        if tls_cert or tls_key or tls_client_ca:
            cert = tls_cert or (tls.cert if tls else None)
            key = tls_key or (tls.key if tls else None)
            if cert is None or key is None:
                raise UsageError("TLS needs both --tls-cert and --tls-key")
            client_ca = tls_client_ca or (tls.client_ca if tls else None)
            tls = TlsSettings(cert, key, client_ca, tls.minimum if tls else "tls1.2")
        token = self.token
        given = (token_realm, token_service, token_issuer, token_rootcertbundle)
        if any(given):
            old = token
            fields = ("realm", "service", "issuer", "rootcertbundle")
            values = [
                new or (getattr(old, f) if old else None)
                for new, f in zip(given, fields, strict=True)
            ]
            if not all(values):
                raise UsageError(
                    "token authentication needs --token-realm, --token-service, "
                    "--token-issuer and --token-rootcertbundle"
                )
            token = TokenSettings(
                str(values[0]), str(values[1]), str(values[2]), Path(str(values[3]))
            )
        settings = dataclasses.replace(
            self,
            tls=tls,
            htpasswd=htpasswd or self.htpasswd,
            token=token,
            access=access or self.access,
            read_only=self.read_only or read_only,
            delete_enabled=self.delete_enabled and not no_delete,
            http=dataclasses.replace(
                self.http,
                addr=addr or self.http.addr,
                drain_timeout=self.http.drain_timeout if drain_timeout is None else drain_timeout,
            ),
            log=dataclasses.replace(self.log, level=log_level or self.log.level),
        )
        if settings.htpasswd and settings.token:
            raise UsageError("choose one authentication: htpasswd or token, not both")
        if settings.access and not settings.htpasswd:
            raise UsageError(
                "access rules name htpasswd users: --access needs --htpasswd "
                "(with token authentication the tokens say who may do what)"
            )
        return settings

    @property
    def authenticates(self) -> bool:
        return bool(self.htpasswd or self.token)


def _operations_from_config(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of how the server is operated (`ops_settings`), each section read by
    its own settings class."""
    return {
        "debug": DebugSettings.from_config(doc),
        "health": HealthSettings.from_config(doc),
        "notifications": NotificationSettings.from_config(doc),
        "upload_purging": UploadPurgeSettings.from_config(doc),
    }


def _section(doc: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    if not key:
        return doc
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}{key} in the config file must be a mapping")
    return value


def _text(section: dict[str, Any], key: str, where: str) -> str:
    value = section.get(key)
    if value is None or value == "":
        variable = "REGISTRY_" + f"{where}{key}".replace(".", "_").upper()
        raise UsageError(f"{where}{key} is missing: set it in the config file or as {variable}")
    return str(value)


def _path(section: dict[str, Any], key: str, where: str) -> Path:
    return Path(_text(section, key, where))
