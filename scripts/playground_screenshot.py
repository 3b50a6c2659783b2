"""The playground screenshot in docs/serve.md: serve a run, generate, hover a character, show a unit.

    .venv/bin/python scripts/playground_screenshot.py RUN [--out docs/img/playground.png] [--unit N]

Needs Debian's chromium (scripts/ensure-chromium) and playwright (a dev dependency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import live_server
from tests.test_playground import ARGS, CHROMIUM

from rnnkit.serve import ServeConfig, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/playground.png"))
    parser.add_argument("--prime", default="ROMEO:\n")
    parser.add_argument("--length", type=int, default=700)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--hover", type=int, default=40, help="which generated character to hover")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with live_server(create_app(ServeConfig(runs=[str(args.run)]))) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1150, "height": 1000})
        page.goto(url)
        page.wait_for_function("document.getElementById('status').textContent === 'ready'")
        page.fill("#prime", args.prime)
        page.fill("#length", str(args.length))
        page.fill("#seed", str(args.seed))
        page.click("#generate")
        page.wait_for_selector("#output[data-state=done]", timeout=120_000)
        page.click("#inspect")
        page.wait_for_selector("#activations .act")
        page.locator("#output .tok.gen").nth(args.hover).hover()
        page.wait_for_selector("#candidates:not([hidden])")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
