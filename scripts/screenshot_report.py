#!/usr/bin/env python
"""A screenshot of a report in headless chromium, two runs selected (their diff and curves shown).

    python scripts/screenshot_report.py report.html docs/report.png

Needs Playwright for Python (the test extra) and Debian's chromium (apt-get install chromium).
"""

import argparse
import shutil
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=1150, help="pixels of the page to keep, from the top")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": args.height})
        page.goto(args.report.resolve().as_uri())
        page.wait_for_selector("body[data-ready]")
        boxes = page.locator("#run-table tbody input")
        page.click("#select-none")
        boxes.nth(0).check()
        boxes.nth(boxes.count() - 1).check()
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
