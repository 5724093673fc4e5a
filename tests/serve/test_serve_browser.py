"""SPEC §11 web view in a real headless browser (Debian's chromium + chromium-driver, driven
by selenium): it shows what is registered, updates live without a page reload, shows a
`<script>` label as text without running it, and fits a phone's width. Screenshots go to
$SERVE_SCREENSHOTS when set (how docs/img/serve.png is made)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import wait_until
from serve_support import Serve, put, put_host, record

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = "<script>window.__pwned=1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned=2">'


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("chromium/chromium-driver are not installed (scripts/setup installs them)")
    from selenium import webdriver  # noqa: PLC0415 - only where a browser runs
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,860",
                "--disable-dev-shm-usage", "--proxy-server=direct://", "--proxy-bypass-list=*"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _shot(driver, name):
    where = os.environ.get("SERVE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(where) / f"{name}.png"))


def _fill(store, prefix):
    put(store, prefix, record("web", "node-1:web:80", 8080, host="node-1",
                              tags=["prod", "http", HOSTILE], health="healthy",
                              meta={"team": "storefront", "note": HOSTILE_IMG}))
    put(store, prefix, record("web", "node-2:web:80", 8081, host="node-2", address="10.0.0.12",
                              tags=["prod", "http"], health="healthy",
                              meta={"team": "storefront"}))
    put(store, prefix, record("web", "node-3:web:80", 8082, host="node-3",
                              address="fd00:1:2:3::17", tags=["canary"], health="unhealthy"))
    put(store, prefix, record("postgres", "node-2:db:5432", 5432, host="node-2",
                              address="10.0.0.12", tags=["primary"]))
    put(store, prefix, record("metrics-exporter-with-a-rather-long-service-name",
                              "node-1:exporter:9100", 9100, host="node-1"))
    put_host(store, prefix, "node-1", labels={"zone": "eu-west-1a", "rack": HOSTILE})
    put_host(store, prefix, "node-2", address="10.0.0.12", labels={"zone": "eu-west-1b"})


def _no_overflow(driver):
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")


def test_web_view_in_a_real_browser(etcd, prefix, consumer, browser):
    _fill(etcd, prefix)
    serve = Serve(consumer, etcd, prefix)
    base = f"http://127.0.0.1:{serve.port}"
    browser.get(base + "/")
    wait_until(lambda: "postgres" in browser.find_element("id", "main").text,
               message="the services list")
    text = browser.find_element("tag name", "body").text
    assert "web" in text
    assert "3/3" not in text  # one web instance is unhealthy
    assert "2/3" in text
    assert HOSTILE in text  # shown as text...
    assert browser.execute_script("return window.__pwned === undefined")  # ...never run
    _shot(browser, "services-desktop")

    # Live update, no reload: a mark set on this page survives while a new service appears.
    browser.execute_script("window.__mark = 'same page'")
    wait_until(lambda: "live on" in browser.find_element("id", "live").get_attribute("class"),
               message="the event stream open")
    put(etcd, prefix, record("cache", "node-1:cache:6379", 6379, host="node-1"))
    wait_until(lambda: "cache" in browser.find_element("id", "main").text, timeout=15,
               message="the new service shown without a reload")
    assert browser.execute_script("return window.__mark") == "same page"

    browser.get(base + "/ui/services/web")
    wait_until(lambda: "node-3" in browser.find_element("id", "main").text,
               message="the instances of web")
    main = browser.find_element("id", "main").text
    for shown in ("127.0.0.1:8080", "10.0.0.12:8081", "[fd00:1:2:3::17]:8082", "node-1",
                  "storefront", HOSTILE, HOSTILE_IMG, "unhealthy", "healthy"):
        assert shown in main, shown
    assert browser.execute_script("return window.__pwned === undefined")
    _shot(browser, "service-desktop")
    browser.execute_script("window.__mark = 'instances'")
    etcd.view.delete(f"{prefix}/services/web/node-3:web:80")
    wait_until(lambda: "node-3" not in browser.find_element("id", "main").text, timeout=15,
               message="the removed instance gone without a reload")
    assert browser.execute_script("return window.__mark") == "instances"

    browser.get(base + "/ui/hosts")
    wait_until(lambda: "eu-west-1a" in browser.find_element("id", "main").text,
               message="the hosts")
    assert HOSTILE in browser.find_element("id", "main").text
    assert browser.execute_script("return window.__pwned === undefined")

    # Phone width: nothing scrolls sideways on any page.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    for path, name in (("/", "services-phone"), ("/ui/services/web", "service-phone"),
                       ("/ui/hosts", "hosts-phone")):
        browser.get(base + path)
        wait_until(lambda: browser.find_element("id", "main").text, message=path)
        assert _no_overflow(browser), f"{path} is wider than a phone"
        _shot(browser, name)
    assert browser.execute_script("return window.__pwned === undefined")


def test_a_change_before_the_event_stream_opened_is_shown(etcd, prefix, consumer, browser):
    """The page knows the revision it was rendered from: a change that lands between the
    page and its event stream is fetched as soon as the stream opens."""
    put(etcd, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, etcd, prefix)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/ui/events*"]})
    browser.get(f"http://127.0.0.1:{serve.port}/")
    wait_until(lambda: "web" in browser.find_element("id", "main").text, message="the page")
    put(etcd, prefix, record("late", "l1", 8081))
    wait_until(lambda: "late" in serve.json("/v1/services"), message="late in the copy")
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    wait_until(lambda: "late" in browser.find_element("id", "main").text, timeout=20,
               message="the change shown once the stream opened")
