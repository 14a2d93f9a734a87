"""The storefront page in a real browser (Debian's Chromium, headless, through Selenium and
Debian's chromedriver) against the running stack, signed in as a customer: registering and
signing in (and the API's reasons when that fails), the session kept and refreshed in the
tab, live availability, a purchase followed to ``shipped``, a refusal shown when the read
model says sold out, "my orders" after a reload, a cancelled order, and afterwards what
PostgreSQL and the API hold for that customer."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from orderstream.client import OrderstreamClient
from tests.e2e.records import shipped_units
from tests.e2e.supervised import ctl

PASSWORD = "correct horse battery"
SESSION = "orderstream.session"  # the page's sessionStorage item
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


@pytest.fixture
def http(stack) -> Iterator[httpx.Client]:
    """The API as a customer's own client would call it (no storefront key)."""
    with httpx.Client(base_url=stack.settings.ingress_url, timeout=30) as client:
        yield client


def new_email() -> str:
    return f"shop-{uuid.uuid4().hex[:10]}@example.com"


def by_testid(browser: WebDriver, testid: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def open_shop(browser: WebDriver, url: str) -> None:
    """The page, loaded afresh in a tab with no session (the browser is shared)."""
    browser.get(url)
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()


# Injected by DevTools before the page's own script (CSP does not apply to it): while
# `lostAnswers` > 0, POST /v1/orders reaches the ingress but its answer is lost (a network
# error in the page); while `busyAnswers` > 0 it is answered 503 with Retry-After: 1 instead.
# Every send is recorded in `orderSends` as [Idempotency-Key, ms], and the Authorization of
# every request the page makes in `authorizations`.
FLAKY_ORDERS = """
window.lostAnswers = 0; window.busyAnswers = 0; window.orderSends = [];
window.authorizations = [];
const realFetch = window.fetch.bind(window);
window.fetch = async (path, init = {}) => {
  window.authorizations.push((init.headers || {})["Authorization"] || "");
  if (path !== "/v1/orders" || init.method !== "POST") return realFetch(path, init);
  window.orderSends.push([init.headers["Idempotency-Key"], Date.now()]);
  if (window.lostAnswers > 0) {
    window.lostAnswers--;
    await realFetch(path, init);
    throw new TypeError("Failed to fetch");
  }
  if (window.busyAnswers > 0) {
    window.busyAnswers--;
    return new Response(JSON.stringify({title: "Service Unavailable", status: 503}), {
      status: 503,
      headers: {"Content-Type": "application/problem+json", "Retry-After": "1"},
    });
  }
  return realFetch(path, init);
};
"""


def in_card(browser: WebDriver, product: str, testid: str) -> WebElement:
    return browser.find_element(
        By.CSS_SELECTOR, f'article[data-product-id="{product}"] [data-testid="{testid}"]'
    )


def wait_for(browser: WebDriver, condition, timeout: float = 30):  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda _: condition())


def account_form(
    browser: WebDriver, button: str, email: str, password: str, name: str = ""
) -> None:
    """Fill the sign-in form and press ``login`` or ``register``."""
    for testid, value in (("email", email), ("password", password), ("name", name)):
        field = by_testid(browser, testid)
        field.clear()
        field.send_keys(value)
    by_testid(browser, button).click()


def account_message(browser: WebDriver, *words: str) -> str:
    message = by_testid(browser, "account-message")
    wait_for(browser, lambda: all(w in message.text.lower() for w in words) or None)
    return message.text


def signed_in_as(browser: WebDriver, email: str) -> str:
    """Wait until the page shows ``email`` signed in; the customer id it shows."""
    whoami = by_testid(browser, "whoami")
    assert wait_for(browser, lambda: email in whoami.text), whoami.text
    return whoami.get_attribute("data-customer-id") or ""


def sign_out(browser: WebDriver) -> None:
    by_testid(browser, "logout").click()
    assert wait_for(browser, lambda: by_testid(browser, "sign-in").is_displayed())


