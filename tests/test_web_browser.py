"""The page in a real browser: Debian's headless Chromium driven by Selenium (scripts/install_browser.sh installs
both). The numbers the page shows must equal the API's, before and after an input changes."""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("selenium")
uvicorn = pytest.importorskip("uvicorn")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("Debian chromium and chromedriver are not installed (scripts/install_browser.sh)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import llm_roofline as lr  # noqa: E402
from llm_roofline.web.app import create_app  # noqa: E402

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,2300"]


@pytest.fixture(scope="module")
def url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def ready(driver, timeout=30):
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") in ("1", "error"))
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready")


def shown(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def test_page_shows_the_apis_numbers_and_follows_inputs(url, browser):
    browser.get(url + "/?model=llama-3.1-8b&hardware=nvidia-rtx-4090&weights=q4_k_m&batch=4")
    assert ready(browser) == "1", shown(browser, "error")
    p = lr.predict("llama-3.1-8b", "4090", weights="q4_k_m", batch=4)
    assert shown(browser, "decode-estimate") == f"{p.decode.estimate_tok_s:,.1f}"
    assert shown(browser, "decode-ceiling") == f"{p.decode.ceiling_tok_s:,.1f}"
    assert shown(browser, "tpot") == f"{p.decode.tpot_ms:,.2f}"
    assert shown(browser, "ttft") == f"{p.prefill.ttft_ms:,.1f}"
    assert "fits" in shown(browser, "memory-text")
    assert browser.find_elements(By.CSS_SELECTOR, "#roofline svg") and browser.find_elements(By.CSS_SELECTOR,
                                                                                            "#sweep svg")
    batch = browser.find_element(By.ID, "batch")
    batch.clear()
    batch.send_keys("32")
    time.sleep(0.4)
    assert ready(browser) == "1"
    q = lr.predict("llama-3.1-8b", "4090", weights="q4_k_m", batch=32)
    assert shown(browser, "decode-estimate") == f"{q.decode.estimate_tok_s:,.1f}"
    assert "batch=32" in browser.current_url  # the state lives in the URL
    shot = Path(__file__).resolve().parents[1] / "docs" / "img" / "web.png"
    if not shot.exists():  # README's picture; regenerate by deleting it
        browser.save_screenshot(str(shot))


def test_bad_input_shows_one_line_error(url, browser):
    browser.get(url + "/?model=llama-3.1-8b&hardware=h100&tp=7")
    assert ready(browser) == "error"
    assert "--tp 7" in shown(browser, "error") or "tp 7" in shown(browser, "error")
