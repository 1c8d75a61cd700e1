"""Keyboard use and labelled controls, checked in the DOM of each page (axe-core is not
available offline): every input has a label, every button and link a name, no positive
tabindex, one h1, table headers scoped; Tab visits every control in document order, the
first stop skips to the content; the catalog can be filtered and a repository opened
without a mouse."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.ui.conftest import Shop, Shots, sign_in, storage_page, wait
from tests.ui.test_browse import texts

DOM_CHECK = """
const problems = [];
const shown = (el) => el.getClientRects().length > 0;
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  const label = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label');
  const text = (label && label.textContent.trim()) || el.getAttribute('aria-label');
  if (!text) problems.push('input without a label: ' + el.outerHTML);
}
for (const el of document.querySelectorAll('button, a[href]')) {
  const name = (el.getAttribute('aria-label') || el.textContent || '').trim();
  if (!name) problems.push('control without a name: ' + el.outerHTML);
}
for (const el of document.querySelectorAll('[tabindex]')) {
  if (el.tabIndex > 0) problems.push('positive tabindex: ' + el.outerHTML);
}
for (const el of document.querySelectorAll('th')) {
  if (!el.getAttribute('scope')) problems.push('th without scope: ' + el.outerHTML);
}
for (const el of document.querySelectorAll('img')) {
  if (!el.hasAttribute('alt')) problems.push('img without alt');
}
if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
if (!document.documentElement.lang) problems.push('no lang');
if (!document.title) problems.push('no title');
const focusable = [...document.querySelectorAll(
  'a[href], button, input:not([type=hidden]), select, textarea')].filter(shown);
return [problems, focusable.map((el) => el.outerHTML)];
"""


def tab_order(driver: Any, stops: int) -> list[str]:
    """The elements focus visits, pressing Tab `stops` times from the top of the page."""
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    body = driver.find_element(By.TAG_NAME, "body")
    seen = []
    for _ in range(stops):
        body.send_keys(Keys.TAB) if not seen else driver.switch_to.active_element.send_keys(
            Keys.TAB
        )
        seen.append(driver.execute_script("return document.activeElement.outerHTML"))
    return seen


def test_every_page_is_labelled_and_tabs_in_order(browser: Any, shop: Shop) -> None:
    sign_in(browser, shop, "alice")
    pages = [
        "/",
        "/repository?name=team/app",
        f"/image?name=team/app&ref={shop.digests['app']}",
        f"/image?name=team/multi&ref={shop.digests['multi']}",
        "/storage",
        "/login",
        "/repository?name=no/such",
    ]
    storage_page(browser, shop)  # a summary read: the page no longer reloads itself
    for page in pages:
        browser.get(shop.ui + page)
        problems, focusable = browser.execute_script(DOM_CHECK)
        assert problems == [], page
        assert tab_order(browser, len(focusable)) == focusable, page


def test_keyboard_alone_filters_and_opens_a_repository(
    browser: Any, shop: Shop, shots: Shots
) -> None:
    sign_in(browser, shop, "alice")
    browser.get(shop.ui + "/")
    order = tab_order(browser, 1)
    assert 'class="skip"' in order[0]
    browser.switch_to.active_element.send_keys(Keys.ENTER)  # skip to the content
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    active = browser.switch_to.active_element
    for _ in range(10):
        active.send_keys(Keys.TAB)
        active = browser.switch_to.active_element
        if active.get_attribute("id") == "q":
            break
    assert active.get_attribute("id") == "q"
    active.send_keys("app", Keys.ENTER)
    wait(browser, 15).until(lambda d: texts(d, "#results tbody td:first-child") == ["team/app"])
    active = browser.switch_to.active_element
    for _ in range(15):
        active.send_keys(Keys.TAB)
        active = browser.switch_to.active_element
        if active.text == "team/app":
            break
    active.send_keys(Keys.ENTER)
    wait(browser, 15).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "team/app")
    shots(browser, "by-keyboard")