def stored_session(browser: WebDriver) -> dict[str, Any] | None:
    return browser.execute_script(f"return JSON.parse(sessionStorage.getItem('{SESSION}'))")  # type: ignore[no-any-return]


def order_rows(browser: WebDriver) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, "#orders li")


def status_of(row: WebElement) -> str:
    return row.find_element(By.CSS_SELECTOR, '[data-testid="status"]').text


def log_in(http: httpx.Client, email: str) -> dict[str, str]:
    response = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_signing_in_shows_the_apis_reasons_and_the_session_is_refreshed_in_the_tab(
    stack, browser: WebDriver, http: httpx.Client
) -> None:
    open_shop(browser, f"{stack.settings.ingress_url}/shop")
    email = new_email()

    account_form(browser, "register", email, "short", "Ada Lovelace")
    assert "password" in account_message(browser, "password")  # 422 names the field
    assert by_testid(browser, "password").get_attribute("aria-invalid") == "true"
    assert stored_session(browser) is None

    account_form(browser, "register", email, PASSWORD, "Ada Lovelace")
    customer_id = signed_in_as(browser, email)
    assert "Ada Lovelace" in by_testid(browser, "whoami").text
    me = http.get("/v1/auth/me", headers=log_in(http, email)).json()
    assert customer_id == me["customer_id"]

    # an access token the ingress refuses: the page refreshes once and carries on
    first = stored_session(browser)
    assert first is not None and first["refresh_token"]
    browser.execute_script(
        f"const s = JSON.parse(sessionStorage.getItem('{SESSION}'));"
        f"s.access_token = 'not-a-token'; sessionStorage.setItem('{SESSION}', JSON.stringify(s));"
    )
    browser.refresh()
    signed_in_as(browser, email)
    second = stored_session(browser)
    assert second is not None
    assert second["refresh_token"] != first["refresh_token"]  # rotated, the new one kept
    assert second["access_token"] != "not-a-token"

    # and before expiry, without a refusal
    browser.execute_script(
        f"const s = JSON.parse(sessionStorage.getItem('{SESSION}'));"
        f"s.expires_at = Date.now() + 1500; sessionStorage.setItem('{SESSION}', JSON.stringify(s));"
    )
    browser.refresh()
    signed_in_as(browser, email)
    assert wait_for(
        browser, lambda: stored_session(browser)["refresh_token"] != second["refresh_token"]
    )
    last = stored_session(browser)
    assert last is not None

    sign_out(browser)
    assert stored_session(browser) is None
    refused = http.post("/v1/auth/refresh", json={"refresh_token": last["refresh_token"]})
    assert refused.status_code == 401, refused.text  # signing out ended the session

    account_form(browser, "register", email, PASSWORD, "Ada Again")
    assert account_message(browser, "already registered")  # the API's 409
    assert by_testid(browser, "email").get_attribute("aria-invalid") == "true"
    account_form(browser, "login", email, "wrong password!")
    assert account_message(browser, "password is wrong")  # the API's 401
    assert stored_session(browser) is None
    account_form(browser, "login", email, PASSWORD)
    signed_in_as(browser, email)
    sign_out(browser)


