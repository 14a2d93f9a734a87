"""The storefront page in a real browser (Debian's Chromium, headless, through Selenium and
Debian's chromedriver) against the running stack: live availability, a purchase followed to
``shipped``, a refusal shown when the read model says sold out, and the invariants after."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from orderstream.client import OrderstreamClient
from tests.e2e.records import shipped_units

# flags for a sandboxed, offline machine: no background requests to Google's hosts
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver (deploy/bootstrap.sh)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()


def in_card(browser: WebDriver, product: str, testid: str):  # type: ignore[no-untyped-def]
    return browser.find_element(
        By.CSS_SELECTOR, f'article[data-product-id="{product}"] [data-testid="{testid}"]'
    )


def wait_for(browser: WebDriver, condition, timeout: float = 30):  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda _: condition())


def test_a_buyer_sees_stock_buys_follows_to_shipped_and_is_told_when_sold_out(
    stack, browser: WebDriver, api: OrderstreamClient, pg, stocked, reconcile
) -> None:
    product = stocked("shop", 2)
    settings = stack.settings
    browser.get(f"{settings.ingress_url}/shop#key={settings.storefront_key}&products={product}")

    available = lambda: in_card(browser, product, "available").get_attribute("data-available")  # noqa: E731
    assert wait_for(browser, lambda: available() == "2")
    assert "key=" not in browser.current_url  # the key leaves the address bar

    in_card(browser, product, "buy").click()
    order = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#orders li"))
    status = order.find_element(By.CSS_SELECTOR, '[data-testid="status"]')
    assert wait_for(browser, lambda: status.text == "shipped"), status.text
    assert wait_for(browser, lambda: available() == "1")

    quantity = browser.find_element(By.CSS_SELECTOR, f'article[data-product-id="{product}"] input')
    quantity.clear()
    quantity.send_keys("2")
    in_card(browser, product, "buy").click()
    message = in_card(browser, product, "message")
    assert wait_for(browser, lambda: message.text.startswith("Sold out")), message.text
    assert message.text == "Sold out: 1 left, you asked 2"

    assert len(browser.find_elements(By.CSS_SELECTOR, "#orders li")) == 1  # nothing accepted
    assert shipped_units(pg, product) == 1
    assert api.product(product)["available"] == 1
    assert reconcile([product]) == []
