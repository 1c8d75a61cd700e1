"""Fixtures for the web UI's tests: one headless Chromium for the session (Selenium),
a registry with htpasswd users and access rules holding pushed images, screenshots.

- `browser`: session; fails with CI=true when chromium or chromedriver is missing, else
  skips. Its console log is read by `console_errors`.
- `shop`: module; `regtool serve` (UI included) on a local directory with users alice
  (everything) and bob (pull on team/* and hostile), and images pushed through the API:
  team/app (labels, env, history; tags 1.0, latest, old), team/multi (an index of two
  platforms, a referrer of its amd64 child), secret/keys, hostile (see test_xss.py).
- `shots`: saves a screenshot per call under tests/artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from tests.interop.conftest import make_distribution
from tests.server.conftest import RunningRegistry, start_registry
from tests.services import unavailable
from tests.ui.push import push_image, push_index, push_referrer

__all__ = ["make_distribution"]

ARTIFACTS = Path(__file__).parent.parent / "artifacts" / "ui"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
RULES = """\
rules:
  - repositories: ["**"]
    users: [alice]
    allow: [pull, push, delete]
  - repositories: ["team/*", "hostile"]
    users: [bob]
    allow: [pull]
"""
#: Text a pusher controls, meant to run as script if it were not escaped.
HOSTILE = [
    "<script>document.title='pwned'</script>",
    '"><img src=x onerror="document.title=\'pwned\'">',
    "javascript:document.title='pwned'",
    "'><svg onload=alert(1)>",
]


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    found = _chromium()
    if found is None:
        unavailable("chromium and chromedriver are not installed (Debian packages)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (the test extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(found[1]), options=options)
    except Exception as e:
        unavailable(f"cannot start headless chromium: {e}")
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """Severe console entries (script errors, CSP violations) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@dataclass
class Shots:
    name: str
    count: int = 0

    def __call__(self, driver: Any, label: str) -> Path:
        self.count += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.count:02d}-{label}.png"
        driver.save_screenshot(str(path))
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name.replace("/", "_")[:80])


@dataclass
class Shop:
    """The registry the browser tests look at, and what was pushed to it."""

    registry: RunningRegistry
    root: Path
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def ui(self) -> str:
        return f"{self.registry.url}/ui"

    def client(self, user: str | None = "alice") -> httpx.Client:
        auth = (user, PASSWORDS[user]) if user else None
        return httpx.Client(base_url=self.registry.url, auth=auth, timeout=20)


def start_shop(root: Path, settings_dir: Path, **settings: Any) -> Shop:
    htpasswd, access = settings_dir / "htpasswd", settings_dir / "access.yml"
    for user, password in PASSWORDS.items():
        write_entry(htpasswd, user, hash_password(password, cost=4))
    access.write_text(RULES)
    config = ServerSettings(htpasswd=htpasswd, access=access, **settings)
    return Shop(start_registry(LocalDriver(root), root, settings=config), root)


def fill(shop: Shop) -> None:
    with shop.client() as c:
        d = shop.digests
        d["app"] = push_image(
            c,
            "team/app",
            "1.0",
            labels={"org.opencontainers.image.title": "The app", "maintainer": "ops"},
            config={
                "Env": ["PATH=/bin", "MODE=prod"],
                "Cmd": ["serve"],
                "User": "app",
                "WorkingDir": "/srv",
                "ExposedPorts": {"8080/tcp": {}},
            },
            history=[{"created_by": "ADD rootfs /"}, {"created_by": "CMD serve"}],
        )
        for tag in ("latest", "old"):
            c.put(
                f"/v2/team/app/manifests/{tag}",
                content=c.get(f"/v2/team/app/manifests/{d['app']}").content,
                headers={"content-type": "application/vnd.oci.image.manifest.v1+json"},
            ).raise_for_status()
        amd = push_image(c, "team/multi", None, layer=b"amd64 layer", arch="amd64")
        arm = push_image(c, "team/multi", None, layer=b"arm64 layer", arch="arm64")
        d["amd64"], d["arm64"] = amd, arm
        d["multi"] = push_index(c, "team/multi", "2.0", {"linux/amd64": amd, "linux/arm64": arm})
        d["sbom"] = push_referrer(c, "team/multi", amd, "application/spdx+json")
        d["secret"] = push_image(c, "secret/keys", "v1", layer=b"secret layer")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("shop")
    made = start_shop(root, tmp_path_factory.mktemp("shop-settings"))
    try:
        fill(made)
        yield made
    finally:
        made.registry.stop()


def wait(driver: Any, seconds: float) -> Any:
    """A `WebDriverWait` that looks again when the page replaced an element it was
    reading (the catalog's filter re-renders its rows as it answers)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def follow(driver: Any, element: Any) -> None:
    """Clicks a link or a form's button and returns once the next page has replaced
    this one (a click returns as soon as it is sent, not when the page it asks for is
    there)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 20).until(_replaced(page))


def _replaced(page: Any) -> Callable[[Any], bool]:
    """`ec.staleness_of(page)`, also when chromedriver, asked about a node while the
    document it belonged to is being replaced, says "Node with given id does not belong
    to the document" instead of that the element is stale."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def replaced(_: Any) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
        return False

    return replaced


def sign_in(driver: Any, shop: Shop, user: str) -> None:
    """Signs in through the UI's form (signing out whoever was signed in)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{shop.ui}/login")
    driver.delete_all_cookies()
    driver.get(f"{shop.ui}/login")  # a fresh session and its form's CSRF token
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[user])
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]"))
    WebDriverWait(driver, 10).until(ec.url_matches(r"/ui/$"))
    assert driver.find_element(By.CSS_SELECTOR, ".who strong").text == user


def storage_page(driver: Any, shop: Shop) -> None:
    """Opens the storage page once it shows a summary: the first visit starts reading
    one; its end is awaited through the status the page polls (not while the page's
    own script reloads it), then the page is opened afresh."""
    import time

    from selenium.webdriver.common.by import By

    driver.get(f"{shop.ui}/storage")
    deadline = time.monotonic() + 30
    while httpx.get(f"{shop.ui}/storage/status").json()["state"] == "running":
        assert time.monotonic() < deadline, "the storage summary never ended"
        time.sleep(0.1)
    driver.get(f"{shop.ui}/storage")
    assert driver.find_elements(By.ID, "job") == []
