"""The playground in a real browser: Debian's chromium, headless, driven by Playwright, against the
server on 127.0.0.1. `.ci/run` (and `make test`, through scripts/ensure-chromium) installs chromium when
it is missing; where it cannot be installed the test is skipped with the reason, never passed.
"""

from __future__ import annotations

import shutil

import pytest
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, live_server, served_run

from rnnkit.serve import ServeConfig, create_app

ARGS = CHROMIUM_ARGS


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium); scripts/ensure-chromium does it")
    sync_api = pytest.importorskip("playwright.sync_api")
    run = served_run(tmp_path_factory.mktemp("playground"))
    with live_server(create_app(ServeConfig(runs=[str(run)]))) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.wait_for_function("document.getElementById('status').textContent === 'ready'", timeout=20_000)
        page.errors = errors
        yield page
        browser.close()


def test_generates_and_streams_in(page):
    assert page.locator("#model option").count() == 1
    page.fill("#prime", "the cat ")
    page.fill("#length", "3000")
    page.fill("#seed", "1")
    page.click("#generate")
    # while it streams, some text is already there and the stop button is live
    page.wait_for_function("document.querySelectorAll('#output .tok.gen').length > 0")
    page.wait_for_selector("#output[data-state=done]", timeout=60_000)
    stats = page.evaluate("window.rnnkitStats")
    assert stats["events"] == 3001  # 3,000 tokens and the final event
    assert stats["chunks"] > 1  # read from the network in pieces as they came, not as one body
    assert page.locator("#output .tok.gen").count() == 3000
    assert page.inner_text("#output").startswith("the cat ")
    assert "3000 tokens" in page.inner_text("#status")
    assert page.errors == []


def test_hover_shows_five_candidates(page):
    page.locator("#output .tok.gen").nth(10).hover()
    popup = page.locator("#candidates")
    popup.wait_for(state="visible")
    rows = popup.locator("tr")
    assert rows.count() == 5
    shares = [float(rows.nth(i).locator("td").nth(1).inner_text().rstrip("%")) for i in range(5)]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.5
    assert "chose" in popup.inner_text()


def test_xray_colours_the_text_by_a_unit(page):
    page.click("#inspect")
    page.wait_for_selector("#activations .act")
    assert page.locator("#activations .act").count() == page.evaluate("$('output').textContent.length")
    chips = page.locator("#features .unit-chip")
    assert chips.count() >= 5
    chips.nth(0).click()
    unit = page.get_attribute("#activations", "data-unit")
    assert unit == chips.nth(0).get_attribute("data-unit")
    values = page.eval_on_selector_all("#activations .act", "els => els.map(e => Number(e.dataset.value))")
    assert max(values) - min(values) > 0.01 and all(-1 <= v <= 1 for v in values)
    assert page.errors == []


def test_acrostic_form(page):
    page.wait_for_selector("#poem:not([hidden])")
    page.fill("#acrostic", "春夜")
    page.select_option("#line-chars", "5")
    page.click("#generate")
    page.wait_for_selector("#output[data-state=done]", timeout=30_000)
    text = page.inner_text("#output")
    lines = text.replace("，", "\n").replace("。", "\n").split()
    assert [line[0] for line in lines] == ["春", "夜"]
    page.fill("#acrostic", "")
    page.select_option("#line-chars", "0")


def test_bad_input_shows_the_servers_message(page):
    page.fill("#temperature", "-3")
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert "temperature" in page.inner_text("#status")
    page.fill("#temperature", "0.8")
