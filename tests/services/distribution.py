"""The CNCF distribution registry (Debian's `docker-registry`, 2.8.x) as a test service.

    reg = start_distribution(tmp_path, filesystem_storage(tmp_path / "root"))
    reg.url         # "http://127.0.0.1:PORT"
    reg.host        # "127.0.0.1:PORT"  (for skopeo's docker://HOST/REPO:TAG)
    reg.garbage_collect(dry_run=False, delete_untagged=True)  # stdout of the real GC
    reg.stop()

The storage section is passed through as-is, so any driver distribution knows can be used;
`filesystem_storage` and `swift_storage` build the two the tests need. For Swift against
the tempauth test service: `authurl` is the v1 URL (…/auth/v1.0), `username` is
"account:user" (e.g. "test:tester"), `password` is the key, and `authversion: 1` (ncw/swift
would also infer v1 from "v1" in the URL; we set it explicitly). No tenant/domain.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.services import free_port

REGISTRY_BIN = "/usr/bin/docker-registry"

#: How long `start_distribution` waits for `GET /v2/` to answer 200.
START_TIMEOUT = 30.0


def registry_binary() -> str | None:
    """The distribution binary, or None when it is not installed."""
    if os.access(REGISTRY_BIN, os.X_OK):
        return REGISTRY_BIN
    return shutil.which("docker-registry") or shutil.which("registry")


def service_env() -> dict[str, str]:
    """Environment for distribution and skopeo: no proxies, no REGISTRY_* overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REGISTRY_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def filesystem_storage(root: str | os.PathLike[str]) -> dict[str, Any]:
    """A storage section for distribution's filesystem driver rooted at `root`.

    Distribution writes its tree under `<root>/docker/registry/v2/`.
    """
    Path(root).mkdir(parents=True, exist_ok=True)
    return {"filesystem": {"rootdirectory": str(root)}}


def swift_storage(
    service: Any,
    container: str,
    prefix: str | None = None,
    *,
    chunksize: int | None = None,
    create: bool = True,
) -> dict[str, Any]:
    """A storage section for distribution's Swift driver on the tempauth test service.

    `service` is a tests.services.swift.SwiftService (auth_url, user, key,
    create_container). Distribution writes `<prefix>/files/docker/registry/v2/...` and
    `<prefix>/segments/...` into `container`. `chunksize` is the DLO segment size (the
    driver refuses less than 1 MiB; default 20 MiB).
    """
    if create:
        service.create_container(container)
    params: dict[str, Any] = {
        "authurl": service.auth_url,
        "username": service.user,
        "password": service.key,
        "authversion": 1,
        "container": container,
    }
    if prefix:
        params["prefix"] = prefix
    if chunksize is not None:
        params["chunksize"] = chunksize
    return {"swift": params}


class GarbageCollectError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '').strip()}"


@dataclass
class DistributionRegistry:
    """A running `docker-registry serve`."""

    url: str
    host: str
    config_path: Path
    log_path: Path
    storage: dict[str, Any]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def garbage_collect(self, dry_run: bool = True, delete_untagged: bool = False) -> str:
        """Run distribution's own GC on this registry's config; return its stdout.

        Raises GarbageCollectError (a CalledProcessError whose message includes stderr)
        when it fails -- note distribution's GC fails on a store that has no
        `repositories/` or `blobs/` yet ("Path not found").
        """
        cmd = [REGISTRY_BIN, "garbage-collect"]
        if dry_run:
            cmd.append("--dry-run")
        if delete_untagged:
            cmd.append("--delete-untagged")
        cmd.append(str(self.config_path))
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=service_env(), timeout=300, check=False
        )
        if done.returncode != 0:
            raise GarbageCollectError(done.returncode, cmd, output=done.stdout, stderr=done.stderr)
        return done.stdout

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> DistributionRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_config(
    path: Path,
    storage: dict[str, Any],
    *,
    port: int,
    delete_enabled: bool = True,
    redirect: bool = False,
    log_level: str = "info",
    auth: dict[str, Any] | None = None,
    debug: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a distribution config.yml; returns the dict written. `debug` is its
    `http.debug` section (a debug listener, Prometheus metrics), `catalog` its `catalog`
    section, if given.

    No blob descriptor cache (so the registry sees changes other tools make to the
    storage), no auth unless `auth` (the config's `auth` section) is given, upload
    purging off (it would delete `_uploads/` under our tests), and no redirects to Swift
    temp URLs unless `redirect` is true.
    """
    storage_section: dict[str, Any] = dict(storage)
    storage_section["delete"] = {"enabled": bool(delete_enabled)}
    storage_section["maintenance"] = {
        "uploadpurging": {"enabled": False},
        "readonly": {"enabled": False},
    }
    storage_section["redirect"] = {"disable": not redirect}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {
            "level": log_level,
            "formatter": "text",
            "accesslog": {"disabled": False},
        },
        "storage": storage_section,
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": "regtool-tests-not-secret",
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": False}},
    }
    if auth:
        config["auth"] = auth
    if debug:
        config["http"]["debug"] = debug
    if catalog:
        config["catalog"] = catalog
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def start_distribution(
    tmpdir: str | os.PathLike[str],
    storage: dict[str, Any],
    *,
    delete_enabled: bool = True,
    redirect: bool = False,
    log_level: str = "info",
    timeout: float = START_TIMEOUT,
    auth: dict[str, Any] | None = None,
    debug: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> DistributionRegistry:
    """Start `docker-registry serve` with `storage`; return once `GET /v2/` answers 200.

    Its config goes to `<tmpdir>/config.yml` and its log (stderr+stdout) to
    `<tmpdir>/registry.log`. Raises RuntimeError (with the log tail) if it does not come up.
    """
    binary = registry_binary()
    if binary is None:
        raise FileNotFoundError(f"{REGISTRY_BIN} not found (Debian package docker-registry)")
    tmp = Path(tmpdir)
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "config.yml"
    log_path = tmp / "registry.log"
    port = free_port()
    write_config(
        config_path,
        storage,
        port=port,
        delete_enabled=delete_enabled,
        redirect=redirect,
        log_level=log_level,
        auth=auth,
        debug=debug,
        catalog=catalog,
    )
    host = f"127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=service_env(),
            cwd=tmp,
        )
    reg = DistributionRegistry(
        url=f"http://{host}",
        host=host,
        config_path=config_path,
        log_path=log_path,
        storage=storage,
        process=proc,
    )
    try:
        _wait_ready(reg, proc, timeout, 401 if auth else 200)
    except BaseException:
        reg.stop()
        raise
    return reg


def _wait_ready(
    reg: DistributionRegistry, proc: subprocess.Popen[bytes], timeout: float, ready: int = 200
) -> None:
    """Waits until `GET /v2/` answers `ready` (401 where it asks for a login)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {proc.returncode} during start-up:\n" + reg.log_tail()
            )
        try:
            with opener.open(reg.url + "/v2/", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = resp.status
        except urllib.error.HTTPError as e:
            if e.code == ready:
                return
            last = e.code
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    with contextlib.suppress(Exception):
        reg.stop()
    raise RuntimeError(
        f"docker-registry did not answer GET /v2/ within {timeout:.0f}s (last: {last}):\n"
        + reg.log_tail()
    )
