#!/usr/bin/env python3
"""Dashboard benchmark (run by scripts/bench_dashboard.sh, part of `make bench`).

1,000 services, each a live rpc.sock served by this process (every request answered 404, so the
catalog finds no spec and stays quiet), and a release `hero_router serve` on a temporary root.

- Page load, in headless Chromium (Debian's chromium through playwright), ROUNDS fresh pages:
  time to the first byte of `GET /` (Navigation Timing responseStart), the load event, and the
  moment the page shows all 1,001 rows with its live feed connected; medians.
- CPU: the router's utime+stime (/proc/PID/stat) over CHURN_SECS of 100 socket changes per
  second (a socket bound, then unlinked, in turn), first with no dashboard open, then with
  DASHBOARDS event streams open (`GET /api/events`, read and counted by this process).

Usage: bench_dashboard.py ROUTER_BINARY
"""

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import json

SERVICES = int(os.environ.get("BENCH_SERVICES", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
DASHBOARDS = int(os.environ.get("BENCH_DASHBOARDS", "100"))
CHURN_SECS = float(os.environ.get("BENCH_CHURN_SECS", "10"))
CHANGES_PER_SEC = 100
CHROMIUM = os.environ.get("HERO_CHROMIUM", "/usr/bin/chromium")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


async def answer_404(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def dashboard(port, stats, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n")
    await writer.drain()
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 0.5)
        except asyncio.TimeoutError:
            continue
        if not chunk:
            break
        stats["bytes"] += len(chunk)
        stats["events"] += chunk.count(b"\nevent: ")
        stats["snapshots"] += chunk.count(b"event: snapshot")
    writer.close()


async def churn(root, seconds):
    """CHANGES_PER_SEC socket changes per second for `seconds`: bind one, unlink it, in turn."""
    dirs = []
    for i in range(50):
        d = os.path.join(root, f"churn{i:02d}")
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    live = {}
    changes = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        d = dirs[changes // 2 % len(dirs)]
        path = os.path.join(d, "web_x.sock")
        if path in live:
            live.pop(path).close()
            os.unlink(path)
        else:
            s = socket.socket(socket.AF_UNIX)
            s.bind(path)
            s.listen(16)
            live[path] = s
        changes += 1
        await asyncio.sleep(max(0, start + changes / CHANGES_PER_SEC - time.monotonic()))
    for path, s in live.items():
        s.close()
        os.unlink(path)
    return changes, time.monotonic() - start


async def cpu_during_churn(pid, root, port, dashboards):
    stop = asyncio.Event()
    stats = {"bytes": 0, "events": 0, "snapshots": 0}
    readers = [asyncio.create_task(dashboard(port, stats, stop)) for _ in range(dashboards)]
    await asyncio.sleep(1)
    before = cpu_ticks(pid)
    changes, secs = await churn(root, CHURN_SECS)
    used = cpu_ticks(pid) - before
    await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*readers)
    return {"changes": changes, "secs": secs, "cpu_s": used / TICK, **stats}


def page_loads(base):
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        for _ in range(ROUNDS):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/", wait_until="load")
            shown = page.wait_for_function(
                f"""() => document.querySelector('#conn').dataset.state === 'live'
                    && document.querySelectorAll('#services tbody tr').length === {SERVICES + 1}
                    && performance.now()""",
                timeout=60_000,
            ).json_value()
            nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            nav = json.loads(nav)
            rows.append(
                {
                    "ttfb": nav["responseStart"] - nav["requestStart"],
                    "bytes": nav["transferSize"],
                    "load": nav["loadEventEnd"],
                    "live": shown,
                }
            )
            page.close()
        browser.close()
    return rows


async def main():
    router = sys.argv[1]
    root = tempfile.mkdtemp(prefix="hero-dash-bench-")
    servers = []
    try:
        for i in range(SERVICES):
            d = os.path.join(root, f"svc{i:04d}")
            os.makedirs(d)
            servers.append(await asyncio.start_unix_server(answer_404, os.path.join(d, "rpc.sock")))
        port, admin_port = free_port(), free_port()
        # The dashboard is on the admin listener (its own origin).
        base = f"http://127.0.0.1:{admin_port}"
        proc = subprocess.Popen(
            [router, "serve", "--socket-dir", root, "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin_port}", "--log-level", "warn"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                h = get_json(base + "/health")
                if h["ready"] and h["services"] >= SERVICES + 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the router did not list every service within 60 s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # let the catalog's first pass finish

        loads = await asyncio.to_thread(page_loads, base)
        med = lambda k: statistics.median(r[k] for r in loads)
        print(f"## page load, {SERVICES + 1} services, {ROUNDS} fresh pages in headless Chromium (medians)")
        print(f"first byte of GET /: {med('ttfb'):.1f} ms; page size {loads[0]['bytes'] / 1024:.0f} KiB")
        print(f"load event: {med('load'):.0f} ms; every row shown with the feed live: {med('live'):.0f} ms")
        print("each round:", ", ".join(f"{r['ttfb']:.1f}/{r['load']:.0f}/{r['live']:.0f}" for r in loads))

        for n in (0, DASHBOARDS):
            r = await cpu_during_churn(proc.pid, root, port, n)
            rate = r["changes"] / r["secs"]
            print(
                f"## {n} dashboards open, {rate:.0f} socket changes/s for {r['secs']:.1f} s: "
                f"router CPU {r['cpu_s']:.2f} s = {100 * r['cpu_s'] / r['secs']:.1f}% of a core"
                + (
                    f"; {r['events']} events ({r['events'] / max(n, 1):.0f} per dashboard), "
                    f"{r['snapshots']} snapshots, {r['bytes'] / 1e6:.1f} MB sent"
                    if n
                    else ""
                )
            )
        proc.terminate()
        proc.wait(timeout=15)
    finally:
        for s in servers:
            s.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
