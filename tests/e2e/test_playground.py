"""The web playground at / in headless Chromium (Selenium with the system chromium-driver): a chat
answer streams over /v1/ws with its TTFT and tokens/s filled in, the memory bar shows non-zero
segments from /metrics, Stop cancels a long generation, and a screenshot is saved."""
import os
import shutil
import time

import pytest
import requests

from conftest import start_server, stop_server_checked

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--cache-max-entry-count", "256", "--session-len", "1024", "--num-threads", "1", "--drain-timeout", "5"]
WAIT_S = 30


@pytest.fixture(scope="module")
def server():
    srv = start_server(*FLAGS, small=False)
    yield srv
    stop_server_checked(srv)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMEDRIVER) or not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        pytest.skip("needs Debian's chromium and chromium-driver (tools/setup.sh)")
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def ask(driver, prompt):
    box = driver.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(prompt)
    driver.find_element(By.ID, "send").click()
    return WebDriverWait(driver, WAIT_S).until(
        lambda d: (d.find_elements(By.CSS_SELECTOR, ".msg.assistant") or [None])[-1])


def set_field(driver, elem_id, value):
    driver.execute_script("document.getElementById(arguments[0]).value = arguments[1]", elem_id, str(value))


def test_page_and_assets_are_served(server):
    r = requests.get(server.url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert requests.get(server.url + "/static/app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    assert requests.get(server.url + "/static/../README.md", timeout=10).status_code == 404
    assert requests.get(server.url + "/static/nope.css", timeout=10).status_code == 404


def test_chat_streams_with_stats_memory_bar_and_stop(server, browser, tmp_path):
    d = browser
    t0 = time.monotonic()
    d.get(server.url + "/")
    assert "troupe playground" in d.title

    # The memory bar: refreshed from /metrics every second; weights, reserve and KV free are non-zero.
    WebDriverWait(d, WAIT_S).until(
        lambda d: int(d.find_element(By.CSS_SELECTOR, "#membar .seg-weights").get_attribute("data-bytes")) > 0)
    for seg in ("weights", "reserve", "kv-free"):
        el = d.find_element(By.CSS_SELECTOR, "#membar .seg-" + seg)
        assert int(el.get_attribute("data-bytes")) > 0, seg
        assert el.size["width"] > 0, seg

    # One answer, streamed to the end.
    set_field(d, "max-tokens", 24)
    set_field(d, "temperature", 0)
    msg = ask(d, "What is the capital of France?")
    WebDriverWait(d, WAIT_S).until(lambda d: msg.get_attribute("data-state") in ("done", "error", "stopped"))
    assert msg.get_attribute("data-state") == "done", msg.text
    text = msg.find_element(By.CSS_SELECTOR, ".text").text
    assert text.strip(), "no streamed text"
    ttft = msg.find_element(By.CSS_SELECTOR, ".ttft").text
    tps = msg.find_element(By.CSS_SELECTOR, ".tps").text
    assert ttft.endswith(" ms") and float(ttft[:-3]) >= 0, ttft
    assert float(tps) > 0, tps
    assert int(msg.find_element(By.CSS_SELECTOR, ".ntok").text) > 0

    # Stop on a long generation: it ends as "stopped" well before max_tokens.
    set_field(d, "max-tokens", 900)
    d.execute_script("document.getElementById('ignore-eos').checked = true")
    msg2 = ask(d, "Write a very long story about a dragon.")
    WebDriverWait(d, WAIT_S).until(lambda d: len(msg2.find_element(By.CSS_SELECTOR, ".text").text) > 10)
    # KV usage shows up in the bar while it runs (polled every second).
    WebDriverWait(d, 10).until(
        lambda d: int(d.find_element(By.CSS_SELECTOR, "#membar .seg-kv-used").get_attribute("data-bytes")) > 0)
    d.find_element(By.ID, "stop").click()
    WebDriverWait(d, WAIT_S).until(lambda d: msg2.get_attribute("data-state") != "streaming")
    assert msg2.get_attribute("data-state") == "stopped", msg2.text
    assert msg2.get_attribute("data-finish") == "abort"
    assert int(msg2.find_element(By.CSS_SELECTOR, ".ntok").text) < 900
    assert d.find_element(By.ID, "send").is_enabled()

    shot = tmp_path / "playground.png"
    assert d.save_screenshot(str(shot))
    assert shot.exists() and shot.stat().st_size > 10_000
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("TROUPE_PLAYGROUND_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    assert time.monotonic() - t0 < 60


def test_api_key_field_connects_the_websocket(browser):
    srv = start_server(*FLAGS, "--api-key", "s3cret key", small=False)
    try:
        d = browser
        d.get(srv.url + "/")
        d.execute_script("localStorage.removeItem('troupe.api_key')")
        d.get(srv.url + "/")
        set_field(d, "max-tokens", 4)
        msg = ask(d, "Hi")
        WebDriverWait(d, WAIT_S).until(lambda d: msg.get_attribute("data-state") != "streaming")
        assert msg.get_attribute("data-state") == "error"  # no key: the upgrade is refused
        key = d.find_element(By.ID, "api-key")
        key.send_keys("s3cret key")
        d.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        msg = ask(d, "Hi")
        WebDriverWait(d, WAIT_S).until(lambda d: msg.get_attribute("data-state") != "streaming")
        assert msg.get_attribute("data-state") == "done", msg.text
    finally:
        stop_server_checked(srv)
