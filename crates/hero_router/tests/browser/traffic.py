#!/usr/bin/env python3
"""The dashboard's traffic charts in headless Chromium, for the Rust test
`tests/traffic_browser.rs`.

Usage: traffic.py BASE_URL SCREENSHOT_DIR

The Rust side runs the router, two services (`alpha`, `beta`) and load against both; this
script asks it to stop the load (`stop load`, answered `ok`). It checks that the table's
sparklines move while the load runs, then that the detail view's numbers and latency chart
match `router.traffic` once the load stopped. Any failure is an exception.
"""

import json
import os
import sys
import urllib.request

from playwright.sync_api import expect, sync_playwright

# The line protocol with the Rust side is the dashboard script's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard import ask  # noqa: E402

TIMEOUT_MS = 20_000


def router_traffic(base):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "router.traffic"}).encode()
    req = urllib.request.Request(base + "/rpc", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["result"]


def main():
    base, shots = sys.argv[1].rstrip("/"), sys.argv[2]
    os.makedirs(shots, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("HERO_CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

        def console(m):
            # The browser's own favicon request is not the page's.
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico"):
                errors.append(f"console: {m.text} at {m.location}")

        page.on("console", console)
        page.goto(base + "/")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")

        # Both rows get a sparkline, and it moves: its path changes as frames come.
        for name in ("alpha", "beta"):
            spark = page.locator(f'tr[data-name="{name}"] svg.sparkline path')
            expect(spark).to_have_count(1)
            page.wait_for_function(
                "(n) => { const p = document.querySelector(`tr[data-name=\"${n}\"] svg.sparkline path`);"
                " return p && p.getAttribute('d').includes('L'); }",
                arg=name,
                timeout=TIMEOUT_MS,
            )
        first = page.get_attribute('tr[data-name="alpha"] svg.sparkline path', "d")
        page.wait_for_function(
            "(d) => document.querySelector('tr[data-name=\"alpha\"] svg.sparkline path').getAttribute('d') !== d",
            arg=first,
            timeout=TIMEOUT_MS,
        )
        expect(page.locator('tr[data-name="beta"] .badge')).to_have_count(1)
        print("measure sparkline_moved 1", flush=True)

        # The detail view of alpha: its charts, live.
        page.goto(base + "/#service=alpha")
        expect(page.locator("#detail-traffic svg.rps-chart path")).to_have_count(1)
        expect(page.locator("#detail-traffic svg.latency-chart path")).to_have_count(3)
        page.screenshot(path=os.path.join(shots, "dashboard-traffic.png"), full_page=True)

        # Once the load stops, the numbers settle: they match router.traffic.
        ask("stop load")
        want = next(s for s in router_traffic(base)["services"] if s["name"] == "alpha")
        w15 = want["windows"]["15m"]
        row = page.locator('#detail-traffic tr[data-window="15m"]')
        expect(row.locator("td").nth(1)).to_have_text(str(w15["requests"]))

        def ms(v):
            return "–" if v is None else f"{v:g} ms"

        for q in ("p50", "p95", "p99"):
            got = row.locator(f"td.{q}").inner_text()
            assert got == ms(w15[q + "_ms"]), f"{q}: page {got!r}, router.traffic {w15[q + '_ms']}"
        worst = max(v for v in want["slots"]["p99_ms"] if v is not None)
        chart_max = float(page.get_attribute("#detail-traffic svg.latency-chart", "data-max"))
        assert chart_max == worst, f"latency chart max {chart_max}, router.traffic {worst}"
        assert w15["requests"] > 0
        browser.close()
    if errors:
        raise RuntimeError("; ".join(errors))
    print("done", flush=True)


if __name__ == "__main__":
    main()
