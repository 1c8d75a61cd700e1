"""Logging in through Keystone v2 or v3 (keystoneauth1, imported only when needed)."""

from __future__ import annotations

from urllib.parse import urlparse

from regtool.errors import AuthenticationFailed, StorageError, Unreachable
from regtool.storage.swift.credentials import SwiftCredentials
from regtool.storage.swift.errors import DRIVER, redact, status_error, without_userinfo


def keystone_login(
    credentials: SwiftCredentials, timeout: float, refused: AuthenticationFailed
) -> tuple[str, str]:
    """(object-store endpoint URL, token) for `credentials`, whose `auth_version` is "2"
    or "3". Raises `refused` if Keystone refuses them, `Unreachable`, `TransientError`
    (timeouts, 5xx and throttling, with `retry_after`) or `StorageError`."""
    from keystoneauth1 import exceptions as ks
    from keystoneauth1 import session
    from keystoneauth1.identity import v2, v3

    c = credentials
    assert c.auth_url and c.user and c.key is not None
    # Keystone takes credentials in the request body, never in the URL: userinfo there is
    # dropped, so that no log of keystoneauth's and no message here can show it.
    base = without_userinfo(c.auth_url).rstrip("/")
    user, project = c.user, c.project_name
    if ":" in user and not (project or c.project_id):  # the CLI's "tenant:user" form
        project, user = user.split(":", 1)
    auth: v2.Password | v3.Password
    if c.auth_version.startswith("2"):
        url = base if base.endswith("/v2.0") else base + "/v2.0"
        auth = v2.Password(
            url, username=user, password=c.key, tenant_name=project, tenant_id=c.project_id
        )
    else:
        url = base if base.endswith("/v3") else base + "/v3"
        auth = v3.Password(
            url,
            password=c.key,
            username=user,
            user_domain_name=c.user_domain_name,
            project_name=project,
            project_id=c.project_id,
            project_domain_name=c.project_domain_name,
        )
    host = urlparse(url).netloc  # no userinfo: see above
    sess = session.Session(auth=auth, verify=not c.insecure, timeout=timeout)
    try:
        token = sess.get_token()
        storage = sess.get_endpoint(
            service_type="object-store", interface="public", region_name=c.region_name
        )
    except (ks.Unauthorized, ks.Forbidden):
        raise refused from None
    except (ks.ConnectTimeout, ks.RequestTimeout) as e:
        raise status_error(408, f"Keystone at {host} timed out: {redact(str(e))}") from None
    except ks.ConnectFailure as e:
        text = f"cannot connect to Keystone at {host}: {redact(str(e))}"
        raise Unreachable(text, driver=DRIVER) from None
    except ks.HttpError as e:
        headers = e.response.headers if e.response is not None else None
        raise status_error(
            e.http_status, f"Keystone at {host}: HTTP {e.http_status}", None, headers
        ) from None
    except ks.ClientException as e:
        raise StorageError(f"Keystone at {host}: {redact(str(e))}", driver=DRIVER) from None
    if not token or not storage:
        raise StorageError(
            f"Keystone at {host} lists no object-store endpoint"
            + (f" in region {c.region_name}" if c.region_name else ""),
            driver=DRIVER,
        )
    return storage, token
