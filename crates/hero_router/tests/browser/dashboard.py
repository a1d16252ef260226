#!/usr/bin/env python3
"""Drives the hero_router dashboard in headless Chromium (Debian's `chromium`, through pip
`playwright`), for the Rust test `tests/dashboard_browser.rs`.

Usage: dashboard.py BASE_URL SCREENSHOT_DIR

The Rust side runs the router and the services; this script asks it for changes over a line
protocol: it prints a request on stdout (`start calc`, `kill calc`) and reads `ok [ARGS]` on
stdin once the change is made. It prints `measure NAME VALUE` lines, and `done` at the end.
Any failure is an exception: the exit status is non-zero and the message is on stderr.
Every request the page makes outside BASE_URL is blocked and fails the run.
"""

import os
import sys

from playwright.sync_api import expect, sync_playwright

# Generous: a deadline for a live update on a loaded CI machine, not a performance bar.
TIMEOUT_MS = 15_000


# The elements among `selector` whose text a service's name, spec or answer can fill and
# that a bidi control (U+202E) in it could reorder past their own end: each must be isolated.
NOT_ISOLATED = """(selector) => [...document.querySelectorAll(selector)]
    .filter(e => getComputedStyle(e).unicodeBidi !== 'isolate')
    .map(e => e.tagName + ': ' + e.textContent.slice(0, 40))"""


def ask(request):
    print(request, flush=True)
    line = sys.stdin.readline()
    if not line.startswith("ok"):
        raise RuntimeError(f"the test did not do {request!r}: {line!r}")
    return line.split()[1:]


