#!/usr/bin/env python3
"""Hostile pages against hero_router in headless Chromium (Debian's `chromium`, through pip
`playwright`), for the Rust test `tests/browser_attacks.rs`.

Usage: attacks.py CONFIG_JSON

CONFIG_JSON names the router's service listener (`router`), its admin listener (`admin`), a
page a service serves through the router (`service_page`), and a port for a page of another
origin (`elsewhere`). Three kinds of page try to make the router act or tell:

- a page on another origin (http://127.0.0.1:<elsewhere>): no-cors fetches and text/plain
  form posts (CSRF) to /rpc, /{svc}/rpc/, /mcp and the dashboard's /api/scan, reads, and an
  image from /{svc}/rpc/ (a GET with no Origin, from a page of the same site: another port
  of 127.0.0.1);
- a DNS-rebound page (Chromium maps attacker.example to 127.0.0.1; the page's first load is
  served by this script, its later requests reach the router as the same origin): reads of
  /api/services, /rpc, /mcp and /api/events, and a call;
- a service's own page (served through the router): the dashboard's API, its event feed, the
  dashboard in a frame, and a service worker for the origin's root.

It prints one JSON object, what each page saw, for the Rust side to judge (together with what
the router and the victim service recorded), and `done`. Requests from the first two pages
are sent: a browser without Chrome's Local Network Access checks is simulated by switching
them off.
"""

import json
import sys

from playwright.sync_api import sync_playwright

TIMEOUT_MS = 15_000

CSRF = r"""
async ([router, admin]) => {
  const call = (method, params) => JSON.stringify({jsonrpc: '2.0', id: 1, method, params: params || {}});
  const tool = JSON.stringify({jsonrpc: '2.0', id: 1, method: 'tools/call',
    params: {name: 'victim__poke', arguments: {}}});
  const send = (url, body, type) => fetch(url, {method: 'POST', mode: 'no-cors',
      headers: type ? {'content-type': type} : {}, body})
    .then(() => 'sent', (e) => 'failed: ' + e);
  const sent = await Promise.all([
    send(router + '/rpc', call('victim.poke'), 'text/plain'),
    send(router + '/rpc', call('router.scan'), 'text/plain'),
    send(router + '/victim/rpc/', call('poke'), 'text/plain'),
    send(router + '/victim/rpc/rpc', call('poke'), 'application/x-www-form-urlencoded'),
    send(router + '/mcp', tool, 'text/plain'),
    send(router + '/mcp/victim', tool, 'text/plain'),
    send(admin + '/api/scan', '', 'text/plain'),
    send(admin + '/rpc', call('victim.poke'), 'text/plain'),
  ]);
  // Reads: a CORS request; the answer must not be readable.
  const read = (url, init) => fetch(url, init).then((r) => r.text())
    .then((t) => 'read: ' + t.slice(0, 80), (e) => 'unreadable');
  const reads = await Promise.all([
    read(router + '/api/services'),
    read(router + '/rpc', {method: 'POST', headers: {'content-type': 'application/json'},
      body: call('router.services')}),
    read(admin + '/api/services'),
  ]);
  // Forms: text/plain posts whose body is JSON, into frames, as a page without script could.
  const post = (action, name, value) => new Promise((done) => {
    const frame = document.createElement('iframe');
    frame.name = 'f' + Math.random().toString(36).slice(2);
    document.body.appendChild(frame);
    frame.onload = () => done('posted');
    const form = document.createElement('form');
    form.method = 'POST'; form.enctype = 'text/plain'; form.action = action; form.target = frame.name;
    const input = document.createElement('input');
    input.name = name; input.value = value;
    form.appendChild(input); document.body.appendChild(form); form.submit();
  });
  const json = '{"jsonrpc":"2.0","id":1,"method":"victim.poke","params":{"x":"';
  const forms = await Promise.all([
    post(router + '/rpc', json, '"}}'),
    post(router + '/victim/rpc/', '{"jsonrpc":"2.0","id":1,"method":"poke","params":{"x":"', '"}}'),
    post(admin + '/api/scan', 'x', 'y'),
  ]);
  // An image: a GET without Origin, `Sec-Fetch-Site: same-site` (the same IP, another port).
  const image = await new Promise((done) => {
    const img = new Image();
    img.onload = () => done('loaded');
    img.onerror = () => done('refused');
    img.src = router + '/victim/rpc/poke';
  });
  return {sent, reads, forms, image};
}
"""

