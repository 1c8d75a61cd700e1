"""Credentials carried in URLs, hidden for showing (logs, `--check-config`) and taken
apart for use: a URL's user and password before its host, and query parameters whose
names say they hold a credential."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

#: Words that make a query parameter's value a credential when its name (percent-decoded,
#: any case) contains one: `access_token`, `client_secret`, `api_key`, `X-Amz-Signature`,
#: `sig`, `auth`, `password`, `pwd`... An innocent name that contains one (`monkey`) only
#: loses its value.
_SECRET_WORDS = ("token", "passw", "pwd", "secret", "sig", "key", "code", "auth", "credential")
_MAYBE_SECRET_RE = re.compile("|".join(_SECRET_WORDS) + "|%", re.IGNORECASE)
_PARAMETER_RE = re.compile(r"([^&;=]*)(=?)([^&;]*)")
_USERINFO_RE = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/?#@]*@", re.IGNORECASE)


def redact_query(query: str) -> str:
    """`query` with the values of parameters that carry credentials replaced by `***`
    (parameters split at `&` and `;`; see `_SECRET_WORDS`)."""
    if _MAYBE_SECRET_RE.search(query) is None:  # most (`digest=`, `n=`): one search
        return query

    def redact(m: re.Match[str]) -> str:
        name = unquote(m[1]).lower()
        if m[2] and any(word in name for word in _SECRET_WORDS):
            return f"{m[1]}=***"
        return m[0]

    return _PARAMETER_RE.sub(redact, query)


def redact_url(url: str) -> str:
    """`url` without the user and password before its host (`***` instead), and with its
    query redacted as `redact_query` does."""
    url = _USERINFO_RE.sub(r"\1***@", url)
    path, mark, query = url.partition("?")
    return f"{path}?{redact_query(query)}" if mark else url


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without its userinfo, and the (user, password) it carried, percent-decoded
    (None if it carried none; a user without a password has password "").
    `https://u:p%40ss@host/x` -> (`https://host/x`, ("u", "p@ss"))."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))