def main():
    # The dashboard's origin (the admin listener), where screenshots go, and the service
    # listener (where MCP is).
    base, shots, services = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3].rstrip("/")
    os.makedirs(shots, exist_ok=True)
    chromium = os.environ.get("HERO_CHROMIUM", "/usr/bin/chromium")
    expect.set_options(timeout=TIMEOUT_MS)
    outside, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            # Root in a container: no user namespaces for the sandbox, a small /dev/shm.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        # One context: its tabs share the browser's connections to the router, as a user's do.
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()

        def only_the_router(route):
            if route.request.url.startswith(base + "/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_router)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        restarting, asking_for_nosuch = [], []

        def console(m):
            # While the router restarts, the browser logs the requests it cut or refused.
            expected = restarting and m.text.startswith("Failed to load resource: net::")
            # The detail of a service that is not there is a 404 the browser reports.
            expected = expected or (asking_for_nosuch and "status of 404" in m.text)
            if m.type == "error" and not expected:
                errors.append(f"console: {m.text}")

        page.on("console", console)

        # The table, live.
        page.goto(base + "/")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        expect(page.locator('tr[data-name="hero_router"] .status')).to_have_text("healthy")
        page.evaluate("window.__sameDocument = true")

        # Eight tabs in one browser: a browser keeps six connections to one origin, and a
        # feed per tab took them all. The tabs share one feed, so every tab is live and the
        # last one's actions still go through.
        tabs = []
        for _ in range(7):
            tab = context.new_page()
            tab.route("**/*", only_the_router)
            tab.on("console", console)
            tab.on("pageerror", lambda e: errors.append(f"tab page error: {e}"))
            tab.goto(base + "/")
            expect(tab.locator("#conn")).to_have_attribute("data-state", "live")
            tabs.append(tab)
        scanned = tabs[-1].evaluate(
            "() => Promise.race([fetch('/api/scan', {method: 'POST'}).then(r => r.status),"
            " new Promise(done => setTimeout(() => done('no answer in 10 s'), 10000))])"
        )
        assert scanned == 200, scanned
        for tab in tabs:
            tab.close()

        # A service starts: its row appears without a reload.
        (bound_ms,) = ask("start calc")
        row = page.locator('tr[data-name="calc"]')
        expect(row.locator(".status")).to_have_text("healthy")
        seen_ms = page.evaluate("Date.now()")
        print(f"measure appear_ms {seen_ms - int(bound_ms)}", flush=True)
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        expect(row.locator('td[data-label="Title"]')).to_have_text("Hero example service")
        expect(page.locator('#counts li[data-status="healthy"] b')).to_have_text("2")

        # Filters.
        page.fill("#filter-name", "cal")
        expect(page.locator("#services tbody tr")).to_have_count(1)
        page.fill("#filter-name", "")
        # The two services named like JavaScript's own object members are the unhealthy ones.
        page.select_option("#filter-status", "unhealthy")
        expect(page.locator("#services tbody tr")).to_have_count(2)
        expect(page.locator('tr[data-name="constructor"] .status')).to_have_text("unhealthy")
        page.select_option("#filter-status", "")
        expect(page.locator("#services tbody tr")).to_have_count(4)
        page.screenshot(path=os.path.join(shots, "dashboard-table.png"), full_page=True)

        # The service page, by keyboard: focus the link, press Enter.
        row.locator("a").focus()
        page.keyboard.press("Enter")
        detail = page.locator("#detail")
        expect(detail).to_be_visible()
        expect(page.locator("#h-detail")).to_have_text("Service calc")
        expect(detail.locator('a[href="/docs/calc"]')).to_have_count(1)
        # Its parts are elements: no stray text (a `null` for a note it does not have).
        stray = page.evaluate(
            "[...document.querySelector('#detail-body').childNodes]"
            ".filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent)"
        )
        assert stray == [], stray
        expect(detail.locator("#mcp-url")).to_have_attribute("href", services + "/mcp/calc")
        expect(detail.locator("#mcp-url")).to_have_text(services + "/mcp/calc")

        # Try it: call calc.add through /rpc and see the raw request and answer.
        add = detail.locator('details[data-method="add"]')
        add.locator("summary").click()
        expect(add.locator("tbody tr")).to_have_count(2)
        add.locator("textarea").fill("[2, 3]")
        add.locator('button[type="submit"]').click()
        expect(add.locator("pre.request")).to_contain_text('"method": "calc.add"')
        expect(add.locator("pre.answer")).to_contain_text('"result": 5')
        expect(add.locator("pre.answer")).to_contain_text("HTTP 200")
        # Bad params are caught before anything is sent.
        add.locator("textarea").fill("[2,")
        add.locator('button[type="submit"]').click()
        expect(add.locator("pre.answer")).to_contain_text("not JSON")
        page.screenshot(path=os.path.join(shots, "dashboard-service.png"), full_page=True)
        inline = "td, a, code, summary, pre, li"
        assert page.evaluate(NOT_ISOLATED, inline) == [], page.evaluate(NOT_ISOLATED, inline)

        # Every form field has an id of its own (its label points at it alone).
        ids = page.evaluate("[...document.querySelectorAll('#detail [id]')].map(e => e.id)")
        assert len(ids) == len(set(ids)), ids
        # An emptied params box sends no params at all.
        fail = detail.locator('details[data-method="fail"]')
        fail.locator("summary").click()
        fail.locator("textarea").fill("")
        fail.locator('button[type="submit"]').click()
        expect(fail.locator("pre.answer")).to_contain_text("requested failure")
        assert '"params"' not in fail.locator("pre.request").text_content()

        # A right-to-left override in an answer is shown as its JSON escape, reordering nothing.
        echo = detail.locator('details[data-method="echo"]')
        echo.locator("summary").click()
        echo.locator("textarea").fill('{"value": "x\\u202Ey"}')
        echo.locator('button[type="submit"]').click()
        expect(echo.locator("pre.answer")).to_contain_text("x\\u202Ey")
        assert "\u202e" not in echo.locator("pre.answer").text_content()
        assert "\u202e" not in echo.locator("pre.request").text_content()

        # A half-typed params box keeps its text and its focus when the detail is drawn again
        # (a new tab makes the shared feed start over with a snapshot, which redraws it).
        box = add.locator("textarea")
        box.fill('{"typed":')
        box.focus()
        box_id = box.get_attribute("id")
        page.evaluate("window.__firstChild = document.querySelector('#detail-body').firstChild")
        other = context.new_page()
        other.route("**/*", only_the_router)
        other.goto(base + "/")
        expect(other.locator("#conn")).to_have_attribute("data-state", "live")
        page.wait_for_function(
            "document.querySelector('#detail-body').firstChild !== window.__firstChild",
            timeout=TIMEOUT_MS,
        )
        other.close()
        assert page.evaluate("document.activeElement.id") == box_id, page.evaluate(
            "document.activeElement.outerHTML.slice(0, 80)"
        )
        expect(add.locator("textarea")).to_have_value('{"typed":')
        add.locator("textarea").fill("[2, 3]")

        # Another service by its hash: the heading follows at once, for one that is not
        # there and for a name that cannot be one; then back.
        asking_for_nosuch.append(True)
        page.evaluate("location.hash = '#service=nosuch'")
        expect(page.locator("#h-detail")).to_have_text("Service nosuch")
        expect(detail.locator(".error")).to_contain_text("no such service")
        asking_for_nosuch.clear()
        page.evaluate("location.hash = '#service=a.b'")
        expect(page.locator("#h-detail")).to_have_text("Service a.b")
        expect(detail.locator(".error")).to_contain_text("not a service name")
        page.evaluate("location.hash = '#service=calc'")
        expect(page.locator("#h-detail")).to_have_text("Service calc")
        expect(detail.locator('details[data-method="add"]')).to_have_count(1)

        # The service's docs page: text from its spec is isolated there too.
        docs = browser.new_page()
        docs.route("**/*", only_the_router)
        docs.on("pageerror", lambda e: errors.append(f"docs page error: {e}"))
        docs.goto(base + "/docs/calc")
        expect(docs.locator("h2 code").first).to_be_visible()
        inline = "td, a, code, dd, li"
        assert docs.evaluate(NOT_ISOLATED, inline) == [], docs.evaluate(NOT_ISOLATED, inline)
        docs.close()

        # The service dies (its socket stays, refusing): the table and the detail say so.
        ask("kill calc")
        expect(row.locator(".status")).to_have_text("unhealthy")
        expect(detail.locator(".kv .status")).to_have_text("unhealthy")
        expect(page.locator('#events li[data-event="socket"]').first).to_contain_text("calc")

        # Scan now, and back to the table with Escape.
        page.click("#scan")
        expect(page.locator("#scan-result")).to_contain_text("scanned")
        page.keyboard.press("Escape")
        expect(detail).to_be_hidden()

        # The router restarts: the page says so, reconnects by itself and shows the new table.
        page.evaluate("window.__sameDocument = true")
        before = page.locator("#conn").get_attribute("data-instance")
        assert before, "the snapshot names the router instance"
        restarting.append(True)
        ask("restart router")
        page.wait_for_function(
            "(before) => { const c = document.querySelector('#conn');"
            " return c.dataset.state === 'live' && c.dataset.instance !== before; }",
            arg=before,
            timeout=TIMEOUT_MS,
        )
        expect(row.locator(".status")).to_have_text("unhealthy")
        expect(page.locator('tr[data-name="hero_router"] .status')).to_have_text("healthy")
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        restarting.clear()

        # Narrow screens: still readable.
        page.set_viewport_size({"width": 390, "height": 844})
        expect(row.locator(".status")).to_be_visible()
        page.screenshot(path=os.path.join(shots, "dashboard-narrow.png"), full_page=True)

        browser.close()
    if outside:
        raise RuntimeError(f"the page reached outside the router: {outside}")
    if errors:
        raise RuntimeError("the page logged errors:\n" + "\n".join(errors))
    print("done", flush=True)


if __name__ == "__main__":
    main()
