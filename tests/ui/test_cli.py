"""`regtool ui` as a user runs it: a read-only UI straight from storage, V1 stores too;
`regtool serve` with its UI at /ui/ (and / sending browsers there) or, with --no-ui,
without."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from regtool.storage.local import LocalDriver
from tests.clirunner import Cli
from tests.server.test_serve_cli import run_serve
from tests.services import free_port
from tests.ui.conftest import Shots, console_errors, follow
from tests.ui.test_browse import texts
from tests.v1store import V1Store

_MAIN = "from regtool.cli.main import main; main()"


class UiProcess:
    """`regtool ui ARGS` on a free port until `stop()` (Ctrl-C)."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MAIN, "ui", *args, "--addr", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.url}/ui/", timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=15)
        assert self.proc.returncode == 0, out
        assert "Traceback" not in out
        return out


def test_a_v1_store_browsed_with_regtool_ui(browser: Any, tmp_path: Path, shots: Shots) -> None:
    store = V1Store(LocalDriver(tmp_path), "docker-registry")
    base = store.add_chain(2, size=512)
    top = store.add_image(base.image_id, size=1024)
    store.tag("exampleapp", "1.0", top)
    store.tag("exampleapp", "base", base)
    store.tag("team/tool", "latest", base)
    ui = UiProcess(str(tmp_path))
    try:
        browser.get(f"{ui.url}/")  # a browser asking for / is sent to /ui/
        assert browser.current_url == f"{ui.url}/ui/"
        assert texts(browser, "#results tbody td:first-child") == ["exampleapp", "team/tool"]
        assert "v1 layout" in browser.find_element(By.TAG_NAME, "footer").text
        shots(browser, "catalog")
        follow(browser, browser.find_element(By.LINK_TEXT, "exampleapp"))
        assert texts(browser, "table.tags tbody td:first-child a") == ["1.0", "base"]
        assert top.image_id[:12] in browser.find_element(By.CSS_SELECTOR, "table.tags").text
        assert browser.find_elements(By.XPATH, "//button[contains(., 'Delete')]") == []
        shots(browser, "repository")
        follow(browser, browser.find_element(By.LINK_TEXT, "1.0"))
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "v1 image" in main
        layers = texts(browser, "main table tbody td:first-child")
        assert layers == [i[:12] for i in reversed(top.ancestry)]
        shots(browser, "image")
        assert console_errors(browser) == []
        browser.back()  # the repository page, whose verify form carries the CSRF token
        token = browser.find_element(By.NAME, "csrf").get_attribute("value")
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        form = {"csrf": token, "name": "exampleapp", "tag": "1.0", "confirm": "yes"}
        refused = httpx.post(f"{ui.url}/ui/delete", data=form, cookies=cookies)
        assert refused.status_code == 403
    finally:
        out = ui.stop()
    assert f"http://127.0.0.1:{ui.port}/ui/" in out
    assert "v1 layout" in out and "read-only" in out
    assert (tmp_path / "docker-registry/repositories/library/exampleapp/tag_1.0").exists()


def test_regtool_ui_refuses_bad_arguments_in_one_line(tmp_path: Path, cli: Cli) -> None:
    for args, words in (
        (["ui", str(tmp_path / "missing")], "no such directory"),
        (["ui", str(tmp_path), "--addr", "nowhere"], "--addr must be HOST:PORT"),
        (["ui", str(tmp_path), "--access", str(tmp_path / "a.yml")], "--access needs --htpasswd"),
    ):
        done = cli(*args)
        assert done.exit_code == 2, done.stderr
        assert words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_serve_mounts_the_ui_unless_told_not_to(tmp_path: Path) -> None:
    store = tmp_path / "store"

    def with_ui(url: str) -> None:
        browser = {"Accept": "text/html,application/xhtml+xml"}
        first = httpx.get(f"{url}/", headers=browser, follow_redirects=False)
        assert first.status_code == 302 and first.headers["location"] == f"{url}/ui/"
        assert httpx.get(f"{url}/").status_code == 200  # a load balancer's probe
        page = httpx.get(f"{url}/ui/")
        assert page.status_code == 200 and "Repositories" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

    def without_ui(url: str) -> None:
        assert httpx.get(f"{url}/ui/").status_code == 404
        assert httpx.get(f"{url}/", headers={"Accept": "text/html"}).status_code == 404
        assert httpx.get(f"{url}/").status_code == 200  # a load balancer's probe
        assert httpx.get(f"{url}/v2/").status_code == 200

    port = free_port()
    out = run_serve([str(store), "--addr", f"127.0.0.1:{port}"], port, with_ui)
    assert f"web UI at http://127.0.0.1:{port}/ui/" in out
    port = free_port()
    out = run_serve([str(store), "--addr", f"127.0.0.1:{port}", "--no-ui"], port, without_ui)
    assert "web UI" not in out
