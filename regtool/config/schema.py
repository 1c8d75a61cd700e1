"""Every key of distribution 2.8's configuration (`configuration/configuration.go` at
release/2.8), as a tree: what each value must be, the Go field name its `REGISTRY_*`
environment variable spells, and whether regtool acts on it.

Nodes follow distribution's Go types, because the environment overrides walk those
types (`environment.py`): a `Struct` has fixed keys named by Go fields (`RelativeURLs`
for `relativeurls`, `EventConfig` for `notifications.events`); a `Map` has free string
keys (`storage`, `http.headers`), some of which may be known; `Any` is Go's
`interface{}` (a driver parameter); `ListOf` a slice; `Scalar` a leaf of one kind.

A key regtool does not act on (`redis`, `middleware`, other storage drivers) is marked
`used=False`: reading a config that sets it warns, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ScalarKind = Literal["string", "bool", "int", "weakint", "weakbool", "duration", "loglevel"]


@dataclass(frozen=True)
class Scalar:
    kind: ScalarKind


@dataclass(frozen=True)
class Any:
    """Go's `interface{}`: any YAML value (a storage driver's parameter)."""


@dataclass(frozen=True)
class ListOf:
    item: Node


@dataclass(frozen=True)
class Field:
    """One key of a `Struct`: the Go field name (`REGISTRY_HTTP_RELATIVEURLS` matches
    `RelativeURLs` upper-cased), its node, and whether regtool acts on it. `secret`
    values are redacted wherever settings are shown."""

    go: str
    node: Node
    used: bool = True
    secret: bool = False


@dataclass(frozen=True)
class Struct:
    fields: dict[str, Field]


@dataclass(frozen=True)
class Map:
    """String keys of any name (`storage`, `http.headers`), each holding `value`; keys
    in `known` have their own schema (a storage driver's parameters). `one_of` says the
    map names one choice besides the keys in `extra` (one storage driver besides
    `delete`, `maintenance`...); a YAML string `s3` stands for `{s3: {}}`."""

    value: Node
    known: dict[str, Field] = field(default_factory=dict)
    one_of: bool = False
    extra: frozenset[str] = frozenset()
    open_known: bool = False  # keys outside `known` are fine (headers, log fields)


Node = Scalar | Any | ListOf | Struct | Map

STRING = Scalar("string")
BOOL = Scalar("bool")
INT = Scalar("int")
DURATION = Scalar("duration")
STRINGS = ListOf(STRING)
#: Go's http.Header: a header name to its values.
HEADERS = Map(ListOf(STRING), open_known=True)


def _s(go: str, node: Node, used: bool = True, secret: bool = False) -> Field:
    return Field(go, node, used, secret)


def _struct(**fields: Field) -> Struct:
    return Struct(fields)


def _params(used: bool = True, secret: tuple[str, ...] = (), **known: Node) -> Field:
    """A storage driver's or auth scheme's parameters (Go: map[string]interface{})."""
    fields = {k: Field(k.upper(), node, used, k in secret) for k, node in known.items()}
    return Field("", Map(Any(), fields), used)


FILESYSTEM = _params(rootdirectory=STRING, maxthreads=INT)
SWIFT = Field(
    "",
    Map(
        Any(),
        {
            **{
                k: Field(k.upper(), STRING)
                for k in (
                    "authurl",
                    "username",
                    "container",
                    "prefix",
                    "tenant",
                    "tenantid",
                    "domain",
                    "region",
                    "authversion",
                )
            },
            "password": Field("PASSWORD", STRING, secret=True),
            "insecureskipverify": Field("INSECURESKIPVERIFY", Scalar("weakbool")),
            "chunksize": Field("CHUNKSIZE", Scalar("weakint")),
            **{
                k: Field(k.upper(), Any(), used=False, secret=k in ("secretkey", "accesskey"))
                for k in (
                    "domainid",
                    "trustid",
                    "endpointtype",
                    "secretkey",
                    "accesskey",
                    "tempurlcontainerkey",
                    "tempurlmethods",
                )
            },
        },
    ),
)
#: regtool's own driver: the SFTP server of `sftp://` LOCATIONs, as a config section.
SFTP = Field(
    "",
    Map(
        Any(),
        {
            "host": Field("HOST", STRING),
            "port": Field("PORT", Scalar("weakint")),
            "username": Field("USERNAME", STRING),
            "password": Field("PASSWORD", STRING, secret=True),
            "path": Field("PATH", STRING),
            "identityfile": Field("IDENTITYFILE", STRING),
            "knownhosts": Field("KNOWNHOSTS", STRING),
            "hostkeypolicy": Field("HOSTKEYPOLICY", STRING),
        },
    ),
)

STORAGE_DRIVERS = ("filesystem", "swift", "sftp")
#: Keys of `storage` that are not a driver.
STORAGE_EXTRA = frozenset({"delete", "maintenance", "redirect", "cache"})

STORAGE = Map(
    Any(),
    {
        "filesystem": FILESYSTEM,
        "swift": SWIFT,
        "sftp": SFTP,
        "delete": _params(enabled=BOOL),
        "redirect": _params(disable=BOOL),
        "cache": _params(used=False),
        "maintenance": Field(
            "",
            Map(
                Any(),
                {
                    "uploadpurging": _params(
                        enabled=BOOL, age=DURATION, interval=DURATION, dryrun=BOOL
                    ),
                    "readonly": _params(enabled=BOOL),
                },
            ),
        ),
    },
    one_of=True,
    extra=STORAGE_EXTRA,
)

AUTH = Map(
    Any(),
    {
        "htpasswd": _params(realm=STRING, path=STRING),
        "token": Field(
            "",
            Map(
                Any(),
                {
                    "realm": Field("REALM", STRING),
                    "service": Field("SERVICE", STRING),
                    "issuer": Field("ISSUER", STRING),
                    "rootcertbundle": Field("ROOTCERTBUNDLE", STRING),
                    "autoredirect": Field("AUTOREDIRECT", BOOL, used=False),
                },
            ),
        ),
    },
    one_of=True,
)

ENDPOINT = _struct(
    name=_s("Name", STRING),
    disabled=_s("Disabled", BOOL),
    url=_s("URL", STRING),
    headers=_s("Headers", HEADERS, secret=True),  # Authorization and the like
    timeout=_s("Timeout", DURATION),
    threshold=_s("Threshold", INT),
    backoff=_s("Backoff", DURATION),
    ignoredmediatypes=_s("IgnoredMediaTypes", STRINGS),
    ignore=_s(
        "Ignore", _struct(mediatypes=_s("MediaTypes", STRINGS), actions=_s("Actions", STRINGS))
    ),
)

CHECKER = ListOf(Any())

#: distribution 2.8's `Configuration`, with regtool's `storage.sftp`.
CONFIGURATION = _struct(
    version=_s("Version", STRING),
    log=_s(
        "Log",
        _struct(
            accesslog=_s("AccessLog", _struct(disabled=_s("Disabled", BOOL))),
            level=_s("Level", Scalar("loglevel")),
            formatter=_s("Formatter", STRING),
            fields=_s("Fields", Map(Any(), open_known=True)),
            hooks=_s("Hooks", ListOf(Any()), used=False),
        ),
    ),
    loglevel=_s("Loglevel", Scalar("loglevel")),
    storage=_s("Storage", STORAGE),
    auth=_s("Auth", AUTH),
    middleware=_s("Middleware", Map(Any()), used=False),
    reporting=_s("Reporting", Any(), used=False),
    http=_s(
        "HTTP",
        _struct(
            addr=_s("Addr", STRING),
            net=_s("Net", STRING),
            host=_s("Host", STRING),
            prefix=_s("Prefix", STRING),
            secret=_s("Secret", STRING, secret=True),
            relativeurls=_s("RelativeURLs", BOOL),
            draintimeout=_s("DrainTimeout", DURATION),
            tls=_s(
                "TLS",
                _struct(
                    certificate=_s("Certificate", STRING),
                    key=_s("Key", STRING),
                    clientcas=_s("ClientCAs", STRINGS),
                    minimumtls=_s("MinimumTLS", STRING),
                    ciphersuites=_s("CipherSuites", STRINGS, used=False),
                    letsencrypt=_s("LetsEncrypt", Any(), used=False),
                ),
            ),
            headers=_s("Headers", HEADERS),
            debug=_s(
                "Debug",
                _struct(
                    addr=_s("Addr", STRING),
                    prometheus=_s(
                        "Prometheus",
                        _struct(enabled=_s("Enabled", BOOL), path=_s("Path", STRING)),
                    ),
                ),
            ),
            # regtool speaks HTTP/1.1 only: `disabled: true` is what it does anyway.
            http2=_s("HTTP2", _struct(disabled=_s("Disabled", BOOL))),
        ),
    ),
    notifications=_s(
        "Notifications",
        _struct(
            events=_s("EventConfig", _struct(includereferences=_s("IncludeReferences", BOOL))),
            endpoints=_s("Endpoints", ListOf(ENDPOINT)),
        ),
    ),
    redis=_s("Redis", Any(), used=False),
    health=_s(
        "Health",
        _struct(
            file=_s("FileCheckers", CHECKER, used=False),
            http=_s("HTTPCheckers", CHECKER, used=False),
            tcp=_s("TCPCheckers", CHECKER, used=False),
            storagedriver=_s(
                "StorageDriver",
                _struct(
                    enabled=_s("Enabled", BOOL),
                    interval=_s("Interval", DURATION),
                    threshold=_s("Threshold", INT),
                ),
            ),
        ),
    ),
    catalog=_s("Catalog", _struct(maxentries=_s("MaxEntries", INT))),
    proxy=_s("Proxy", Any(), used=False),
    compatibility=_s("Compatibility", Any(), used=False),
    validation=_s(
        "Validation",
        _struct(
            enabled=_s("Enabled", BOOL),
            disabled=_s("Disabled", BOOL),
            manifests=_s(
                "Manifests",
                _struct(
                    urls=_s("URLs", _struct(allow=_s("Allow", STRINGS), deny=_s("Deny", STRINGS)))
                ),
            ),
        ),
    ),
    policy=_s("Policy", Any(), used=False),
)

__all__ = ["CONFIGURATION", "STORAGE_DRIVERS", "STORAGE_EXTRA", "Field", "Node"]
