"""Everything a pusher controls is shown as text: labels, annotations, history, env, an
artifact type and tags carrying script are escaped, and no script runs (the title stays,
no dialog opens, the console stays clean, the DOM holds only the UI's own script)."""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from tests.ui.conftest import HOSTILE, Shop, Shots, console_errors, follow, sign_in
from tests.ui.push import OCI_INDEX, OCI_MANIFEST, push_image, push_referrer, put_manifest


def assert_inert(driver: Any, title: str) -> None:
    assert driver.title == title
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        pass
    else:
        raise AssertionError(f"a dialog opened: {alert.text}")
    assert console_errors(driver) == []
    found = driver.execute_script(
        "return [document.scripts.length, document.querySelectorAll("
        "'[onerror],[onload],[onclick],svg,img,iframe,a[href^=\"javascript:\"]').length]"
    )
    assert found == [1, 0]


def test_hostile_text_is_shown_escaped(browser: Any, shop: Shop, shots: Shots) -> None:
    labels = {f"label{i}": text for i, text in enumerate(HOSTILE)}
    labels[HOSTILE[1]] = "a hostile key"
    with shop.client() as c:
        digest = push_image(
            c,
            "hostile",
            "javascript-alert-1",
            labels=labels,
            config={"Env": HOSTILE, "Cmd": HOSTILE[:1], "User": HOSTILE[1]},
            history=[{"created_by": text, "comment": text} for text in HOSTILE],
            annotations={HOSTILE[0]: HOSTILE[1], "url": HOSTILE[2]},
            layer=b"hostile layer",
        )
        push_referrer(c, "hostile", digest, 'application/x-"><img src=x onerror=alert(1)>')
        # the same layer in an index's child whose platform is script: "also in" names it
        child = push_image(c, "hostile", None, labels={"child": "yes"}, layer=b"hostile layer")
        platform = {"os": HOSTILE[1], "architecture": HOSTILE[0]}
        size = len(c.get(f"/v2/hostile/manifests/{child}").content)
        described = {"mediaType": OCI_MANIFEST, "digest": child, "size": size}
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX}
        put_manifest(
            c, "hostile", "multi", {**index, "manifests": [{**described, "platform": platform}]}
        )
    sign_in(browser, shop, "bob")
    console_errors(browser)

    browser.get(f"{shop.ui}/repository?name=hostile")
    assert_inert(browser, "hostile · regtool")
    assert "javascript-alert-1" in browser.find_element(By.TAG_NAME, "main").text
    shots(browser, "repository")

    follow(browser, browser.find_element(By.LINK_TEXT, "javascript-alert-1"))
    assert_inert(browser, f"hostile@{digest[:19]} · regtool")
    main = browser.find_element(By.TAG_NAME, "main").text
    for text in HOSTILE:
        assert text in main, text
    assert "a hostile key" in main
    assert '"><img src=x onerror=alert(1)>' in main  # the referrer's artifact type
    assert f"hostile:multi ({HOSTILE[1]}/{HOSTILE[0]})" in main  # a layer's other image
    shots(browser, "image")

    referrer = browser.find_element(By.XPATH, "//h2[text()='Referrers']/following-sibling::div//a")
    follow(browser, referrer)
    assert_inert(browser, browser.title)
    assert "pwned" not in browser.title
    assert '"><img src=x onerror=alert(1)>' in browser.find_element(By.TAG_NAME, "main").text
    shots(browser, "referrer")

    # what the filter box echoes back is text too
    browser.get(f"{shop.ui}/?q=" + "%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert_inert(browser, "Repositories · regtool")
    assert browser.find_element(By.ID, "q").get_attribute("value") == '"><script>alert(1)</script>'
