"""Deleting from the UI: a tag, after confirming, goes (and distribution agrees); a
manifest goes with every tag on it; a server with deletes disabled shows no button."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from tests.services.distribution import DistributionRegistry, filesystem_storage
from tests.ui.conftest import Shop, Shots, console_errors, follow, sign_in, start_shop
from tests.ui.push import push_image
from tests.ui.test_browse import texts


def test_delete_a_tag_then_a_manifest(
    browser: Any,
    shop: Shop,
    shots: Shots,
    make_distribution: Callable[..., DistributionRegistry],
) -> None:
    with shop.client() as c:
        first = push_image(c, "team/doomed", "a", layer=b"doomed a")
        for tag in ("b", "c"):
            push_image(c, "team/doomed", tag, layer=b"doomed " + tag.encode())
    sign_in(browser, shop, "alice")
    browser.get(f"{shop.ui}/repository?name=team/doomed")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "button[form=delete][value=b]"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Delete team/doomed:b?"
    shots(browser, "confirm")
    assert texts(browser, "table.tags tbody td:first-child a") == []  # not yet
    follow(browser, browser.find_element(By.ID, "confirm"))
    assert "Deleted team/doomed:b." in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert texts(browser, "table.tags tbody td:first-child a") == ["a", "c"]
    shots(browser, "deleted")

    distribution = make_distribution(filesystem_storage(shop.root))
    with httpx.Client(base_url=distribution.url, timeout=20) as theirs:
        assert sorted(theirs.get("/v2/team/doomed/tags/list").json()["tags"]) == ["a", "c"]
        assert theirs.get("/v2/team/doomed/manifests/b").status_code == 404

    follow(browser, browser.find_element(By.LINK_TEXT, "a"))
    follow(
        browser,
        browser.find_element(By.XPATH, "//button[text()='Delete this manifest and its tags']"),
    )
    follow(browser, browser.find_element(By.ID, "confirm"))
    assert texts(browser, "table.tags tbody td:first-child a") == ["c"]
    with httpx.Client(base_url=distribution.url, timeout=20) as theirs:
        assert theirs.get(f"/v2/team/doomed/manifests/{first}").status_code == 404
    assert console_errors(browser) == []


def test_no_delete_button_where_the_server_takes_no_deletes(browser: Any, tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    for settings in ({"delete_enabled": False}, {"read_only": True}):
        shop = start_shop(root, tmp_path, **settings)
        try:
            if not settings.get("read_only"):
                with shop.client() as c:
                    push_image(c, "team/kept", "1")
            sign_in(browser, shop, "alice")
            browser.get(f"{shop.ui}/repository?name=team/kept")
            assert texts(browser, "table.tags tbody td:first-child a") == ["1"]
            assert browser.find_elements(By.XPATH, "//button[contains(., 'Delete')]") == []
            client = httpx.Client(
                base_url=shop.registry.url,
                cookies={c["name"]: c["value"] for c in browser.get_cookies()},
            )
            token = browser.find_element(By.NAME, "csrf").get_attribute("value")
            with client:
                form = {"csrf": token, "name": "team/kept", "tag": "1", "confirm": "yes"}
                assert client.post("/ui/delete", data=form).status_code == 403
        finally:
            shop.registry.stop()
