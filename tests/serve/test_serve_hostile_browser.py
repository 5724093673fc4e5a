"""Hostile review of serve's web view (issue 22) in a real headless Chromium: every field a
page shows, filled with markup meant to break out of text and attribute contexts, and with
the longest values the registry takes (a 255-byte name, a 60 KB meta value without a
space). Nothing runs, everything is shown as text, nothing is wider than a phone."""

from __future__ import annotations

import json

from harness import wait_until
from serve_support import Serve, put, put_host, record
from test_serve_browser import _no_overflow, browser  # noqa: F401 - the fixture

ATTR = "\"'><img src=x onerror=\"window.__pwned='attr'\">"
TEXT = "<svg onload=\"window.__pwned='svg'\"></svg><script>window.__pwned='s'</script>"
LONG_NAME = "n" * 255
HUGE_VALUE = "v" * 60_000


def _fill(store, prefix):
    put(store, prefix, record(
        "web", "i1" + ATTR.replace("/", ""), 8080, host="h" + ATTR.replace("/", ""),
        tags=[ATTR, TEXT, "javascript:window.__pwned='tag'"],
        meta={ATTR: TEXT, TEXT: ATTR, "big": HUGE_VALUE}))
    # container_name, image, health, registered_at and the host's address, lease and ttl
    # are checked fields: an entry or record with markup there is skipped (issue 20), so
    # the hostile values go in every free-text field the pages show.
    put(store, prefix, record(LONG_NAME, "l1", 8081, tags=[LONG_NAME]))
    put(store, prefix, record("javascript:window.__pwned='name'", "j1", 8082))
    put_host(store, prefix, "host-1", labels={ATTR: TEXT, "big": HUGE_VALUE},
             registrator_version=TEXT, started_at=ATTR)
    store.view.put(f"{prefix}/config/app/defaults/key", TEXT)


def test_hostile_values_in_every_field_are_shown_never_run(etcd, prefix, consumer, browser):  # noqa: F811
    _fill(etcd, prefix)
    serve = Serve(consumer, etcd, prefix, "--show-config")
    wait_until(lambda: len(serve.json("/v1/services")) == 3, message="the entries")
    base = f"http://127.0.0.1:{serve.port}"
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    for path, shown in (("/", LONG_NAME), ("/ui/services/web", TEXT),
                        (f"/ui/services/{LONG_NAME}", LONG_NAME), ("/ui/hosts", TEXT),
                        ("/ui/config/app", TEXT)):
        browser.get(base + path)
        wait_until(lambda s=shown: s in browser.find_element("id", "main").text,
                   message=f"{path} to show the value as text")
        assert browser.execute_script("return window.__pwned === undefined"), path
        assert _no_overflow(browser), f"{path} is wider than a phone"
        for link in browser.find_elements("tag name", "a"):
            href = link.get_attribute("href") or ""
            assert href.startswith(base + "/"), (path, href)
    # The services list: a click on the name that looks like a URL scheme opens its page.
    browser.get(base + "/")
    wait_until(lambda: "javascript:" in browser.find_element("id", "main").text,
               message="the services list")
    browser.find_element("partial link text", "javascript:").click()
    wait_until(lambda: "j1" in browser.find_element("id", "main").text or
               "8082" in browser.find_element("id", "main").text,
               message="the page of that service")
    assert browser.execute_script("return window.__pwned === undefined")
    assert json.loads(serve.get("/v1/config/app")[2])[0]["value"] == TEXT
