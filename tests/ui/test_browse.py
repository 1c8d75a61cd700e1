"""The UI in a real browser: the catalog, filtering as you type, a repository, an image
with its config, an index and its child, a referrer."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import Shop, Shots, console_errors, follow, sign_in, storage_page, wait


def texts(driver: Any, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_catalog_repository_image_index_referrer(browser: Any, shop: Shop, shots: Shots) -> None:
    sign_in(browser, shop, "alice")
    browser.get(f"{shop.ui}/")
    assert texts(browser, "#results tbody td:first-child") == [
        "secret/keys",
        "team/app",
        "team/multi",
    ]
    row = browser.find_element(By.XPATH, "//tr[td/a[text()='team/app']]")
    assert row.find_elements(By.TAG_NAME, "td")[1].text == "3"  # tags
    shots(browser, "catalog")

    # filter as you type: the results change without submitting the form
    box = browser.find_element(By.ID, "q")
    box.send_keys("mul")
    wait(browser, 15).until(lambda d: texts(d, "#results tbody td:first-child") == ["team/multi"])
    assert "q=mul" in browser.current_url
    shots(browser, "filtered")

    browser.get(f"{shop.ui}/")
    follow(browser, browser.find_element(By.LINK_TEXT, "team/app"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "team/app"
    assert texts(browser, "table.tags tbody td:first-child a") == ["1.0", "latest", "old"]
    first = browser.find_element(By.CSS_SELECTOR, "table.tags tbody tr").text
    assert "same as latest, old" in first  # three tags share one manifest
    assert shop.digests["app"][:19] in first
    shots(browser, "repository")

    follow(browser, browser.find_element(By.LINK_TEXT, "1.0"))
    page = browser.find_element(By.TAG_NAME, "main").text
    for expected in (
        "org.opencontainers.image.title",
        "The app",
        "MODE=prod",
        '["serve"]',
        "8080/tcp",
        "/srv",
        "ADD rootfs /",
        "CMD serve",
        "linux/amd64",
        "1.0, latest, old",
    ):
        assert expected in page, expected
    shots(browser, "image")

    browser.get(f"{shop.ui}/repository?name=team/multi")
    follow(browser, browser.find_element(By.LINK_TEXT, "2.0"))
    assert "index" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert texts(browser, "main table tbody td:first-child") == ["linux/amd64", "linux/arm64"]
    shots(browser, "index")
    follow(browser, browser.find_element(By.XPATH, "//tr[td='linux/amd64']//a"))
    assert shop.digests["amd64"] in browser.find_element(By.TAG_NAME, "h1").text
    referrers = browser.find_element(By.XPATH, "//h2[text()='Referrers']/following-sibling::div")
    assert "application/spdx+json" in referrers.text
    shots(browser, "child")
    follow(browser, referrers.find_element(By.TAG_NAME, "a"))
    WebDriverWait(browser, 5).until(ec.url_contains(shop.digests["sbom"].replace(":", "%3A")))
    facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert "artifact" in facts and "application/spdx+json" in facts
    assert shop.digests["amd64"] in facts  # what it refers to
    shots(browser, "referrer")
    assert console_errors(browser) == []


def test_storage_page_says_what_gc_would_free_and_verifies_the_store(
    browser: Any, shop: Shop, shots: Shots
) -> None:
    sign_in(browser, shop, "alice")
    storage_page(browser, shop)
    rows = texts(browser, "main tbody td:first-child")
    assert rows == ["secret/keys", "team/app", "team/multi"]
    assert "would free" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    shots(browser, "storage")
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Read again']"))
    storage_page(browser, shop)
    assert texts(browser, "main tbody td:first-child") == rows

    follow(
        browser, browser.find_element(By.XPATH, "//button[text()='Verify every tag of the store']")
    )
    assert browser.find_element(By.TAG_NAME, "h1").text == "Verify the whole store"
    wait(browser, 20).until(lambda d: d.find_element(By.ID, "verify-state").text == "ok")
    bar = browser.find_element(By.ID, "verify-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") != "1"
    shots(browser, "verified-store")
    assert console_errors(browser) == []


def test_verify_shows_its_progress_and_result(browser: Any, shop: Shop, shots: Shots) -> None:
    sign_in(browser, shop, "alice")
    browser.get(f"{shop.ui}/repository?name=team/app")
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Verify this repository']"))
    wait(browser, 20).until(lambda d: d.find_element(By.ID, "verify-state").text == "ok")
    bar = browser.find_element(By.ID, "verify-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") != "1"
    shots(browser, "verified")


def test_readable_on_a_phone_and_dark_when_asked(browser: Any, shop: Shop, shots: Shots) -> None:
    sign_in(browser, shop, "alice")
    size = browser.get_window_size()
    background = "return getComputedStyle(document.body).backgroundColor"
    try:
        browser.set_window_size(390, 844)
        for page in ("/", "/repository?name=team/app", "/image?name=team/app&ref=1.0"):
            browser.get(shop.ui + page)
            # nothing wider than the screen but the tables, which scroll in their box
            assert browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth"
            ), page
            shots(browser, "phone")
        light = browser.execute_script(background)
        browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        )
        dark = browser.execute_script(background)
        shots(browser, "phone-dark")
        assert light == "rgb(255, 255, 255)" and dark == "rgb(13, 17, 23)"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(size["width"], size["height"])
