"""The UI shows each user what the access rules let them pull, and deletes only for
those granted `delete` on a registry that takes deletes: bob (pull on team/* and hostile)
sees no secret/*, no delete button, and a delete he forges is refused."""

from __future__ import annotations

import re
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from tests.ui.conftest import Shop, Shots, console_errors, follow, sign_in, storage_page
from tests.ui.push import push_image
from tests.ui.test_browse import texts


def session_client(browser: Any, shop: Shop) -> tuple[httpx.Client, str]:
    """An HTTP client with the browser's session cookie, and the CSRF token of its
    forms (read from the page open in the browser)."""
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    token = browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    client = httpx.Client(base_url=shop.registry.url, cookies=cookies, timeout=20)
    return client, token


def tags(shop: Shop, name: str) -> list[str]:
    with shop.client() as c:
        return list(c.get(f"/v2/{name}/tags/list").json()["tags"])


def test_a_visitor_sees_nothing_and_is_asked_to_sign_in(browser: Any, shop: Shop) -> None:
    browser.get(f"{shop.ui}/")
    browser.delete_all_cookies()
    browser.get(f"{shop.ui}/")
    assert texts(browser, "#results tbody td") == []
    assert "0 repositories" in browser.find_element(By.ID, "results").text
    assert browser.find_element(By.LINK_TEXT, "Sign in").get_attribute("href").endswith("/login")


def test_a_wrong_password_is_refused(browser: Any, shop: Shop, shots: Shots) -> None:
    browser.get(f"{shop.ui}/login")
    browser.find_element(By.ID, "user").send_keys("bob")
    browser.find_element(By.ID, "password").send_keys("not bob's")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.login button"))
    assert "Wrong user name or password" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_elements(By.CSS_SELECTOR, ".who strong") == []
    shots(browser, "refused")


def test_bob_sees_only_what_he_may_pull_and_no_delete(
    browser: Any, shop: Shop, shots: Shots
) -> None:
    sign_in(browser, shop, "bob")
    browser.get(f"{shop.ui}/")
    assert texts(browser, "#results tbody td:first-child") == ["team/app", "team/multi"]
    browser.get(f"{shop.ui}/?q=secret")
    assert texts(browser, "#results tbody td") == []
    shots(browser, "catalog")

    browser.get(f"{shop.ui}/repository?name=team/app")
    assert texts(browser, "table.tags tbody td:first-child a") == ["1.0", "latest", "old"]
    assert browser.find_elements(By.XPATH, "//button[contains(., 'Delete')]") == []
    assert browser.find_elements(By.ID, "delete") == []
    follow(browser, browser.find_element(By.LINK_TEXT, "1.0"))
    assert browser.find_elements(By.XPATH, "//button[contains(., 'Delete')]") == []
    shots(browser, "image")

    for page in (
        "repository?name=secret/keys",
        f"image?name=secret/keys&ref={shop.digests['secret']}",
        "image?name=secret/keys&ref=v1",
        f"image?name=team/app&ref={shop.digests['secret']}",  # another repository's manifest
    ):
        browser.get(f"{shop.ui}/{page}")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Not found", page
        assert browser.find_elements(By.TAG_NAME, "h2") == []  # no layers, config, referrers
    storage_page(browser, shop)
    assert texts(browser, "main tbody td:first-child") == ["team/app", "team/multi"]
    assert "would free" not in browser.find_element(By.TAG_NAME, "main").text
    assert "Verify every tag" not in browser.find_element(By.TAG_NAME, "main").text
    console_errors(browser)  # the 404s above are logged: not script errors


def test_a_forged_delete_is_refused(browser: Any, shop: Shop) -> None:
    sign_in(browser, shop, "bob")
    browser.get(f"{shop.ui}/repository?name=team/app")
    client, token = session_client(browser, shop)
    with client:
        for form in (
            {"csrf": token, "name": "team/app", "tag": "1.0", "confirm": "yes"},
            {"csrf": token, "name": "team/app", "digest": shop.digests["app"], "confirm": "yes"},
            {"csrf": token, "name": "secret/keys", "tag": "v1", "confirm": "yes"},
        ):
            r = client.post("/ui/delete", data=form)
            assert r.status_code in (403, 404), form
            assert "Not allowed" in r.text or "Not found" in r.text
    assert tags(shop, "team/app") == ["1.0", "latest", "old"]
    assert tags(shop, "secret/keys") == ["v1"]


def test_a_delete_without_the_sessions_csrf_token_is_refused(browser: Any, shop: Shop) -> None:
    sign_in(browser, shop, "alice")
    browser.get(f"{shop.ui}/repository?name=team/app")
    client, token = session_client(browser, shop)
    with client:
        for csrf in ("", "x" * len(token), None):
            form = {"name": "team/app", "tag": "old", "confirm": "yes"}
            if csrf is not None:
                form["csrf"] = csrf
            r = client.post("/ui/delete", data=form)
            assert r.status_code == 403
            assert re.search(r"form has expired", r.text)
        # the right token from another session is refused as well
        with httpx.Client(base_url=shop.registry.url, timeout=20) as stranger:
            r = stranger.post("/ui/delete", data={**form, "csrf": token})
            assert r.status_code == 403
    assert tags(shop, "team/app") == ["1.0", "latest", "old"]


def test_the_layers_images_elsewhere_are_only_those_the_viewer_may_pull(
    browser: Any, shop: Shop, shots: Shots
) -> None:
    with shop.client() as c:  # team/app:1.0's layer, in two more repositories
        push_image(c, "team/copy", "1", labels={"copy": "yes"})
        push_image(c, "secret/keys", "copy", labels={"secret": "yes"})
    sign_in(browser, shop, "alice")
    storage_page(browser, shop)
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Read again']"))
    storage_page(browser, shop)  # the store read again, and indexed
    for user, expected in (
        ("alice", ["secret/keys:copy", "team/copy:1"]),
        ("bob", ["team/copy:1"]),
    ):
        sign_in(browser, shop, user)
        browser.get(f"{shop.ui}/image?name=team/app&ref=1.0")
        (also,) = texts(browser, "main table tbody td.holders")
        assert sorted(texts(browser, "td.holders a")) == expected, also
        assert "secret" not in also or user == "alice"
        shots(browser, f"layer-{user}")
        follow(browser, browser.find_element(By.LINK_TEXT, "team/copy:1"))
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("team/copy")
    storage_page(browser, shop)
    assert browser.find_elements(By.XPATH, "//button[text()='Read again']") == []
    client, token = session_client(browser, shop)
    with client:
        refused = client.post("/ui/storage", data={"csrf": token})
        assert refused.status_code == 403
    assert console_errors(browser) == []