REBOUND = r"""
async () => {
  const look = (path, init) => fetch(path, init).then(
    async (r) => ({path, status: r.status, body: (await r.text()).slice(0, 120)}),
    (e) => ({path, status: 0, body: 'failed: ' + e}));
  const rpc = (method) => ({method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({jsonrpc: '2.0', id: 1, method})});
  const mcp = {method: 'POST', headers: {'content-type': 'application/json',
      accept: 'application/json, text/event-stream'},
    body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize', params: {
      protocolVersion: '2025-11-25', capabilities: {}, clientInfo: {name: 'x', version: '1'}}})};
  return Promise.all([
    look('/api/services'),
    look('/rpc', rpc('router.services')),
    look('/rpc', rpc('victim.poke')),
    look('/mcp', mcp),
    look('/api/events'),
    look('/api/scan', {method: 'POST'}),
    look('/health'),
  ]);
}
"""

SERVICE_PAGE = r"""
async (admin) => {
  const read = (url, init) => fetch(url, init).then((r) => r.text())
    .then((t) => 'read: ' + t.slice(0, 80), (e) => 'unreadable');
  const reads = await Promise.all([
    read(admin + '/api/services'),
    read(admin + '/api/scan', {method: 'POST'}),
    read(admin + '/api/dashboard/service/victim'),
  ]);
  const scan = await fetch(admin + '/api/scan', {method: 'POST', mode: 'no-cors'})
    .then(() => 'sent', (e) => 'failed: ' + e);
  const feed = await new Promise((done) => {
    const source = new EventSource(admin + '/api/events');
    source.onmessage = source.onopen = () => { source.close(); done('open'); };
    source.addEventListener('snapshot', () => { source.close(); done('snapshot'); });
    source.onerror = () => { source.close(); done('refused'); };
  });
  return {reads, scan, feed};
}
"""


def main():
    cfg = json.loads(sys.argv[1])
    router, admin, elsewhere = cfg["router"], cfg["admin"], cfg["elsewhere"]
    router_port, admin_port = router.rsplit(":", 1)[1], admin.rsplit(":", 1)[1]
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=cfg["chromium"],
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP attacker.example 127.0.0.1",
                # A browser without Chrome's Local Network Access checks, which other
                # browsers do not have: the requests are sent, and the router must refuse.
                "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,"
                "PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests",
            ],
        )

        # 1. A page on another origin.
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.route(elsewhere + "/", lambda r: r.fulfill(
            body="<!doctype html><title>elsewhere</title><body>", content_type="text/html"))
        page.goto(elsewhere + "/")
        out["csrf"] = page.evaluate(CSRF, [router, admin])
        page.close()

        # 2. A DNS-rebound page, on each listener's port.
        out["rebound"] = []
        for port in (router_port, admin_port):
            origin = f"http://attacker.example:{port}"
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            # Its first load came from the attacker's server (before the name was rebound).
            page.route(origin + "/", lambda r: r.fulfill(
                body="<!doctype html><title>rebound</title><body>", content_type="text/html"))
            page.goto(origin + "/")
            out["rebound"] += page.evaluate(REBOUND)
            page.close()

        # 3. A page a service serves through the router.
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        console = []
        page.on("console", lambda m: console.append(m.text))
        page.goto(cfg["service_page"])
        out["service_page"] = page.evaluate(SERVICE_PAGE, admin)
        # A service worker for the whole origin (its script asks for scope `/`).
        out["service_worker"] = page.evaluate("""() => navigator.serviceWorker
            .register('sw.js', {scope: '/'})
            .then((r) => 'registered: ' + r.scope, (e) => 'refused: ' + e.name + ': ' + e.message)""")
        # The dashboard in a frame of the service's page: refused by the dashboard's policy.
        page.evaluate("""(admin) => new Promise((done) => {
            const frame = document.createElement('iframe');
            frame.src = admin + '/';
            frame.onload = () => done();
            document.body.appendChild(frame);
        })""", admin)
        framed = [f for f in page.frames if f != page.main_frame]
        out["frame"] = {
            "urls": [f.url for f in framed],
            # A refused frame shows the browser's error page, never the dashboard's table.
            "dashboard_shown": any(
                f.url.startswith(admin) and f.query_selector("#services") is not None
                for f in framed
                if not f.is_detached()
            ),
            "console": [c for c in console if "frame-ancestors" in c],
        }
        page.close()
        browser.close()
    print(json.dumps(out), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
