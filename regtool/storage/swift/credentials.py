"""Swift credentials, the way the `swift` CLI takes them."""

from __future__ import annotations

from dataclasses import dataclass, field

from regtool.storage.swift.errors import without_userinfo


@dataclass(frozen=True)
class SwiftCredentials:
    """Credentials the way the `swift` CLI takes them (ST_* for v1, OS_* for Keystone).
    `key` and `token` never appear in a repr."""

    auth_url: str | None = None
    user: str | None = None
    key: str | None = field(default=None, repr=False)
    auth_version: str = "1"  # "1" (tempauth / Orbit), "2", "3" (Keystone)
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str | None = None
    project_domain_name: str | None = None
    region_name: str | None = None
    storage_url: str | None = None  # pre-authenticated: with `token`, no login needed
    token: str | None = field(default=None, repr=False)
    insecure: bool = False

    def __repr__(self) -> str:
        # URLs without their userinfo (see `errors.without_userinfo`); no key, no token.
        shown = {
            name: without_userinfo(value) if name.endswith("_url") and value else value
            for name, value in vars(self).items()
            if name not in ("key", "token")
        }
        return f"SwiftCredentials({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def can_log_in(self) -> bool:
        """Whether these credentials can get a (new) token: auth URL, user and key."""
        return bool(self.auth_url and self.user and self.key is not None)
