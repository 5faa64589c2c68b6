"""The playground page in a real headless browser: Debian's ``chromium`` driven by Selenium
through Debian's ``chromedriver`` (nothing is downloaded at test time).

Loads the page from a real server, sends a prompt, sees tokens appear one by one, hovers a
token for its alternatives, presses Stop mid-answer and sees the server's running count drop
to zero; errors (a 400, a missing key) are shown readably.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AUTH_KEYS
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver (Debian's browser and its driver)"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(f"no browser for the playground test: {INSTALL}", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def running(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(r"^tether:num_requests_running\{[^}]*\} (\S+)$", text, re.MULTILINE)
    assert match, "no running gauge in /metrics"
    return int(float(match.group(1)))


def fill(driver: WebDriver, element_id: str, text: str) -> None:
    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(text)


def token_count(driver: WebDriver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .tok"))


def test_tokens_stream_in_hover_shows_alternatives_and_stop_aborts(
    server: Server, browser: WebDriver
) -> None:
    browser.get(f"{server.url}/")
    wait_for(lambda: browser.find_element(By.ID, "model").text == server.model, what="model")
    fill(browser, "max_tokens", "2000")
    browser.find_element(By.ID, "ignore_eos").click()  # a long answer, so Stop comes mid-way
    fill(browser, "prompt", "Tell me a story about a lighthouse.")
    stop = browser.find_element(By.ID, "stop")
    assert stop.tag_name == "button" and not stop.is_enabled()  # nothing to stop yet
    assert browser.find_element(By.ID, "stop_strings").is_enabled()
    browser.find_element(By.ID, "send").click()

    # Tokens appear one by one: the count is seen growing through several values.
    seen: set[int] = set()
    wait_for(lambda: seen.add(token_count(browser)) or len(seen - {0}) >= 5, what="tokens")
    assert running(server) == 1

    token = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .tok")[1]
    ActionChains(browser).move_to_element(token).perform()
    tooltip = browser.find_element(By.ID, "tooltip")
    wait_for(tooltip.is_displayed, 10, "the tooltip")
    rows = tooltip.text.splitlines()
    assert "(sampled)" in rows[0] and "%" in rows[0]
    assert len(rows) == 1 + 5  # the sampled token and its 5 alternatives (the default)
    assert float(token.get_attribute("data-logprob") or "nan") <= 0

    assert stop.is_enabled() and not browser.find_element(By.ID, "send").is_enabled()
    stop.click()
    wait_for(lambda: running(server) == 0, 10, "the server to see the disconnect")
    stats = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .stats"))
    assert "stopped" in stats[0].text and "first token" in stats[0].text
    assert token_count(browser) < 2000
    assert browser.find_element(By.ID, "send").is_enabled()

    # The wire view holds the exact chunks of that answer.
    browser.find_element(By.CSS_SELECTOR, "#wire-box summary").click()
    wire = browser.find_element(By.ID, "wire").text
    assert wire.startswith("data: {") and '"object":"chat.completion.chunk"' in wire


def test_an_answer_finishes_with_its_stats(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/playground")
    wait_for(lambda: browser.find_element(By.ID, "model").text == server.model, what="model")
    fill(browser, "max_tokens", "8")
    fill(browser, "temperature", "0")
    fill(browser, "prompt", "Hello!")
    browser.find_element(By.ID, "send").click()
    stats = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .stats"))
    assert re.search(r"first token \d+ ms · [\d.]+ tokens/s · 8 tokens · length", stats[0].text)
    assert "data: [DONE]" in browser.execute_script(
        "return document.getElementById('wire').textContent"
    )


def test_a_refused_request_is_shown_readably(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/")
    wait_for(lambda: browser.find_element(By.ID, "model").text == server.model, what="model")
    fill(browser, "top_p", "7")
    fill(browser, "prompt", "Hi")
    browser.find_element(By.ID, "send").click()
    error = browser.find_element(By.ID, "error")
    wait_for(error.is_displayed, 30, "the error")
    assert error.text.startswith("400 — The server refused the request")
    assert "top_p" in error.text


def test_a_server_with_keys_works_with_the_key_field(
    auth_server: Server, browser: WebDriver
) -> None:
    browser.get(f"{auth_server.url}/")
    error = browser.find_element(By.ID, "error")
    wait_for(error.is_displayed, 30, "the 401")
    assert error.text.startswith("401 — The server wants an API key")

    key = browser.find_element(By.ID, "api-key")
    key.send_keys(AUTH_KEYS[0])
    fill(browser, "max_tokens", "4")
    browser.find_element(By.ID, "model").click()  # leaving the field reloads the model
    wait_for(lambda: browser.find_element(By.ID, "model").text == auth_server.model, 30, "model")
    fill(browser, "prompt", "Hi")
    browser.find_element(By.ID, "send").click()
    stats = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .stats"))
    assert "4 tokens" in stats[0].text
    assert browser.execute_script("return sessionStorage.getItem('tether.apiKey')") == AUTH_KEYS[0]