def test_a_customer_buys_follows_to_shipped_is_told_when_sold_out_and_cancels(
    stack, browser: WebDriver, http: httpx.Client, api: OrderstreamClient, pg, stocked, reconcile
) -> None:
    product = stocked("shop", 2)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FLAKY_ORDERS})
    open_shop(browser, f"{stack.settings.ingress_url}/shop#products={product}")
    available = lambda: in_card(browser, product, "available").get_attribute("data-available")  # noqa: E731
    assert wait_for(browser, lambda: available() == "2")  # public: before signing in
    assert not in_card(browser, product, "buy").is_enabled()

    email = new_email()
    account_form(browser, "register", email, PASSWORD, "Grace Hopper")
    customer_id = signed_in_as(browser, email)
    sign_out(browser)
    account_form(browser, "login", email, PASSWORD)
    assert signed_in_as(browser, email) == customer_id
    assert wait_for(browser, lambda: by_testid(browser, "orders-state").text == "none yet")

    # the first answer is lost and the second is a 503: the page sends the same order again
    browser.execute_script("window.lostAnswers = 1; window.busyAnswers = 1;")
    in_card(browser, product, "buy").click()
    order = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#orders li"))
    sends = browser.execute_script("return window.orderSends")
    assert len(sends) == 3 and len({key for key, _ in sends}) == 1, sends  # one key
    assert sends[2][1] - sends[1][1] >= 1000, sends  # Retry-After honoured
    shipped_id = order.get_attribute("data-order-id")
    assert wait_for(browser, lambda: status_of(order) == "shipped"), status_of(order)
    assert wait_for(browser, lambda: available() == "1")
    assert not order.find_element(By.CSS_SELECTOR, '[data-testid="cancel"]').is_displayed()

    quantity = browser.find_element(By.CSS_SELECTOR, f'article[data-product-id="{product}"] input')
    quantity.clear()
    quantity.send_keys("2")
    in_card(browser, product, "buy").click()
    message = in_card(browser, product, "message")
    assert wait_for(browser, lambda: message.text.startswith("Sold out")), message.text
    assert message.text == "Sold out: 1 left, you asked 2"
    assert len(order_rows(browser)) == 1  # nothing accepted

    # "my orders" comes from the API: the same list after a reload, still signed in
    browser.refresh()
    signed_in_as(browser, email)
    assert wait_for(browser, lambda: len(order_rows(browser)) == 1)
    assert order_rows(browser)[0].get_attribute("data-order-id") == shipped_id
    assert status_of(order_rows(browser)[0]) == "shipped"

    # with the sink stopped the next order stays committed: cancelled from the page
    quantity = browser.find_element(By.CSS_SELECTOR, f'article[data-product-id="{product}"] input')
    quantity.clear()
    quantity.send_keys("1")
    ctl("stop", "sink")
    try:
        in_card(browser, product, "buy").click()
        assert wait_for(browser, lambda: len(order_rows(browser)) == 2)
        pending = order_rows(browser)[0]  # newest first
        cancelled_id = pending.get_attribute("data-order-id")
        assert cancelled_id != shipped_id
        assert wait_for(browser, lambda: status_of(pending) == "committed"), status_of(pending)
        assert wait_for(browser, lambda: available() == "0")
        pending.find_element(By.CSS_SELECTOR, '[data-testid="cancel"]').click()
        detail = pending.find_element(By.CSS_SELECTOR, '[data-testid="detail"]')
        assert wait_for(browser, lambda: "cancellation requested" in detail.text), detail.text
    finally:
        ctl("start", "sink")
    assert wait_for(browser, lambda: status_of(pending) == "cancelled", 60), status_of(pending)
    assert wait_for(browser, lambda: available() == "1")
    assert not pending.find_element(By.CSS_SELECTOR, '[data-testid="cancel"]').is_displayed()

    # the page held the customer's tokens, never the storefront key
    authorizations = browser.execute_script("return window.authorizations")
    assert authorizations and all(a.startswith("Bearer ") for a in authorizations if a)
    seen = " ".join(authorizations) + browser.page_source + str(stored_session(browser))
    assert stack.settings.storefront_key not in seen

    # black box: the orders are this customer's, in PostgreSQL and through the API
    with pg.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text(
                    "SELECT order_id, status FROM orders WHERE customer_id = :c ORDER BY order_id"
                ),
                {"c": customer_id},
            ).all()
        )
    assert rows == {shipped_id: "shipped", cancelled_id: "cancelled"}
    mine = http.get("/v1/customers/me/orders", headers=log_in(http, email)).json()
    assert [(o["order_id"], o["status"]) for o in mine["items"]] == [
        (cancelled_id, "cancelled"),
        (shipped_id, "shipped"),
    ]
    assert shipped_units(pg, product) == 1
    assert api.product(product)["available"] == 1
    assert reconcile([product]) == []
    sign_out(browser)
